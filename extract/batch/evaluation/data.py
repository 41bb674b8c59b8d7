"""Reading what evaluation compares: output records, gold values and the input texts.

Ids compare as text, as in ``extract label`` (``7`` and ``"7"`` are the same id). Inputs read
with ``--gold-field`` or ``--input`` use the labeling input's own id rules, so a record without
an id field is matched by its line (JSONL) or row (CSV) number, as ``extract label`` numbered it.

Gold comes in three shapes, one row per id:

- fields: a key or column per top-level field of the value (``{"id": 7, "category": "bug"}``);
- ``value``: the whole value in one key or column (an object, or the scalar of a scalar root);
- a review file (a ``corrected`` column, see ``extract review``): the ``corrected`` cell when
  filled; rows left empty are skipped.

A null, empty or NaN gold field is not scored.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...errors import InputError
from ..ids import id_key
from ..records import open_csv, read_csv, read_jsonl
from .fields import CellText, is_blank

CORRECTED = "corrected"
VALUE = "value"
Source = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One output record as evaluation sees it.

    ``error`` is the error type (for ``ExtractionFailed``, the type of the last attempt's
    error); ``confidence`` and ``agreement`` map JSON paths to rates in 0..1; ``scores`` maps
    each choice field's path to its options' probabilities (``extract.batch.scores``);
    ``accepted`` is the run's mark under a guaranteed threshold (None: none was in force).
    """

    id: Any
    key: str
    line: int | None
    ok: bool
    value: Any
    error: str | None
    confidence: Mapping[str, float]
    agreement: Mapping[str, float]
    prompt_tokens: int
    output_tokens: int
    seconds: float
    cached: bool
    scores: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    accepted: bool | None = None

    @property
    def min_confidence(self) -> float | None:
        """The record's confidence: the lowest over its fields (None when it carries none)."""
        return min(self.confidence.values()) if self.confidence else None


@dataclasses.dataclass(frozen=True, slots=True)
class Gold:
    """Gold values by id key; ``texts`` holds the documents when gold came from the input."""

    values: dict[str, Any]
    duplicates: int = 0
    texts: dict[str, str] = dataclasses.field(default_factory=dict)


def record_key(record_id: Any, line: int | None) -> str:
    """How an output record meets its gold and its text: the id as text, or for a record
    without an id (null), its input line (``line N``), as ``extract label`` keys them.

    >>> record_key(7, 3), record_key(None, 3)
    ('7', 'line 3')
    """
    return id_key(record_id) if record_id is not None or line is None else f"line {line}"


def outcome_of(item: Any, position: int) -> Outcome:
    """An output record (a dict as ``extract label`` writes it, or a batch ``Record``).

    Raises InputError when it is not one.
    """
    to_json = getattr(item, "to_json", None)
    row = to_json() if callable(to_json) else item
    if not isinstance(row, Mapping) or "id" not in row:
        raise InputError(
            f"output record {position} is not an `extract label` record (it needs an 'id');"
            " pass the JSONL file `extract label` wrote"
        )
    usage = row.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    line = row.get("line")
    line = line if isinstance(line, int) else None
    return Outcome(
        id=row["id"],
        key=record_key(row["id"], line),
        line=line,
        ok=row.get("ok") is True,
        value=row.get(VALUE),
        error=None if row.get("ok") is True else _error_type(row.get("error")),
        confidence=_rates(row.get("confidence"), "confidence", position),
        agreement=_rates(row.get("agreement"), "agreement", position),
        prompt_tokens=_count(usage.get("prompt_eval_count")),
        output_tokens=_count(usage.get("eval_count")),
        seconds=_count(usage.get("total_duration")) / 1e9,
        cached=row.get("cached") is True,
        scores=_distributions(row.get("scores"), position),
        accepted=row["accepted"] if isinstance(row.get("accepted"), bool) else None,
    )


def _error_type(error: Any) -> str:
    if isinstance(error, Mapping):
        last = error.get("last_error")
        if isinstance(last, Mapping) and isinstance(last.get("type"), str):
            return str(last["type"])
        return str(error.get("type") or "unknown")
    if isinstance(error, str) and error:  # label_dataframe's "Type: message"
        return error.split(":", 1)[0]
    return "unknown"


def _rates(data: Any, what: str, position: int) -> dict[str, float]:
    if not isinstance(data, Mapping):
        return {}
    rates = {}
    for path, rate in data.items():
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise InputError(f"output record {position}: {what} {path} is {rate!r}, not in 0..1")
        rates[str(path)] = float(rate)
    return rates


def _distributions(data: Any, position: int) -> dict[str, dict[str, float]]:
    if not isinstance(data, Mapping):
        return {}
    return {
        str(path): _rates(options, f"scores of {path}", position)
        for path, options in data.items()
        if isinstance(options, Mapping)
    }


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return 0
    return int(value)


def read_outputs(source: Any) -> list[Outcome]:
    """Output records from a JSONL path, a pandas DataFrame or an iterable of records.

    A DataFrame without an ``id`` column uses its index as the ids. Raises InputError for a
    missing file or a line that is not an output record.
    """
    if isinstance(source, str | os.PathLike):
        return list(_output_lines(_existing(source, "output")))
    rows = _frame_rows(source, "id")
    items: Iterable[Any] = rows if rows is not None else source
    return [outcome_of(item, n) for n, item in enumerate(items, 1)]


def _output_lines(path: Path) -> Iterator[Outcome]:
    for number, line in _lines(path):
        try:
            row = json.loads(line)
        except ValueError:
            raise InputError(
                f"{path} line {number} is not JSON; if `extract label` was stopped while"
                " writing, rerun it to repair the last line"
            ) from None
        yield outcome_of(row, number)


