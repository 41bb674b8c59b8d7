"""Tables in and out of a labeling run: Parquet input, and a finished JSONL output as a table.

The JSONL output stays the run's resumable log; :func:`export` turns it into a CSV or Parquet
file for the next step of a pipeline, one row per record:

- ``id``, ``line``, ``ok``, ``attempts``, ``cached``, ``chunks``;
- ``error_type`` and ``error`` (the message) for a failed record;
- ``prompt_tokens``, ``output_tokens``, ``server_seconds`` from its usage;
- one column per top-level field of the values (``value`` for a value that is not an object):
  a field that always holds strings, integers, numbers or booleans keeps that type, any other
  field is JSON text;
- ``review`` (true when the run marked the record for review, else false), and ``accepted``
  when some record carries it;
- ``confidence`` (the record's lowest), then ``confidence.<path>`` per scored field (e.g.
  ``confidence.$.category``) and ``score.<path>.<option>`` per option of each choice field
  (e.g. ``score.$.category.billing``): empty where a record has none.

Both passes over the output stream it, so memory stays flat however long the run was. Parquet
needs pyarrow (``pip install 'extract-llm[parquet]'``), imported only here.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .records import Document, to_document

ROWS_PER_BATCH = 10_000
_FLAGS = ("review", "accepted")
_FIXED = ("id", "line", "ok", "attempts", "cached", "chunks", "error_type", "error")
_USAGE = (
    ("prompt_tokens", "prompt_eval_count", 1),
    ("output_tokens", "eval_count", 1),
    ("server_seconds", "total_duration", 1e-9),
)


def read_parquet(path: Path, *, id_field: str, text_field: str) -> Generator[Document]:
    """Each row of a Parquet file as a Document, read a batch at a time.

    Raises ConfigError when pyarrow is missing or the file lacks ``text_field``.
    """
    parquet = _pyarrow_parquet()
    source = parquet.ParquetFile(path)
    names = source.schema_arrow.names
    if text_field not in names:
        raise ConfigError(
            f"{path} has no {text_field!r} column (columns: {', '.join(names)}); "
            "name the text column with --text-field"
        )
    return _rows(source, id_field=id_field, text_field=text_field)


def _rows(source: Any, *, id_field: str, text_field: str) -> Generator[Document]:
    position = 0
    for batch in source.iter_batches(batch_size=ROWS_PER_BATCH):
        for row in batch.to_pylist():
            position += 1
            yield to_document(row, position, id_field=id_field, text_field=text_field)


def export(output: Path, target: Path) -> int:
    """Write the records of the JSONL ``output`` to ``target`` (``.csv`` or ``.parquet``).

    Returns the number of rows. Raises ConfigError for another suffix, a missing output, or
    Parquet without pyarrow; a line that is not a record (a torn last line) is skipped.
    """
    kind = target.suffix.lower()
    if kind not in (".csv", ".parquet"):
        raise ConfigError(f"{target}: export writes .csv or .parquet files")
    if not output.is_file():
        raise ConfigError(f"{output}: no such output file")
    columns, extra = _columns(output)
    if kind == ".csv":
        return _write_csv(output, target, columns, extra)
    return _write_parquet(output, target, columns, extra)


def _records(output: Path) -> Iterator[dict[str, Any]]:
    with open(output, "rb") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "ok" in record:
                yield record


def _columns(output: Path) -> tuple[dict[str, str], list[str]]:
    """Each value column and its type (``string``, ``int64``, ``double``, ``bool`` or
    ``json``), and the trailing columns: flags, then confidences and scores (doubles)."""
    kinds: dict[str, set[str]] = {}
    accepted = False
    confidences: dict[str, None] = {}
    scores: dict[str, None] = {}
    for record in _records(output):
        for name, cell in _value_cells(record).items():
            kinds.setdefault(name, set()).add(_kind(cell))
        accepted = accepted or "accepted" in record
        confidences.update(dict.fromkeys(_confidence_cells(record)))
        scores.update(dict.fromkeys(_score_cells(record)))
    values = {name: _column_type(found - {"null"}) for name, found in kinds.items()}
    flags = ["review", *(["accepted"] if accepted else [])]
    return values, [*flags, "confidence", *confidences, *scores]


def _confidence_cells(record: dict[str, Any]) -> dict[str, float]:
    confidence = _mapping(record.get("confidence"))
    return {f"confidence.{p}": c for p, c in confidence.items() if _is_rate(c)}


def _score_cells(record: dict[str, Any]) -> dict[str, float]:
    cells = {}
    for path, options in _mapping(record.get("scores")).items():
        for option, p in _mapping(options).items():
            if _is_rate(p):
                cells[f"score.{path}.{option}"] = p
    return cells


def _is_rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_cells(record: dict[str, Any]) -> dict[str, Any]:
    if not record.get("ok"):
        return {}
    value = record.get("value")
    return value if isinstance(value, dict) else {"value": value}


def _kind(cell: Any) -> str:
    if cell is None:
        return "null"
    if isinstance(cell, bool):
        return "bool"
    if isinstance(cell, int):
        return "int64"
    if isinstance(cell, float):
        return "double"
    return "string" if isinstance(cell, str) else "json"


def _column_type(kinds: set[str]) -> str:
    if kinds <= {"int64"}:
        return "int64" if kinds else "string"
    if kinds <= {"int64", "double"}:
        return "double"
    return kinds.pop() if len(kinds) == 1 and kinds <= {"bool", "string"} else "json"


def _row(record: dict[str, Any], columns: dict[str, str], extra: list[str]) -> dict[str, Any]:
    error = _mapping(record.get("error"))
    usage = _mapping(record.get("usage"))
    row: dict[str, Any] = {
        "id": None if record.get("id") is None else str(record["id"]),
        "line": record.get("line"),
        "ok": bool(record.get("ok")),
        "attempts": record.get("attempts"),
        "cached": record.get("cached"),
        "chunks": record.get("chunks", 1),
        "error_type": error.get("type"),
        "error": error.get("message"),
    }
    for name, key, scale in _USAGE:
        amount = usage.get(key)
        row[name] = amount * scale if isinstance(amount, int | float) else None
    cells = _value_cells(record)
    for (name, kind), column in zip(columns.items(), _prefixed(columns, extra), strict=True):
        cell = cells.get(name)
        row[column] = (
            json.dumps(cell, ensure_ascii=False) if kind == "json" and cell is not None else cell
        )
    row["review"] = record.get("review") is True
    if "accepted" in record:
        row["accepted"] = record["accepted"] if isinstance(record["accepted"], bool) else None
    fields = _confidence_cells(record)
    if fields:
        row["confidence"] = min(fields.values())
    row.update(fields)
    row.update(_score_cells(record))
    return row


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _write_csv(output: Path, target: Path, columns: dict[str, str], extra: list[str]) -> int:
    names = [*_FIXED, *(u[0] for u in _USAGE), *_prefixed(columns, extra), *extra]
    count = 0
    with open(target, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for record in _records(output):
            writer.writerow(_row(record, columns, extra))
            count += 1
    return count


def _prefixed(columns: dict[str, str], extra: list[str]) -> list[str]:
    """Value columns that would clash with another column get a ``value.`` prefix."""
    taken = {*_FIXED, *(u[0] for u in _USAGE), *extra}
    return [f"value.{n}" if n in taken else n for n in columns]


def _write_parquet(output: Path, target: Path, columns: dict[str, str], extra: list[str]) -> int:
    import pyarrow as pa

    parquet = _pyarrow_parquet()
    arrow = {"json": pa.string(), "string": pa.string(), "int64": pa.int64()}
    arrow |= {"double": pa.float64(), "bool": pa.bool_()}
    fields = [
        pa.field("id", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("ok", pa.bool_()),
        pa.field("attempts", pa.int64()),
        pa.field("cached", pa.bool_()),
        pa.field("chunks", pa.int64()),
        pa.field("error_type", pa.string()),
        pa.field("error", pa.string()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("server_seconds", pa.float64()),
        *(
            pa.field(n, arrow[k])
            for n, k in zip(_prefixed(columns, extra), columns.values(), strict=True)
        ),
        *(pa.field(n, pa.bool_() if n in _FLAGS else pa.float64()) for n in extra),
    ]
    schema = pa.schema(fields)
    count = 0
    with parquet.ParquetWriter(target, schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in _records(output):
            batch.append(_row(record, columns, extra))
            if len(batch) == ROWS_PER_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count, batch = count + len(batch), []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
    return count


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ConfigError("Parquet needs pyarrow: pip install 'extract-llm[parquet]'") from None
    return parquet
