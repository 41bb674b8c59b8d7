"""``extract one``: extract one document and print the validated JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..client.calls import CallOptions
from ..client.extractor import Extractor
from ..core.result import AttemptFailed, Extraction, Partial
from .common import call_options, local_server, model_options


@click.command()
@click.argument("text", required=False, default="-")
@click.option("--schema", "-s", required=True, help="Bundled schema name, or a .json file.")
@model_options
@call_options
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An image for a vision model (repeatable).",
)
@click.option("--stream", is_flag=True, help="Show the object forming on stderr.")
@click.option("--verbose", "-v", is_flag=True, help="Also print attempts, tokens and tokens/s.")
def one(
    text: str,
    schema: str,
    model: str | None,
    hosts: tuple[str, ...],
    local: bool,
    call: CallOptions,
    show_prompt: bool,
    images: tuple[Path, ...],
    stream: bool,
    verbose: bool,
) -> None:
    """Extract one document (TEXT, or - for stdin) and print its JSON."""
    if text == "-":
        text = sys.stdin.read()
    with local_server(local, hosts, model) as (urls, chosen):
        if len(urls) > 1:
            raise click.UsageError("`extract one` talks to one host")
        host = urls[0] if urls else None
        with Extractor(chosen, host=host, **call) as ex:
            if show_prompt:
                click.echo(json.dumps(ex.preview(text, schema), indent=2, ensure_ascii=False))
                return
            if call.get("chunk") is not None or call.get("samples", 1) > 1:
                if stream:
                    raise click.UsageError("--stream shows one reply; drop --chunk and --samples")
                result = ex.extract(text, schema, images=list(images) or None)
            else:
                events = ex.stream(text, schema=schema, images=list(images) or None)
                result = _follow(events, show=stream)
    pretty = sys.stdout.isatty()
    click.echo(json.dumps(result.data(), indent=2 if pretty else None, ensure_ascii=False))
    if verbose:
        _report(result)


def _follow(events: Any, *, show: bool) -> Extraction[Any]:
    live = sys.stderr.isatty()
    for event in events:
        if isinstance(event, Extraction):
            if show and live:
                click.echo(err=True)
            return event
        if not show:
            continue
        if isinstance(event, Partial):
            value = event.value
            data = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
            line = json.dumps(data, ensure_ascii=False)
            click.echo(f"\r\033[K{line[-200:]}" if live else line, nl=not live, err=True)
        elif isinstance(event, AttemptFailed):
            error = event.attempt.error
            click.echo(f"\nattempt {event.attempt.number} failed: {error}; asking again", err=True)
    raise AssertionError("the stream ended without a result")  # pragma: no cover


def _report(result: Extraction[Any]) -> None:
    for attempt in result.attempts:
        status = "ok" if attempt.ok else f"{type(attempt.error).__name__}: {attempt.error}"
        click.echo(f"attempt {attempt.number}: {status}", err=True)
    usage = result.usage
    tps = f"{usage.tokens_per_second:.1f}" if usage.tokens_per_second else "-"
    seconds = (usage.total_duration or 0) / 1e9
    click.echo(
        f"prompt tokens {usage.prompt_eval_count or 0}, output tokens {usage.eval_count or 0}, "
        f"{tps} tokens/s, {seconds:.2f}s on the server",
        err=True,
    )
