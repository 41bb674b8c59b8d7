"""``extract one``: extract one document and print the validated JSON."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from ..batch.cache import Cache
from ..batch.priors import StoredPriors
from ..client.backends import BackendName
from ..client.calls import CallOptions
from ..client.extractor import Extractor
from ..core.result import AttemptFailed, Extraction, Partial
from ..core.schema_walk import Parts
from .common import cache_options, call_options, local_server, model_options

# Stands for "no value here yet" in a partial value.
_MISSING = object()


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
@cache_options
@click.option("--stream", is_flag=True, help="Show the object forming on stderr.")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Also print attempts, confidence, tokens and tokens/s.",
)
def one(
    text: str,
    schema: str,
    model: str | None,
    hosts: tuple[str, ...],
    local: bool,
    backend: BackendName,
    call: CallOptions,
    show_prompt: bool,
    no_cache: bool,
    cache_path: Path | None,
    images: tuple[Path, ...],
    stream: bool,
    verbose: bool,
) -> None:
    """Extract one document (TEXT, or - for stdin) and print its JSON.

    Enum and boolean fields are calibrated against the model's lean on an empty document
    (--no-calibrate: not); that lean is measured once per model, prompt and schema and kept
    in the cache (--no-cache: measured in each run).
    """
    if text == "-":
        text = sys.stdin.read()
    with local_server(local, hosts, model) as (urls, chosen):
        if len(urls) > 1:
            raise click.UsageError("`extract one` talks to one host")
        host = urls[0] if urls else None
        # A prompt shown is not extracted: no prior to keep, so no cache file to open.
        keep = not (no_cache or show_prompt)
        with (
            Extractor(chosen, host=host, backend=backend, **call) as ex,
            _kept_priors(ex, keep, cache_path),
        ):
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


@contextlib.contextmanager
def _kept_priors(ex: Extractor, keep: bool, path: Path | None) -> Iterator[None]:
    """With ``keep``, keep ``ex``'s content-free priors in the cache file (the one ``label``
    uses), so the next run with the same model, prompt and schema does not ask for them."""
    if not keep:
        yield
        return
    with Cache(path) as cache:
        ex.priors = StoredPriors(cache)
        yield


def _follow(events: Iterable[Any], *, show: bool) -> Extraction[Any]:
    live = sys.stderr.isatty()
    shown: Any = _MISSING
    for event in events:
        if isinstance(event, Extraction):
            if show and live:
                click.echo(err=True)
            if show:
                _say_recalibrated(shown, event)
            return event
        if not show:
            continue
        if isinstance(event, Partial):
            value = event.value
            shown = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
            line = json.dumps(shown, ensure_ascii=False)
            click.echo(f"\r\033[K{line[-200:]}" if live else line, nl=not live, err=True)
        elif isinstance(event, AttemptFailed):
            shown = _MISSING
            error = event.attempt.error
            click.echo(f"\nattempt {event.attempt.number} failed: {error}; asking again", err=True)
    raise AssertionError("the stream ended without a result")  # pragma: no cover


def _say_recalibrated(shown: Any, result: Extraction[Any]) -> None:
    """Say on stderr which choice fields calibration changed from what the stream showed."""
    final = result.data()
    for path, scores in result.choices.items():
        before, after = _at(shown, scores.parts), _at(final, scores.parts)
        if before is _MISSING or after is _MISSING or before == after:
            continue
        was, now = json.dumps(before, ensure_ascii=False), json.dumps(after, ensure_ascii=False)
        click.echo(
            f"calibration changed {path} from {was} (as streamed) to {now}: against the "
            f"model's lean on an empty document, {now} rose most (--no-calibrate keeps {was})",
            err=True,
        )


def _at(data: Any, parts: Parts) -> Any:
    """The item of ``data`` at ``parts``, or ``_MISSING``.

    >>> _at({"a": [1, {"b": 2}]}, ("a", 1, "b")), _at({"a": []}, ("a", 0)) is _MISSING
    (2, True)
    """
    for part in parts:
        keyed = isinstance(part, str) and isinstance(data, dict) and part in data
        indexed = isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data)
        if not (keyed or indexed):
            return _MISSING
        data = data[part]
    return data


def _report(result: Extraction[Any]) -> None:
    for attempt in result.attempts:
        status = "ok" if attempt.ok else f"{type(attempt.error).__name__}: {attempt.error}"
        click.echo(f"attempt {attempt.number}: {status}", err=True)
    click.echo(_confidence_line(result), err=True)
    usage = result.usage
    tps = f"{usage.tokens_per_second:.1f}" if usage.tokens_per_second else "-"
    seconds = (usage.total_duration or 0) / 1e9
    click.echo(
        f"prompt tokens {usage.prompt_eval_count or 0}, output tokens {usage.eval_count or 0}, "
        f"{tps} tokens/s, {seconds:.2f}s on the server",
        err=True,
    )


def _confidence_line(result: Extraction[Any]) -> str:
    """Each scored field's confidence, and the value's: its least confident field's (as
    ``label`` reports it in ``min_confidence``)."""
    if not result.confidence:
        return (
            "confidence: none (no enum or boolean field was scored: the schema has none, or "
            "the server sent no log-probabilities)"
        )
    fields = ", ".join(f"{path} {p:.3f}" for path, p in result.confidence.items())
    what = "agreement of samples" if result.samples > 1 else "confidence"
    return f"{what}: {fields}; overall {min(result.confidence.values()):.3f} (least confident)"
