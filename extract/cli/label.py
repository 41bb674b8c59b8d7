"""``extract label``: label every record of a JSONL or CSV file into a resumable JSONL file."""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from ..batch.cache import Cache
from ..batch.ids import Pending, Written
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
    help="JSONL file to append to; a rerun skips the input lines it already holds.",
)
@click.option("--schema", "-s", required=True, help="Bundled schema name, or a .json file.")
@model_options
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option(
    "--id-field", default="id", show_default=True, help="Field holding the id (null if absent)."
)
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
    help="Drop the failed records OUTPUT holds and label those lines again.",
)
@click.option(
    "--allow-duplicate-ids",
    is_flag=True,
    help="Label every line, even one whose id an earlier line has (default: a DuplicateId error).",
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
    allow_duplicate_ids: bool,
    quiet: bool,
) -> None:
    """Label each record of INPUT (JSONL or CSV; - reads JSONL from stdin) into OUTPUT.

    OUTPUT gets exactly one JSON line per input line, {"id", "line", "ok", "value" or "error",
    "attempts", "usage", "cached"}, flushed as each finishes. "line" is the input line number
    (CSV: data row number); "id" is the record's id field, null when it has none or the line
    is not a record. A line whose id an earlier line has gets a DuplicateId error record
    (--allow-duplicate-ids labels it). Rerunning the same command skips the lines OUTPUT
    already holds, so an interrupted run continues where it stopped; with --retry-failed it
    also labels again the lines that failed (after an outage, say). A rerun stops with exit 2
    when INPUT no longer matches OUTPUT (a line's id changed, or a line went away).

    \b
    Exit codes: 0 every record ok; 1 some records failed (their errors are in OUTPUT);
    2 usage error, or INPUT changed since OUTPUT was written; 3 server unreachable or model
    missing (checked before the run starts).
    """
    source = None if input_path == "-" else Path(input_path)
    if source is not None and not source.is_file():
        raise click.BadParameter(f"{input_path}: no such file", param_hint="INPUT")
    if source is not None and source.resolve() == output.resolve():
        raise click.UsageError("OUTPUT must be another file than INPUT")
    is_csv = input_format == "csv" or (
        input_format == "auto" and source is not None and source.suffix.lower() == ".csv"
    )
    stream, docs = _open_input(source, is_csv, id_field, text_field)
    reread = None
    if source is not None:
        reread = functools.partial(_read_again, source, is_csv, id_field, text_field)
    sink = OutputFile(output)
    tally = Tally()
    progress: Progress | None = None
    try:
        written = sink.resume(retry_failed=retry_failed)
        tally.resumed, tally.resumed_failed = written.records, written.failed
        if not quiet:
            _announce(written, output)
        pending = Pending(written, allow_duplicates=allow_duplicate_ids)
        with local_server(local, hosts, model) as (urls, chosen):
            show_bar = not quiet and sys.stderr.isatty()
            total = _total(source, is_csv) if show_bar else None
            progress = Progress(stream=sys.stderr, show=show_bar, total=total, tally=tally)
            cache = None if no_cache else Cache(cache_path)
            tally.started = time.monotonic()
            try:
                asyncio.run(
                    _label_all(
                        pending(docs, reread=reread),
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
    source: Path | None, is_csv: bool, id_field: str, text_field: str
) -> tuple[IO[Any], Iterator[Document]]:
    if is_csv:
        text = open_csv(source)
        return text, read_csv(text, id_field=id_field, text_field=text_field)
    raw: IO[bytes] = sys.stdin.buffer if source is None else open(source, "rb")  # noqa: SIM115
    return raw, read_jsonl(raw, id_field=id_field, text_field=text_field)


def _read_again(source: Path, is_csv: bool, id_field: str, text_field: str) -> Generator[Document]:
    """INPUT read anew from the start (to check it against OUTPUT); closed with the generator."""
    stream, docs = _open_input(source, is_csv, id_field, text_field)
    with stream:
        yield from docs


def _announce(written: Written, output: Path) -> None:
    if written.records:
        click.echo(f"resuming: {written.records} records already in {output}", err=True)
    if written.legacy:
        click.echo(
            f"{written.legacy.total()} of them were written by an older extract, without a line "
            "number: they are matched to input lines by id",
            err=True,
        )


def _total(source: Path | None, is_csv: bool) -> int | None:
    if source is None:
        return None
    return max(0, count_lines(source) - is_csv)


def _finish(progress: Progress | None, tally: Tally, quiet: bool) -> None:
    if progress is not None:
        progress.close()
    if not quiet:
        click.echo(tally.summary(), err=True)
