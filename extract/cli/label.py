"""``extract label``: label every record of a JSONL or CSV file into a resumable JSONL file."""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from ..batch.cache import Cache
from ..batch.progress import Progress, Tally
from ..batch.records import Document, OutputFile, count_lines, open_csv, read_csv, read_jsonl
from ..batch.session import Labeling
from .common import local_server, model_options

EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file to append to; a rerun skips the ids it already holds.",
)
@click.option("--schema", "-s", required=True, help="Bundled schema name, or a .json file.")
@model_options
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option("--id-field", default="id", show_default=True, help="Field holding the id.")
@click.option(
    "--input-format",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="auto: CSV for a .csv file, else JSONL.",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="In-flight requests per host, at most. Default: start at 1 and adapt.",
)
@click.option(
    "--format",
    "format_mode",
    type=click.Choice(["auto", "json", "schema", "none"]),
    default="auto",
    show_default=True,
    help="What to send as Ollama's `format`.",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cache file. Default: $EXTRACT_CACHE, else ~/.cache/extract/cache.sqlite.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Drop the failed records OUTPUT holds and label those records again.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def label(
    input_path: str,
    output: Path,
    schema: str,
    model: str | None,
    hosts: tuple[str, ...],
    local: bool,
    text_field: str,
    id_field: str,
    input_format: str,
    concurrency: int | None,
    format_mode: str,
    no_cache: bool,
    cache_path: Path | None,
    retry_failed: bool,
    quiet: bool,
) -> None:
    """Label each record of INPUT (JSONL or CSV; - reads JSONL from stdin) into OUTPUT.

    OUTPUT gets exactly one JSON line per input record, {"id", "ok", "value" or "error",
    "attempts", "usage", "cached"}, flushed as each finishes. Records without an id get their
    line number (CSV: row number). Rerunning the same command skips the ids OUTPUT already
    holds, so an interrupted run continues where it stopped; with --retry-failed it also
    labels again the records that failed (after an outage, say).

    \b
    Exit codes: 0 every record ok; 1 some records failed (their errors are in OUTPUT);
    2 usage error; 3 server unreachable or model missing (checked before the run starts).
    """
    source = None if input_path == "-" else Path(input_path)
    if source is not None and not source.is_file():
        raise click.BadParameter(f"{input_path}: no such file", param_hint="INPUT")
    if source is not None and source.resolve() == output.resolve():
        raise click.UsageError("OUTPUT must be another file than INPUT")
    is_csv = input_format == "csv" or (
        input_format == "auto" and source is not None and source.suffix.lower() == ".csv"
    )
    stream, docs = _open_input(source, is_csv, id_field=id_field, text_field=text_field)
    sink = OutputFile(output)
    tally = Tally()
    progress: Progress | None = None
    try:
        done, tally.resumed_failed = sink.resume(retry_failed=retry_failed)
        tally.resumed = sum(done.values())
        if tally.resumed and not quiet:
            click.echo(f"resuming: {tally.resumed} records already in {output}", err=True)
        with local_server(local, hosts, model) as (urls, chosen):
            show_bar = not quiet and sys.stderr.isatty()
            total = _total(source, is_csv) if show_bar else None
            progress = Progress(stream=sys.stderr, show=show_bar, total=total, tally=tally)
            cache = None if no_cache else Cache(cache_path)
            tally.started = time.monotonic()
            try:
                asyncio.run(
                    _label_all(
                        _pending(docs, done),
                        sink,
                        progress,
                        model=chosen,
                        urls=urls,
                        schema=schema,
                        format_mode=format_mode,
                        concurrency=concurrency,
                        cache=cache,
                    )
                )
            finally:
                if cache is not None:
                    cache.close()
    except KeyboardInterrupt:
        _finish(progress, tally, quiet)
        click.echo("interrupted: rerun the same command to label the rest", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if progress is not None:
            progress.close()
        sink.close()
        stream.close()
    _finish(progress, tally, quiet)
    if tally.failures or tally.resumed_failed:
        sys.exit(EXIT_SOME_FAILED)


async def _label_all(
    docs: Iterable[Document],
    sink: OutputFile,
    progress: Progress,
    *,
    model: str | None,
    urls: list[str],
    schema: str,
    format_mode: str,
    concurrency: int | None,
    cache: Cache | None,
) -> None:
    fmt: Any = None if format_mode == "none" else format_mode
    session = Labeling(
        schema, model=model, hosts=urls, concurrency=concurrency, cache=cache, format=fmt
    )
    async with session:
        async for record in session.aresults(docs):
            sink.write(record.to_json())
            progress.update(record)


def _open_input(
    source: Path | None, is_csv: bool, *, id_field: str, text_field: str
) -> tuple[IO[Any], Iterator[Document]]:
    if is_csv:
        text = open_csv(source)
        return text, read_csv(text, id_field=id_field, text_field=text_field)
    raw: IO[bytes] = sys.stdin.buffer if source is None else open(source, "rb")  # noqa: SIM115
    return raw, read_jsonl(raw, id_field=id_field, text_field=text_field)


def _pending(docs: Iterable[Document], done: collections.Counter[str]) -> Iterator[Document]:
    """The documents OUTPUT does not hold yet (each id skipped as often as it was written)."""
    for doc in docs:
        key = doc.key
        if done[key] > 0:
            done[key] -= 1
            if not done[key]:
                del done[key]
            continue
        yield doc


def _total(source: Path | None, is_csv: bool) -> int | None:
    if source is None:
        return None
    return max(0, count_lines(source) - is_csv)


def _finish(progress: Progress | None, tally: Tally, quiet: bool) -> None:
    if progress is not None:
        progress.close()
    if not quiet:
        click.echo(tally.summary(), err=True)
