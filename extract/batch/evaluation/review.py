"""The review loop: export the records worth a person's look as a CSV, and read it back.

A record is worth a look when it failed, when a field's confidence is under a threshold, or
when an ``agreement`` rate (the share of samples that agreed on a field) is under 1. The CSV
has the columns ``id, line, [text,] value, confidence, reason, corrected``; the person writes
the right value into ``corrected`` as JSON (bare text is read as a string). The filled file is
gold for ``extract eval --gold`` and, through :func:`review_examples`, ``{"text", "value"}``
example lines.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from ...errors import InputError
from ..records import open_csv
from .data import CORRECTED, Outcome

TEXT = "text"


@dataclasses.dataclass(frozen=True, slots=True)
class ReviewItem:
    """A record to review and why."""

    outcome: Outcome
    reasons: tuple[str, ...]


def worth_review(outcomes: Iterable[Outcome], *, min_confidence: float | None) -> list[ReviewItem]:
    """The records that failed, are unsure (a field under ``min_confidence``) or whose samples
    disagree, in output order. With ``min_confidence``, an ok record without confidence in a
    run whose other records carry it is exported too (reason ``no confidence``): nothing
    shows it clears the bar."""
    outcomes = list(outcomes)
    scored_run = any(o.confidence for o in outcomes)
    items = []
    for o in outcomes:
        reasons = []
        if not o.ok:
            reasons.append(f"failed ({o.error})")
        elif min_confidence is not None and scored_run and not o.confidence and not o.agreement:
            reasons.append("no confidence")
        if min_confidence is not None:
            reasons += [
                f"confidence {rate:.2f} at {path}"
                for path, rate in o.confidence.items()
                if rate < min_confidence
            ]
        reasons += [
            f"samples disagree at {path} ({rate:.0%} agree)"
            for path, rate in o.agreement.items()
            if rate < 1
        ]
        if reasons:
            items.append(ReviewItem(o, tuple(reasons)))
    return items


def write_review(items: Iterable[ReviewItem], out: IO[str], texts: Mapping[str, str] | None) -> int:
    """Write the review CSV (a ``text`` column when ``texts`` is given); returns the rows."""
    columns = ["id", "line", *([TEXT] if texts is not None else []), "value", "confidence"]
    writer = csv.writer(out)
    writer.writerow([*columns, "reason", CORRECTED])
    rows = 0
    for item in items:
        o = item.outcome
        confidence = o.min_confidence
        row = [o.key, "" if o.line is None else str(o.line)]
        if texts is not None:
            row.append(texts.get(o.key, ""))
        row.append(json.dumps(o.value, ensure_ascii=False) if o.ok else "")
        row += ["" if confidence is None else f"{confidence:.4f}", "; ".join(item.reasons), ""]
        writer.writerow(row)
        rows += 1
    return rows


def review_examples(source: Path, out: IO[str]) -> int:
    """Turn the corrected rows of a review CSV into ``{"text", "value"}`` JSON lines.

    Rows whose ``corrected`` cell is empty are skipped. Returns the lines written. Raises
    InputError when the file is missing or lacks the ``text`` or ``corrected`` column.
    """
    if not source.is_file():
        raise InputError(f"no review file at {source}; check the path")
    with open_csv(source) as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if CORRECTED not in header or TEXT not in header:
            raise InputError(
                f"{source} lacks a {CORRECTED!r} or {TEXT!r} column; export the review with"
                " `extract review OUTPUT -o FILE --input INPUT` so that it holds the texts"
            )
        written = 0
        for row in reader:
            corrected, text = row.get(CORRECTED) or "", row.get(TEXT) or ""
            if not corrected.strip() or not text:
                continue
            line = {TEXT: text, "value": read_corrected(corrected)}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    return written


def read_corrected(cell: str) -> Any:
    """A ``corrected`` cell: JSON when it parses, else the text itself (a bare string label).

    >>> read_corrected('{"category": "bug"}'), read_corrected("bug"), read_corrected("3")
    ({'category': 'bug'}, 'bug', 3)
    """
    try:
        return json.loads(cell)
    except ValueError:
        return cell
