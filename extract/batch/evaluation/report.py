"""What ``evaluate`` returns: a frozen report per field, coverage, calibration and cost.

``EvalReport.to_dict()`` is JSON-ready; ``to_frame()`` needs pandas (imported on use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .doubts import GoldDoubt
from .fields import Kind
from .metrics import Calibration, ChoiceMetrics


@dataclasses.dataclass(frozen=True, slots=True)
class FieldReport:
    """The scores of one field over the ``records`` records that have gold for it.

    ``accuracy`` counts failed records as wrong; ``ok_accuracy`` is over the ``ok_records``
    that succeeded. ``choice`` is set for enum and boolean fields; ``normalized_accuracy``
    (case and whitespace ignored) for strings; ``precision``/``recall`` (over all elements of
    all records) for lists.
    """

    path: str
    kind: Kind
    records: int
    correct: int
    accuracy: float
    ok_records: int
    ok_accuracy: float | None
    choice: ChoiceMetrics | None = None
    normalized_accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Coverage:
    """How many output records have gold, how many of them are ok (``rate``), and what failed
    (``failures``: error type → records). Gold ids without an output record and output
    records without gold are counted, not scored (``missing_ids``: the first few); of a
    repeated id, in the output or in gold, only the first occurrence counts."""

    records: int
    ok: int
    failed: int
    rate: float
    failures: dict[str, int]
    gold_without_output: int
    output_without_gold: int
    missing_ids: tuple[str, ...]
    duplicate_ids: int
    duplicate_gold_ids: int


@dataclasses.dataclass(frozen=True, slots=True)
class Cost:
    """Tokens and server time of the whole output file, per record that called the model
    (records served from the cache cost nothing and are counted apart)."""

    records: int
    cached: int
    prompt_tokens: int
    output_tokens: int
    server_seconds: float
    tokens_per_record: float | None
    seconds_per_record: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class RecordResult:
    """One scored record: which fields had gold (``scored``) and which of them were wrong."""

    id: Any
    key: str
    line: int | None
    ok: bool
    value: Any
    gold: Any
    confidence: float | None
    error: str | None
    scored: tuple[str, ...]
    wrong: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class EvalReport:
    """What :func:`evaluate` found. ``record_accuracy`` is the share of records whose every
    scored field is right; ``calibration`` is always there (its ``ece`` is None when no
    record carries confidence); ``records`` holds each scored record (not part of
    :meth:`to_dict`); ``doubtful_gold`` the gold rows to double-check, ranked (see
    ``extract.batch.evaluation.doubts``)."""

    fields: tuple[FieldReport, ...]
    coverage: Coverage
    record_accuracy: float
    calibration: Calibration
    cost: Cost
    records: tuple[RecordResult, ...] = dataclasses.field(repr=False, compare=False)
    doubtful_gold: tuple[GoldDoubt, ...] = ()

    def field(self, name: str) -> FieldReport:
        """The report of a field, by JSON path (``$.category``) or name; raises KeyError."""
        for report in self.fields:
            if name in (report.path, report.path.removeprefix("$.")):
                return report
        raise KeyError(f"no field {name!r}; fields: {', '.join(f.path for f in self.fields)}")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (everything but ``records``)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del data["records"]
        plain: dict[str, Any] = _plain(data)
        return plain

    def to_frame(self) -> Any:
        """One row per field (index: JSON path). Raises ImportError without pandas."""
        import pandas as pd

        rows = [
            {
                "path": f.path,
                "kind": f.kind,
                "records": f.records,
                "accuracy": f.accuracy,
                "ok_accuracy": f.ok_accuracy,
                "macro_f1": f.choice.macro_f1 if f.choice else None,
                "normalized_accuracy": f.normalized_accuracy,
                "precision": f.precision,
                "recall": f.recall,
            }
            for f in self.fields
        ]
        return pd.DataFrame(rows).set_index("path")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
