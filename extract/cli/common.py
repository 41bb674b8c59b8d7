"""What every subcommand shares: error reporting, the --local server, common options."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from ..errors import ExtractError

F = TypeVar("F", bound=Callable[..., Any])


class ExtractGroup(click.Group):
    """Prints ExtractError as one line on stderr and exits with the error's code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExtractError as exc:
            click.secho(f"error: {type(exc).__name__}: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)


def model_options(func: F) -> F:
    """--model, --host, --local: which model and where it runs."""
    func = click.option(
        "--local",
        is_flag=True,
        help="Run the embedded llama.cpp server with the bundled small model (no Ollama needed).",
    )(func)
    func = click.option(
        "--host",
        "hosts",
        multiple=True,
        help="Ollama URL (repeat for several hosts). Default: $OLLAMA_HOST or 127.0.0.1:11434.",
    )(func)
    func = click.option(
        "--model", "-m", envvar="EXTRACT_MODEL", help="Model name, e.g. llama3.2 ($EXTRACT_MODEL)."
    )(func)
    return func


@contextlib.contextmanager
def local_server(
    local: bool, hosts: tuple[str, ...], model: str | None
) -> Iterator[tuple[list[str], str | None]]:
    """With --local, start the embedded server and point hosts/model at it."""
    if not local:
        yield list(hosts), model
        return
    from ..server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

    if hosts:
        raise click.UsageError("--local runs its own server; leave out --host")
    click.echo("starting the embedded llama.cpp server (first run loads the model)...", err=True)
    with serve(LlamaEngine()) as srv:
        yield [srv.url], model or DEFAULT_LOCAL_MODEL
