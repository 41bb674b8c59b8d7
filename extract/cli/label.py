"""``extract label``: label every record of a JSONL or CSV file into a resumable JSONL file."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import sys
import time
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import IO

import click

from ..batch.cache import Cache
from ..batch.cascade import Tier
from ..batch.ids import Pending, Written
from ..batch.labeling_config import LabelingConfig
from ..batch.progress import Progress, Tally
from ..batch.records import Document, OutputFile, count_lines, open_csv, read_csv, read_jsonl
from ..batch.run import WARM_UP_DOCUMENTS
from ..batch.session import SHIFT_ALPHA, Labeling, shift_warning
from ..batch.sidecar import sidecar_path, write_sidecar
from ..batch.tables import export, read_parquet
from ..client.backends import BackendName
from ..client.calls import CallOptions
from ..client.extractor import Extractor
from .common import (
    EXIT_TERMINATED,
    Terminated,
    cache_options,
    call_options,
    local_server,
    model_options,
    sigterm_interrupts,
)
from .escalation import escalate_options, resolve_cascade

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
    type=click.Choice(["auto", "jsonl", "csv", "parquet"]),
    default="auto",
    show_default=True,
    help="auto: by the file's suffix (.csv, .parquet), else JSONL.",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="In-flight requests per host, at most. Default: start at 1 and adapt.",
)
@call_options
@cache_options
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
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    help='Mark records whose least confident field is below P with "review": true (and ok '
    "records that should carry confidence but do not); under a guaranteed threshold "
    "(--config), also the records it does not accept.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A labeling config (extract tune, extract eval --target-accuracy): its options, model "
    'and guaranteed threshold ("accepted" on each record). Flags given here override it.',
)
@click.option(
    "--force",
    is_flag=True,
    help="Label with --config even when it was tuned with another model digest, decode path "
    "or scoring version (its thresholds may then not hold).",
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="After the run, also write OUTPUT as a table: a .csv or .parquet file.",
)
@click.option(
    "--domain-prior/--no-domain-prior",
    default=None,
    help="Calibrate choices against documents of random words from INPUT (the default, unless "
    "--config says n/a), or against the N/A document only (as `extract one` does).",
)
@escalate_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def label(
    input_path: str,
    output: Path,
    schema: str,
    model: str | None,
    hosts: tuple[str, ...],
    local: bool,
    backend: BackendName,
    text_field: str,
    id_field: str,
    input_format: str,
    concurrency: int | None,
    call: CallOptions,
    show_prompt: bool,
    no_cache: bool,
    cache_path: Path | None,
    retry_failed: bool,
    allow_duplicate_ids: bool,
    min_confidence: float | None,
    config_path: Path | None,
    force: bool,
    export_path: Path | None,
    domain_prior: bool | None,
    escalate_specs: tuple[str, ...],
    thresholds_text: str | None,
    cascade_config: Path | None,
    quiet: bool,
) -> None:
    """Label each record of INPUT (JSONL or CSV; - reads JSONL from stdin) into OUTPUT.

    OUTPUT gets exactly one JSON line per input line, {"id", "line", "ok", "value" or "error",
    "attempts", "usage", "cached"}, flushed as each finishes; choice fields add "confidence"
    and "scores" (each option's probability). The schema goes beside OUTPUT, in
    OUTPUT.schema.json, for `extract eval`. "line" is the input line number
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
    kind = _input_kind(source, input_format)
    config = LabelingConfig.load(config_path) if config_path is not None else None
    if config is not None:
        if model is None and config.provenance is not None:
            model = config.provenance.model
        if domain_prior is None:
            domain_prior = config.prior
    tiers, thresholds = resolve_cascade(escalate_specs, thresholds_text, cascade_config)
    stream, docs = _open_input(source, kind, id_field, text_field)
    if show_prompt:
        shown = config.call_options(call)[0] if config is not None else call
        with stream, local_server(local, hosts, model) as (urls, chosen):
            _show_prompt(docs, chosen, urls, schema, shown, backend)
        return
    reread = None
    if source is not None:
        reread = functools.partial(_read_again, source, kind, id_field, text_field)
    # From a file, the in-domain prior reads its first documents, resumed or not, so a rerun
    # decides as the first run did; from stdin, the first documents of this run.
    prior: bool | list[str] = domain_prior is not False
    if prior and reread is not None:
        prior = _first_texts(reread())
    sink = OutputFile(output)
    # What this run makes (the file, and folders for it): removed again should the run stop
    # before its first record, so that a failed start leaves nothing behind.
    created = _missing(output)
    read = _Counted(docs)
    tally = Tally()
    progress: Progress | None = None
    finished = False
    with sigterm_interrupts():
        try:
            written = sink.resume(retry_failed=retry_failed)
            tally.resumed, tally.resumed_failed = written.records, written.failed
            if not quiet:
                _announce(written, output)
            pending = Pending(written, allow_duplicates=allow_duplicate_ids)
            with local_server(local, hosts, model) as (urls, chosen):
                show_bar = not quiet and sys.stderr.isatty()
                total = _total(source, kind) if show_bar else None
                progress = Progress(stream=sys.stderr, show=show_bar, total=total, tally=tally)
                cache = None if no_cache else Cache(cache_path)
                tally.started = time.monotonic()
                try:
                    asyncio.run(
                        _label_all(
                            pending(read, reread=reread),
                            sink,
                            progress,
                            model=chosen,
                            urls=urls,
                            backend=backend,
                            schema=schema,
                            call=call,
                            concurrency=concurrency,
                            min_confidence=min_confidence,
                            cache=cache,
                            domain_prior=prior,
                            tally=tally,
                            config=config,
                            force=force,
                            tiers=tiers,
                            thresholds=thresholds,
                        )
                    )
                finally:
                    if cache is not None:
                        cache.close()
            finished = True
        except KeyboardInterrupt as stop:
            _finish(progress, tally, quiet)
            terminated = isinstance(stop, Terminated)
            how = "terminated" if terminated else "interrupted"
            click.echo(f"{how}: rerun the same command to label the rest", err=True)
            sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
        finally:
            if progress is not None:
                progress.close()
            sink.close()
            stream.close()
            if not finished:
                _remove_if_empty(created)
    _finish(progress, tally, quiet)
    if not read.count:
        where = "stdin" if source is None else input_path
        warning = f"warning: {where} holds no records: nothing was labeled"
        click.secho(warning, fg="yellow", err=True)
    if export_path is not None:
        rows = export(output, export_path)
        if not quiet:
            click.echo(f"exported {rows} records to {export_path}", err=True)
    if tally.failures or tally.resumed_failed:
        sys.exit(EXIT_SOME_FAILED)


async def _label_all(
    docs: Iterable[Document],
    sink: OutputFile,
    progress: Progress,
    *,
    model: str | None,
    urls: list[str],
    backend: BackendName,
    schema: str,
    call: CallOptions,
    concurrency: int | None,
    min_confidence: float | None,
    cache: Cache | None,
    domain_prior: bool | list[str],
    tally: Tally,
    config: LabelingConfig | None = None,
    force: bool = False,
    tiers: list[Tier],
    thresholds: list[float] | None,
) -> None:
    session = Labeling(
        schema,
        model=model,
        hosts=urls,
        backend=backend,
        concurrency=concurrency,
        cache=cache,
        domain_prior=domain_prior,
        config=config,
        force=force,
        escalate=tiers,
        thresholds=thresholds,
        **call,
    )
    write_sidecar(sink.path, session.schema, session.model)
    async with session:
        counted = 0
        async for record in session.aresults(docs):
            for learned in session.priors[counted:]:
                tally.add_prior(learned)
            counted = len(session.priors)
            line = record.to_json()
            least = record.min_confidence
            # An ok record that should carry confidence but does not cannot be shown to clear
            # the bar: it is counted, and marked for review under --min-confidence.
            unscored = record.ok and least is None and session.wants_confidence
            review = min_confidence is not None and (
                unscored
                or (least is not None and least < min_confidence)
                or record.accepted is False
            )
            if review:
                line["review"] = True
            sink.write(line)
            progress.update(record, review=review, unscored=unscored)
        if session.shift is not None and session.shift.differs(SHIFT_ALPHA):
            tally.notes.append(shift_warning(session.shift))


class _Counted(Iterator[Document]):
    """The documents of INPUT, counted as they are read."""

    def __init__(self, docs: Iterator[Document]) -> None:
        self._docs = docs
        self.count = 0

    def __next__(self) -> Document:
        doc = next(self._docs)
        self.count += 1
        return doc


def _missing(path: Path) -> list[Path]:
    """``path`` and those of its folders that do not exist yet, innermost first."""
    missing: list[Path] = []
    for item in (path, *path.absolute().parents):
        if item.exists():
            break
        missing.append(item)
    return missing


def _remove_if_empty(created: list[Path]) -> None:
    """Remove what a run that wrote no record created: its empty output file and the schema
    sidecar beside it, then the folders made for it (each only while empty)."""
    if not created:
        return
    file, *folders = created
    try:
        if file.stat().st_size:
            return
        file.unlink()
    except FileNotFoundError:
        pass
    sidecar_path(file).unlink(missing_ok=True)
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _input_kind(source: Path | None, given: str) -> str:
    if given != "auto":
        return given
    suffix = source.suffix.lower() if source is not None else ""
    return {".csv": "csv", ".parquet": "parquet"}.get(suffix, "jsonl")


def _open_input(
    source: Path | None, kind: str, id_field: str, text_field: str
) -> tuple[contextlib.ExitStack, Iterator[Document]]:
    """INPUT's documents, and what closes the file behind them."""
    stack = contextlib.ExitStack()
    docs: Iterator[Document]
    if kind == "parquet":
        if source is None:
            raise click.UsageError("Parquet input must be a file, not stdin")
        parquet = read_parquet(source, id_field=id_field, text_field=text_field)
        stack.callback(parquet.close)
        docs = parquet
    elif kind == "csv":
        text = stack.enter_context(open_csv(source))
        docs = read_csv(text, id_field=id_field, text_field=text_field)
    else:
        raw: IO[bytes] = sys.stdin.buffer if source is None else open(source, "rb")  # noqa: SIM115
        stack.callback(raw.close)
        docs = read_jsonl(raw, id_field=id_field, text_field=text_field)
    return stack, docs


def _first_texts(docs: Generator[Document]) -> list[str]:
    """The texts of the first documents (as many as a run's warm-up reads)."""
    with contextlib.closing(docs):
        usable = (d.text for d in docs if d.error is None and d.text)
        return list(itertools.islice(usable, WARM_UP_DOCUMENTS))


def _read_again(source: Path, kind: str, id_field: str, text_field: str) -> Generator[Document]:
    """INPUT read anew from the start (to check it against OUTPUT); closed with the generator."""
    stream, docs = _open_input(source, kind, id_field, text_field)
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


def _total(source: Path | None, kind: str) -> int | None:
    if source is None or kind == "parquet":
        return None
    return max(0, count_lines(source) - (kind == "csv"))


def _show_prompt(
    docs: Iterator[Document],
    model: str | None,
    urls: list[str],
    schema: str,
    call: CallOptions,
    backend: BackendName,
) -> None:
    """Print the request the first sendable document would make, as JSON."""
    first = next((d for d in docs if d.error is None and d.text and d.text.strip()), None)
    if first is None:
        raise click.UsageError("INPUT has no document to show a prompt for")
    with Extractor(model, host=urls[0] if urls else None, backend=backend, **call) as ex:
        request = ex.preview(first.text or "", schema)
    click.echo(json.dumps(request, indent=2, ensure_ascii=False))


def _finish(progress: Progress | None, tally: Tally, quiet: bool) -> None:
    if progress is not None:
        progress.close()
    if not quiet:
        click.echo(tally.summary(), err=True)
