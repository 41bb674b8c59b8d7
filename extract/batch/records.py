"""Batch input and output: documents read from any line, the Record each one ends as, and
the resumable output file.

Readers never stop on a bad line: a line that is not UTF-8, not JSON, or lacks the text field
becomes a ``Document`` carrying an ``InputError``, so it still gets its one output record.
Nothing is read ahead; memory does not grow with the input.

Lines: every document and record carries ``line``, its 1-based position in the input — the
line number in JSONL (blank lines are skipped but counted), the data row in CSV (the header
is not a row), the position in a Python iterable. Each output record traces to its line.

Ids: a record's id field when present and not empty (null or ``""`` count as absent), else
``None`` (``"id": null`` in OUTPUT): a line that is not a record, and a record without an
id, have no id. A position is never used as an id, since it could collide with a real id
(line 2 against ``{"id": 2}``). Ids compare as text (``7`` and ``"7"`` are the same id); the
output keeps the type the input gave. ``extract.batch.ids`` says how a resumed run matches OUTPUT
to INPUT (by line) and how duplicate ids are handled.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..core.grounding import Span
from ..core.wire import Metrics
from ..errors import ConfigError, ExtractError, InputError
from .ids import MAX_LINE, Written
from .scores import rounded

_BOM = b"\xef\xbb\xbf"
# A flushed line survives a killed process; fsync (for a crashed machine) is paced, not per line.
FSYNC_INTERVAL = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """The outcome for one input record.

    ``value`` is the validated value (a Pydantic instance when the schema is a model) when
    ``ok``; ``error`` is the ExtractError that stopped it otherwise. ``attempts`` counts model
    calls, ``usage`` sums their counters (both zero for a cached value), ``fields`` holds the
    input's other fields. ``id`` is the input's id (None when it has none) and ``line`` its
    1-based position in the input (see the module docstring). ``chunks`` and ``spans`` are the
    Extraction's (see ``extract.Extraction``). ``confidence`` maps each scored field's JSON
    path to the probability of its value, ``scores`` each scored choice field's path to the
    probability of every option (see ``extract.batch.scores``); a record from the cache
    carries what the record that filled the cache did. ``accepted`` is set when a guaranteed
    threshold is in force (a labeling config's): whether the record's confidence reaches it.
    Under a cascade (``extract.batch.cascade``), ``tier`` is the 1-based tier that gave the
    record and ``accepted`` whether a tier's threshold accepted it, and ``tier_usage`` holds
    each tier's usage in tier order (the tiers it went through; ``usage`` is their sum);
    otherwise None and empty.
    """

    id: Any
    ok: bool
    value: Any = None
    error: ExtractError | None = None
    attempts: int = 0
    usage: Metrics = dataclasses.field(default_factory=Metrics)
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    cached: bool = False
    line: int | None = None
    chunks: int = 1
    spans: tuple[Span, ...] = ()
    confidence: Mapping[str, float] = dataclasses.field(default_factory=dict)
    samples: int = 1
    scores: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    accepted: bool | None = None
    # The server's refusal of the schema as format, when the record was made with "json".
    format_fallback: str | None = None
    tier: int | None = None
    tier_usage: tuple[Metrics, ...] = ()

    @property
    def min_confidence(self) -> float | None:
        """The record's confidence: its least confident field's, or None when it has none."""
        return min(self.confidence.values()) if self.confidence else None

    def to_json(self) -> dict[str, Any]:
        """The output line: ``{"id", "line", "ok", "value" | "error", "attempts", "usage",
        "cached"}``, plus ``"chunks"`` for a document read in pieces, ``"spans"`` where
        grounded values were found, ``"confidence"`` per choice field (per field, as
        ``"agreement"`` too, with ``"samples"``), the record's ``"min_confidence"``,
        ``"scores"``, each choice field's probability per option, ``"accepted"`` under a
        guaranteed threshold, ``"format_fallback"`` (the server's refusal) when it was made
        with format "json"; under a cascade ``"tier"``, with ``"review": true`` when no tier
        accepted the record."""
        out: dict[str, Any] = {"id": self.id, "line": self.line, "ok": self.ok}
        if self.ok:
            dump = getattr(self.value, "model_dump", None)
            out["value"] = dump(mode="json") if callable(dump) else self.value
        elif self.error is not None:
            out["error"] = self.error.to_dict()
        out.update(attempts=self.attempts, usage=self.usage.to_dict(), cached=self.cached)
        if self.chunks > 1:
            out["chunks"] = self.chunks
        if self.spans:
            out["spans"] = [span.to_dict() for span in self.spans]
        if self.confidence:
            out["confidence"] = {path: round(p, 4) for path, p in self.confidence.items()}
            out["min_confidence"] = round(min(self.confidence.values()), 4)
        if self.scores:
            out["scores"] = rounded(self.scores)
        if self.format_fallback:
            out["format_fallback"] = self.format_fallback
        if self.samples > 1:
            # With samples, the confidence is the share of samples that agreed.
            out["samples"] = self.samples
            out["agreement"] = out.get("confidence", {})
        if self.tier is not None:
            out["tier"] = self.tier
        if self.accepted is not None:
            out["accepted"] = self.accepted
            if self.tier is not None and not self.accepted:
                out["review"] = True
        if self.tier_usage:
            out["tier_usage"] = [usage.to_dict() for usage in self.tier_usage]
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """One input record: its id (None: none), its line, its text, the other fields, or why it
    cannot be sent."""

    id: Any
    line: int
    text: str | None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: InputError | None = None


def to_document(item: Any, position: int, *, id_field: str, text_field: str) -> Document:
    """A str or a mapping (id field, text field, other fields) as a Document.

    ``position`` becomes the document's line; a Document is returned as it is.

    >>> to_document("hi", 3, id_field="id", text_field="text")
    Document(id=None, line=3, text='hi', fields={}, error=None)
    >>> to_document({"id": "a", "text": "hi", "lang": "en"}, 1, id_field="id", text_field="text")
    Document(id='a', line=1, text='hi', fields={'lang': 'en'}, error=None)
    >>> to_document({"body": "hi"}, 2, id_field="id", text_field="text").error
    InputError("record 2: no 'text' field (fields: body)")
    """
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(None, position, item)
    if not isinstance(item, Mapping):
        error = InputError(
            f"record {position}: expected a str or a dict, not {type(item).__name__}"
        )
        return Document(None, position, None, error=error)
    given = item.get(id_field)
    doc_id = None if given == "" else given
    fields = {str(k): v for k, v in item.items() if k not in (id_field, text_field)}
    text = item.get(text_field)
    if text is None:
        names = ", ".join(map(str, item)) or "none"
        message = f"record {position}: no {text_field!r} field (fields: {names})"
        return Document(doc_id, position, None, fields, InputError(message, field=text_field))
    if not isinstance(text, str):
        message = f"record {position}: {text_field!r} must be text, not {type(text).__name__}"
        return Document(doc_id, position, None, fields, InputError(message, field=text_field))
    return Document(doc_id, position, text, fields)


def read_jsonl(stream: IO[bytes], *, id_field: str, text_field: str) -> Iterator[Document]:
    """Each non-blank line of a JSONL byte stream as a Document.

    A line holding a JSON string is the text itself; an object needs ``text_field``. A line that
    is not UTF-8, not JSON, or neither a string nor an object becomes an error Document.
    """
    for number, line in enumerate(stream, 1):
        if number == 1:
            line = line.removeprefix(_BOM)
        if not line.strip():
            continue
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield _bad(number, f"line {number}: not UTF-8 (byte {exc.start})")
            continue
        try:
            obj = json.loads(decoded)
        except (ValueError, RecursionError) as exc:
            reason = getattr(exc, "msg", str(exc))
            yield _bad(number, f"line {number}: not valid JSON ({reason})")
            continue
        if isinstance(obj, str | dict):
            yield to_document(obj, number, id_field=id_field, text_field=text_field)
        else:
            yield _bad(number, f"line {number}: expected an object or a string, got {obj!r:.40}")


def read_csv(stream: IO[str], *, id_field: str, text_field: str) -> Iterator[Document]:
    """Each data row of a CSV text stream (header first) as a Document.

    The header is read at once: raises InputError here when it lacks ``text_field``. Open the
    stream with ``newline=""`` and ``errors="surrogateescape"``: a row that is not UTF-8 then
    becomes an error Document instead of stopping the run. An empty file has no rows.
    """
    reader = csv.DictReader(stream)
    header = reader.fieldnames
    if header is None:
        return iter(())
    if text_field not in header:
        raise InputError(
            f"the CSV header has no {text_field!r} column (columns: {', '.join(header)}); "
            "name the text column with --text-field",
            field=text_field,
        )
    return _csv_rows(reader, id_field=id_field, text_field=text_field)


def _csv_rows(reader: csv.DictReader[str], *, id_field: str, text_field: str) -> Iterator[Document]:
    number = 0
    while True:
        number += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _bad(number, f"row {number}: unreadable CSV ({exc})")
            continue
        cells = {k: v for k, v in row.items() if isinstance(k, str)}
        if any(_undecodable(v) for v in cells.values()):
            yield _bad(number, f"row {number}: not UTF-8")
            continue
        yield to_document(cells, number, id_field=id_field, text_field=text_field)


def _undecodable(value: object) -> bool:
    # surrogateescape maps each byte that is not UTF-8 to a lone surrogate.
    return isinstance(value, str) and any("\udc80" <= c <= "\udcff" for c in value)


def _bad(position: int, message: str) -> Document:
    return Document(None, position, None, error=InputError(message))


def open_csv(path: Path | None) -> IO[str]:
    """A CSV file (None: stdin) opened as ``read_csv`` wants it."""
    if path is None:
        import sys

        return io.TextIOWrapper(sys.stdin.buffer, "utf-8", "surrogateescape", newline="")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def count_lines(path: Path) -> int:
    """Newlines in a file (plus one for an unterminated last line), read in blocks."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


class OutputFile:
    """The append-only JSONL output of a batch run, resumable after any crash.

    Call ``resume()`` first: it reads the records already written and cuts off a torn last
    line. ``write()`` appends one record and flushes it, so a killed process loses nothing it
    wrote.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._synced = time.monotonic()

    def resume(self, *, retry_failed: bool = False) -> Written:
        """The records already written: their lines and ids, and how many failed.

        With ``retry_failed``, failed records are first removed from the file (rewritten to a
        temporary file, then renamed over it, so a crash leaves the old file or the new one),
        so their lines count as not done. Creates the file when it does not exist, so a run
        over no records still leaves one. Raises ConfigError when a line other than the last
        is not an output record.
        """
        written = Written()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        good_end = 0
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                record = _parse_output_line(line)
                if record is None:
                    if f.read(1):
                        raise ConfigError(
                            f"{self.path} line {number} is not an output record; "
                            "fix or remove it, or write to another file"
                        )
                    break
                written.add(*record)
                good_end += len(line)
        self._repair(good_end)
        if retry_failed and written.failed:
            return self._drop_failed()
        return written

    def _drop_failed(self) -> Written:
        written = Written()
        temporary = self.path.with_name(f".{self.path.name}.retry")
        with open(self.path, "rb") as source, open(temporary, "wb") as kept:
            for line in source:
                record = _parse_output_line(line)
                if record is not None and record[2]:
                    kept.write(line)
                    written.add(*record)
            kept.flush()
            os.fsync(kept.fileno())
        os.replace(temporary, self.path)
        return written

    def _repair(self, good_end: int) -> None:
        size = self.path.stat().st_size
        with open(self.path, "r+b") as f:
            if good_end < size:
                # A torn last line: the write of an in-flight record was cut off.
                f.truncate(good_end)
            if good_end:
                f.seek(good_end - 1)
                if f.read(1) != b"\n":
                    # A whole record without its newline: keep it, finish the line.
                    f.seek(good_end)
                    f.write(b"\n")

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a JSON line and flush it."""
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open across writes
        try:
            data = json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSON escape: keep it escaped
            data = json.dumps(record).encode("ascii")
        self._file.write(data + b"\n")
        self._file.flush()
        if time.monotonic() - self._synced >= FSYNC_INTERVAL:
            self._sync()

    def _sync(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._sync()
            self._file.close()
            self._file = None


def _parse_output_line(line: bytes) -> tuple[Any, int | None, bool] | None:
    """An output line's id, input line (None when it has none: written before records had
    lines) and whether it is ok; None when the line is not an output record."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or "id" not in record:
        return None
    number = record.get("line")
    if number is not None and not (
        isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= MAX_LINE
    ):
        return None
    return record["id"], number, record.get("ok") is True