def load_gold(
    source: Any, *, id_field: str = "id", gold_field: str | None = None, text_field: str = "text"
) -> Gold:
    """Gold values from a path (JSONL or CSV), a DataFrame, a mapping of id to value, or an
    iterable of rows; with ``gold_field``, from that field of the labeling input.

    Raises InputError for a missing or unreadable file, a row without an id, or a
    ``gold_field`` no record has.
    """
    if isinstance(source, Gold):
        return source
    if isinstance(source, str | os.PathLike):
        path = _existing(source, "gold")
        if gold_field is not None:
            return _gold_from_input(path, gold_field, id_field=id_field, text_field=text_field)
        return _collect(_file_rows(path, id_field), id_field, gold_field, str(path))
    rows = _frame_rows(source, id_field)
    if rows is None and isinstance(source, Mapping):
        return _collect(
            ({id_field: k, VALUE: v} for k, v in source.items()), id_field, None, "gold"
        )
    return _collect(rows if rows is not None else source, id_field, gold_field, "gold")


def _collect(rows: Iterable[Any], id_field: str, gold_field: str | None, where: str) -> Gold:
    values: dict[str, Any] = {}
    duplicates = 0
    for number, row in enumerate(rows, 1):
        if not isinstance(row, Mapping) or is_blank(row.get(id_field)):
            raise InputError(
                f"{where} row {number} has no {id_field!r} field; give every gold row the id of"
                " its output record (--id-field names the field), or read gold from the"
                " labeling input with --gold-field"
            )
        value = _row_value(row, id_field, gold_field)
        if value is _SKIP:
            continue
        key = id_key(row[id_field])
        duplicates += key in values
        values.setdefault(key, value)
    return Gold(values, duplicates)


_SKIP = object()


def _row_value(row: Mapping[str, Any], id_field: str, gold_field: str | None) -> Any:
    if gold_field is not None:
        value = row.get(gold_field)
        return _SKIP if is_blank(value) else _whole(value)
    if CORRECTED in row:
        value = row[CORRECTED]
        return _SKIP if is_blank(value) else _whole(value)
    if VALUE in row:
        return _SKIP if is_blank(row[VALUE]) else _whole(row[VALUE])
    fields = {str(k): v for k, v in row.items() if k != id_field and not is_blank(v)}
    return fields or _SKIP


def _whole(value: Any) -> Any:
    """A whole gold value; CSV text holding a JSON object, list or string is parsed."""
    if isinstance(value, CellText) and value.lstrip()[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _file_rows(path: Path, id_field: str) -> Iterator[Mapping[str, Any]]:
    if path.suffix.lower() == ".csv":
        with open_csv(path) as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is not None and id_field not in reader.fieldnames:
                raise InputError(
                    f"{path} has no {id_field!r} column (columns: {', '.join(reader.fieldnames)});"
                    " add the ids of the output records, name the column with --id-field, or"
                    " read gold from the labeling input with --gold-field"
                )
            for row in reader:
                # Empty cells are kept: an empty `corrected` cell marks an unreviewed row.
                yield {
                    k: CellText(v) for k, v in row.items() if isinstance(k, str) and v is not None
                }
        return
    for number, line in _lines(path):
        try:
            yield json.loads(line)
        except ValueError:
            raise InputError(f"{path} line {number} is not JSON") from None


def _is_cell(key: Any, value: Any) -> bool:
    # csv.DictReader files extra cells under None and fills short rows with None.
    return isinstance(key, str) and value is not None


def _gold_from_input(path: Path, gold_field: str, *, id_field: str, text_field: str) -> Gold:
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    duplicates = 0
    for doc in _documents(path, id_field=id_field, text_field=text_field):
        value = doc.fields.get(gold_field)
        if is_blank(value):
            continue
        value = _whole(CellText(value)) if isinstance(value, str) and _is_csv(path) else value
        key = record_key(doc.id, doc.line)
        duplicates += key in values
        values.setdefault(key, value)
        if doc.text is not None:
            texts.setdefault(key, doc.text)
    if not values:
        raise InputError(
            f"no record of {path} has a {gold_field!r} field; name the field holding the gold"
            " label with --gold-field"
        )
    return Gold(values, duplicates, texts)


def read_texts(source: Source, keys: set[str], *, id_field: str, text_field: str) -> dict[str, str]:
    """The text of each wanted id in a labeling input (JSONL or CSV).

    Raises InputError for a missing file, or a CSV header without ``text_field``.
    """
    texts: dict[str, str] = {}
    for doc in _documents(_existing(source, "input"), id_field=id_field, text_field=text_field):
        key = record_key(doc.id, doc.line)
        if key in keys and doc.text is not None:
            texts.setdefault(key, doc.text)
    return texts


def _documents(path: Path, *, id_field: str, text_field: str) -> Iterator[Any]:
    if _is_csv(path):
        with open_csv(path) as text:
            yield from read_csv(text, id_field=id_field, text_field=text_field)
        return
    with open(path, "rb") as raw:
        yield from read_jsonl(raw, id_field=id_field, text_field=text_field)


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _existing(source: Source, what: str) -> Path:
    path = Path(source)
    if not path.is_file():
        raise InputError(f"no {what} file at {path}; check the path")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file, numbered from 1."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _frame_rows(source: Any, id_field: str) -> list[dict[str, Any]] | None:
    """A pandas DataFrame's rows as dicts (the index as the ids when it has no id column)."""
    if not type(source).__module__.startswith("pandas") or not hasattr(source, "columns"):
        return None
    rows: list[dict[str, Any]] = source.to_dict("records")
    if id_field not in source.columns:
        for row, index in zip(rows, source.index, strict=True):
            row[id_field] = index
    return rows
