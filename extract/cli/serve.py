"""``extract serve``: the project's Ollama-compatible server on loopback."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=11435, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME=PATH.gguf",
    help="Serve a GGUF file under NAME (repeatable). Default: the bundled SmolLM2-135M.",
)
@click.option("--ctx", "n_ctx", default=2048, show_default=True, help="Context size (tokens).")
def serve(host: str, port: int, models: tuple[str, ...], n_ctx: int) -> None:
    """Serve Ollama's API with a llama.cpp engine (a stand-in for `ollama serve`)."""
    from ..server import LlamaEngine, run_forever

    table: dict[str, str | Path] = {}
    for spec in models:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{spec!r}: use NAME=PATH.gguf", param_hint="--model")
        if not Path(path).is_file():
            raise click.BadParameter(f"{path}: no such file", param_hint="--model")
        table[name] = Path(path)
    engine = LlamaEngine(table or None, n_ctx=n_ctx)
    click.echo(f"serving Ollama's API on http://{host}:{port} (Ctrl-C stops)", err=True)
    run_forever(engine, host=host, port=port)
