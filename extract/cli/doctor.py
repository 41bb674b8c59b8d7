"""``extract doctor``: check a host and a model, each line green or red with the fix."""

from __future__ import annotations

import sys
import time

import click

from ..client.config import Settings
from ..client.extractor import Extractor
from ..client.transport import Transport
from ..core.flow import supports_schema_format
from ..errors import EXIT_UNAVAILABLE, ExtractError, ModelNotFound
from .common import local_server, model_options

SMOKE_TEXT = "I love this phone: the battery lasts two days."


def _line(ok: bool, text: str, fix: str = "") -> bool:
    mark = click.style("ok  " if ok else "FAIL", fg="green" if ok else "red", bold=True)
    click.echo(f"{mark} {text}" + (f"\n     fix: {fix}" if fix and not ok else ""))
    return ok


@click.command()
@model_options
def doctor(model: str | None, hosts: tuple[str, ...], local: bool) -> None:
    """Is the server reachable, is the model there, does a smoke extraction work?"""
    with local_server(local, hosts, model) as (urls, chosen):
        targets: list[str | None] = [*urls] or [None]
        results = [_check_host(url, chosen) for url in targets]
    if not all(results):
        sys.exit(EXIT_UNAVAILABLE)


def _check_host(url: str | None, model: str | None) -> bool:
    settings = Settings.resolve(url)
    with Transport(settings) as transport:
        try:
            transport.ping()
            version = transport.version()
        except ExtractError as exc:
            return _line(
                False,
                f"server at {settings.host}: {exc.message}",
                "start `ollama serve` (or `extract serve`), or point OLLAMA_HOST/--host at it",
            )
        _line(True, f"server at {settings.host} is running Ollama {version or '(unknown)'}")
        _line(
            supports_schema_format(version),
            "schema format (JSON Schema as `format`)",
            "upgrade Ollama to 0.5.0 or later; until then format 'auto' sends \"json\"",
        )
        if not model:
            names = ", ".join(m.get("name", "?") for m in transport.tags()) or "none"
            click.echo(f"     models on this host: {names}; pass --model to check one")
            return True
        try:
            caps = transport.show(model).get("capabilities") or []
        except ModelNotFound:
            return _line(False, f"model {model!r} is not on this host", f"ollama pull {model}")
        _line(True, f"model {model!r} is present; capabilities: {', '.join(caps) or 'unknown'}")
    return _smoke(settings.host, model)


def _smoke(host: str, model: str) -> bool:
    start = time.perf_counter()
    try:
        with Extractor(model, host=host) as ex:
            result = ex.extract(SMOKE_TEXT, schema="sentiment")
    except ExtractError as exc:
        return _line(
            False, f"smoke extraction failed: {exc}", "run `extract one -v` to see the replies"
        )
    elapsed = time.perf_counter() - start
    tps = result.usage.tokens_per_second
    speed = f", {tps:.0f} tokens/s" if tps else ""
    return _line(
        True,
        f"smoke extraction: {result.data()} in {elapsed:.1f}s, "
        f"{len(result.attempts)} attempt(s){speed}",
    )
