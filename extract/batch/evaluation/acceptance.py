"""Guaranteed acceptance, measured on gold: the thresholds ``extract eval --target-accuracy``
sets (``core.guarantee``), and how the records a run accepted fared.

Per record, a record's confidence is its least confident field's and it is right when every
field with gold is; per field, each choice field's own confidence and correctness. A failed
record, or one without a confidence, is never accepted: it counts in coverage's denominator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ...core.guarantee import Guarantee, Point, choose_threshold
from ..labeling_config import Threshold
from .data import Outcome
from .report import EvalReport, RecordResult

RECORD = "record"


@dataclasses.dataclass(frozen=True, slots=True)
class Acceptance:
    """What a run's ``accepted`` marks were worth on gold: records marked, accepted, and the
    accuracy of the accepted ones (None when none was)."""

    marked: int
    accepted: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.accepted if self.accepted else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "marked": self.marked,
            "accepted": self.accepted,
            "correct": self.correct,
            "accuracy": self.accuracy,
        }


def points(
    report: EvalReport, outcomes: Sequence[Outcome], keep: set[str] | None = None
) -> dict[str, list[Point]]:
    """The ``(confidence, right)`` points per record (key ``"record"``) and per choice field
    (its JSON path), over the scored records whose key is in ``keep`` (all when None)."""
    by_key = {o.key: o for o in outcomes}
    chosen = [r for r in report.records if r.scored and (keep is None or r.key in keep)]
    found: dict[str, list[Point]] = {RECORD: [(_record_confidence(r), not r.wrong) for r in chosen]}
    for field in report.fields:
        if field.kind != "choice":
            continue
        found[field.path] = [
            (by_key[r.key].confidence.get(field.path) if r.ok else None, field.path not in r.wrong)
            for r in chosen
            if field.path in r.scored
        ]
    return found


def _record_confidence(result: RecordResult) -> float | None:
    return result.confidence if result.ok else None


def guarantees(
    found: Mapping[str, Sequence[Point]], target: float, delta: float
) -> dict[str, Guarantee]:
    """The threshold for each entry of :func:`points` that has records with a confidence."""
    return {
        name: choose_threshold(list(pts), target, delta)
        for name, pts in found.items()
        if any(c is not None for c, _ in pts)
    }


def as_threshold(found: Guarantee) -> Threshold | None:
    """A passed guarantee as the config stores it; None for a refusal."""
    if found.threshold is None or found.bound is None or found.accuracy is None:
        return None
    return Threshold(
        threshold=found.threshold,
        target_accuracy=found.target,
        delta=found.delta,
        coverage=round(found.coverage, 4),
        accuracy=round(found.accuracy, 4),
        lower_bound=round(found.bound, 4),
        gold_records=found.records,
        accepted=found.accepted,
    )


def acceptance(
    report: EvalReport, outcomes: Sequence[Outcome], threshold: float | None = None
) -> Acceptance | None:
    """How the records marked ``accepted`` fared; with ``threshold`` (a config's record
    threshold) it decides for records the run did not mark. None when no record is marked."""
    by_key = {o.key: o for o in outcomes}
    marked = accepted = correct = 0
    for result in report.records:
        if not result.scored:
            continue
        decided = by_key[result.key].accepted
        if decided is None and threshold is not None:
            decided = result.ok and result.confidence is not None and result.confidence >= threshold
        if decided is None:
            continue
        marked += 1
        accepted += decided
        correct += decided and not result.wrong
    return Acceptance(marked, accepted, correct) if marked else None


def render(found: Mapping[str, Guarantee], accepted: Acceptance | None) -> str:
    """The guarantee section of the text report."""
    lines: list[str] = []
    for name, guarantee in found.items():
        label = "per record" if name == RECORD else name
        head = (
            f"guarantee {label}: accuracy ≥ {guarantee.target:g} with probability "
            f"≥ {1 - guarantee.delta:g}, on {guarantee.records} gold records"
        )
        lines.append(head)
        if guarantee.threshold is None or guarantee.accuracy is None:
            lines.append(f"  refused: {guarantee.reason}")
            continue
        lines.append(
            f"  threshold {guarantee.threshold:.4f}: accepts {guarantee.accepted} "
            f"({100 * guarantee.coverage:.1f}% coverage), accuracy {guarantee.accuracy:.3f}, "
            f"lower bound {guarantee.bound:.3f}"
        )
    if accepted is not None:
        shown = "" if accepted.accuracy is None else f", accuracy {accepted.accuracy:.3f}"
        lines.append(f"accepted records: {accepted.accepted} of {accepted.marked} with gold{shown}")
    return "\n".join(lines)


def to_dict(found: Mapping[str, Guarantee], accepted: Acceptance | None) -> dict[str, Any]:
    """The guarantee section of the JSON report."""
    return {
        "thresholds": {
            name: {
                "threshold": g.threshold,
                "target_accuracy": g.target,
                "delta": g.delta,
                "gold_records": g.records,
                "accepted": g.accepted,
                "coverage": g.coverage,
                "accuracy": g.accuracy,
                "lower_bound": g.bound,
                "refused": g.reason,
                "gold_needed": g.needed,
            }
            for name, g in found.items()
        },
        "accepted": None if accepted is None else accepted.to_dict(),
    }
