"""``extract doctor``: check a host and a model, each line green, yellow or red with the fix."""

from __future__ import annotations

import sys
import time

import click

from ..client.config import Settings
from ..client.extractor import Extractor
from ..client.probes import ServerFacts, probe_server
from ..errors import EXIT_UNAVAILABLE, ExtractError
from .common import local_server, model_options

SMOKE_TEXT = "I love this phone: the battery lasts two days."


def _line(ok: bool, text: str, fix: str = "") -> bool:
    mark = click.style("ok  " if ok else "FAIL", fg="green" if ok else "red", bold=True)
    click.echo(f"{mark} {text}" + (f"\n     fix: {fix}" if fix and not ok else ""))
    return ok


def _warn(text: str, why: str) -> None:
    mark = click.style("warn", fg="yellow", bold=True)
    click.echo(f"{mark} {text}\n     {why}")


@click.command()
@model_options
def doctor(model: str | None, hosts: tuple[str, ...], local: bool, backend: str) -> None:
    """Is the server Ollama-compatible, is the model there, does it give log-probabilities,
    does it keep to a `format`, does a smoke extraction work?

    Exits 3 with the reason when a check fails; a warning (no log-probabilities) keeps 0.
    The probes speak Ollama's API: --backend openai is a usage error.
    """
    if backend != "ollama":
        raise click.UsageError("doctor probes Ollama's API only; leave out --backend openai")
    with local_server(local, hosts, model) as (urls, chosen):
        targets: list[str | None] = [*urls] or [None]
        results = [_check_host(url, chosen) for url in targets]
    if not all(results):
        sys.exit(EXIT_UNAVAILABLE)


def _check_host(url: str | None, model: str | None) -> bool:
    settings = Settings.resolve(url)
    try:
        facts = probe_server(settings, model)
    except ExtractError as exc:
        # An unreachable host's message already says how to start a server.
        return _line(False, f"server at {settings.host}: {exc.message}")
    if not _report(facts):
        return False
    return model is None or _smoke(settings.host, model)


def _report(facts: ServerFacts) -> bool:
    """Print one line per fact; False when one of them fails the host."""
    if facts.problem is not None:
        return _line(
            False,
            f"server at {facts.host} is not Ollama-compatible: {facts.problem}",
            "point OLLAMA_HOST/--host at an Ollama server (`ollama serve`, or `extract serve`)",
        )
    _line(True, f"server at {facts.host} is running Ollama {facts.version}")
    if not facts.schema_format:
        _warn(
            "schema format (JSON Schema as `format`) needs Ollama 0.5.0 or later",
            'format "auto" sends "json" instead; upgrade Ollama for schema-enforced replies',
        )
    if facts.model is None:
        names = ", ".join(facts.models) or "none"
        click.echo(f"     models on this host: {names}; pass --model to check one")
        return True
    if not facts.model_present:
        return _line(
            False, f"model {facts.model!r} is not on this host", f"ollama pull {facts.model}"
        )
    caps = ", ".join(facts.capabilities or ()) or "unknown"
    _line(True, f"model {facts.model!r} is present; capabilities: {caps}")
    if facts.logprobs:
        _line(True, "log-probabilities: sent when asked (confidence and calibration work)")
    else:
        _warn(
            "log-probabilities: none came back when asked",
            "there will be no confidence and no calibration of choice fields "
            "(Ollama sends them from 0.12.11)",
        )
    held = bool(facts.format_enforced)
    kind = (
        "a JSON Schema that allows only an integer" if facts.format_sent == "schema" else '"json"'
    )
    return _line(
        held,
        f"format is {'' if held else 'not '}enforced: asked for a word under {kind} as "
        f"`format`, the reply was {facts.format_reply}",
        "this server or model ignores `format` (as Ollama's MLX and cloud models do), so "
        "replies are not held to the schema: use a GGUF model on a local Ollama",
    )


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
