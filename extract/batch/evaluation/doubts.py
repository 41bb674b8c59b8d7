"""Gold rows to double-check: where the calibrated model contradicts the gold with high confidence.

Gold is noisy. A choice field whose value differs from its gold while the record says it is at
least :data:`HIGH_CONFIDENCE` sure of that value is either a confident mistake or a wrong gold
label; both are worth a person's look, and fixing the gold raises the real accuracy and the
measured one. Rows are ranked by how little probability the model left for the gold label
(``scores``; without them, at most one minus the confidence), then by confidence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .data import Outcome
from .fields import FieldSpec, is_blank, label_text, read_cell

# Confidence at or above which a contradicted gold label (or a mistake) counts as confident.
HIGH_CONFIDENCE = 0.8


@dataclasses.dataclass(frozen=True, slots=True)
class GoldDoubt:
    """One gold field the model contradicts: the gold label, the model's label, its confidence
    in it, and the probability it gave the gold label (None when the record has no scores;
    it is then at most ``1 - confidence``)."""

    id: Any
    key: str
    line: int | None
    path: str
    gold: str
    predicted: str
    confidence: float
    gold_probability: float | None

    @property
    def rank(self) -> tuple[float, float]:
        """Sort key: least probability left for the gold label first, then most confident."""
        left = self.gold_probability
        return (1.0 - self.confidence if left is None else left, -self.confidence)


def gold_doubts(
    pairs: Iterable[tuple[Outcome, Any]],
    specs: Sequence[FieldSpec],
    *,
    threshold: float = HIGH_CONFIDENCE,
) -> tuple[GoldDoubt, ...]:
    """The gold choice fields that ok records contradict at confidence ``threshold`` or more,
    ranked (see the module docstring). ``pairs`` are (output record, its gold value)."""
    found = []
    choices = [s for s in specs if s.kind == "choice"]
    for outcome, gold in pairs:
        if not outcome.ok:
            continue
        for spec in choices:
            doubt = _doubt(outcome, gold, spec, threshold)
            if doubt is not None:
                found.append(doubt)
    return tuple(sorted(found, key=lambda d: d.rank))


def _doubt(outcome: Outcome, gold: Any, spec: FieldSpec, threshold: float) -> GoldDoubt | None:
    present, raw = spec.pick(gold)
    confidence = outcome.confidence.get(spec.path)
    if not present or is_blank(raw) or confidence is None or confidence < threshold:
        return None
    has, value = spec.pick(outcome.value)
    expected, predicted = label_text(read_cell(raw, spec)), label_text(value)
    if not has or predicted == expected:
        return None
    scores: Mapping[str, float] = outcome.scores.get(spec.path, {})
    return GoldDoubt(
        id=outcome.id,
        key=outcome.key,
        line=outcome.line,
        path=spec.path,
        gold=expected,
        predicted=predicted,
        confidence=confidence,
        gold_probability=scores.get(expected) if scores else None,
    )
