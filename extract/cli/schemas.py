"""``extract schemas``: list, print and check JSON Schemas before a long run."""

from __future__ import annotations

import json

import click

from ..core.schema import Schema, bundled_schemas


@click.group(invoke_without_command=True)
@click.pass_context
def schemas(ctx: click.Context) -> None:
    """List the bundled schemas (see also: show NAME, check FILE)."""
    if ctx.invoked_subcommand is None:
        table = bundled_schemas()
        width = max(map(len, table), default=0)
        for name, description in table.items():
            click.echo(f"{name:<{width}}  {description}")


@schemas.command()
@click.argument("name")
def show(name: str) -> None:
    """Print a bundled schema (or a schema file) as JSON."""
    click.echo(json.dumps(Schema.load(name).json_schema, indent=2, ensure_ascii=False))


@schemas.command()
@click.argument("source")
def check(source: str) -> None:
    """Validate a schema and list what Ollama's grammar will not enforce.

    Those constraints are still checked on every reply (and re-asked when broken), but the
    model is not steered toward them, so expect more re-asks on a long run.
    """
    schema = Schema.load(source)
    click.secho(f"ok: {source} is a valid JSON Schema", fg="green")
    if schema.grammar is None:
        click.secho(
            "warning: no grammar can be derived; format 'auto' will send \"json\"", fg="yellow"
        )
    notes = schema.unenforced()
    for note in notes:
        click.secho(f"not enforced by the grammar: {note}", fg="yellow")
    if not notes:
        click.echo("every constraint can be enforced by Ollama's schema grammar")
    click.echo("\nthe model is shown this shape:\n" + schema.render())
