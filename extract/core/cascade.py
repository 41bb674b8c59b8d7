"""Thresholds for a cascade of labeling tiers, chosen jointly so that the cascade as a whole
keeps the promise: the records some tier accepts are at least ``target`` accurate, with
probability at least ``1 - delta`` over the draw of the gold.

A cascade labels a record with tier 1; when tier 1's confidence is below its threshold (or
tier 1 failed), tier 2 labels it, and so on. The record is accepted by the first tier whose
confidence reaches that tier's threshold; no tier accepting it sends it to review.

The procedure (fixed-sequence testing, as in "Trust or Escalate", Jung, Brahman & Choi,
ICLR 2025, here over one path through every tier's thresholds at once):

1. Every gold record is labeled by every tier (what each tier needs in gold: the whole gold,
   since which records reach a tier depends on the thresholds before it).
2. Each tier's candidate thresholds are its own distinct confidences on the gold, from the most
   confident down, spread evenly by records (at most ``MAX_CANDIDATES``).
3. Step ``j`` of the path sets every tier to its ``j``-th candidate (a tier with fewer stays
   at its last): all tiers are loosened together. The path depends on confidences only, never
   on which records are right, so its order is fixed before any label is looked at.
4. At each step the cascade is run on the gold: ``n`` records accepted by some tier, ``k`` of
   them right (each judged by the tier that accepted it). The step passes when the exact
   binomial p-value ``P(Bin(n, target) >= k)`` is at most ``delta`` (``core.guarantee``).
   Steps with fewer accepted records than ``min_records(target, delta)`` are skipped (counts
   alone decide that). The walk stops at the first step that does not pass; the thresholds
   are the last passing step's.

Fixed-sequence testing needs no correction for the number of steps, and since each step tests
the cascade's accepted records as a whole, no union bound over tiers is needed either: the
chance that the chosen thresholds accept records whose true accuracy is below target is at
most ``delta``. The promise is on the cascade's accepted records together, not on each tier's.

Loosening all tiers together is one path among many: a tier that is much worse calibrated
than the others stops the walk for all of them. The path is fixed in advance, which is what
keeps the guarantee; trying several paths on the same gold would spend it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from .guarantee import lower_bound, min_records, passes

MAX_CANDIDATES = 20

# One gold record as seen by one tier: its confidence (None: failed or unscored), and whether
# the tier's label is right.
TierPoint = tuple[float | None, bool]


def route(row: Sequence[TierPoint], thresholds: Sequence[float]) -> int | None:
    """The index of the first tier whose confidence reaches its threshold; None when none does.

    >>> route([(0.6, True), (0.9, False)], [0.8, 0.85]), route([(None, False)], [0.8])
    (1, None)
    """
    for tier, ((confidence, _), threshold) in enumerate(zip(row, thresholds, strict=True)):
        if confidence is not None and confidence >= threshold:
            return tier
    return None


def candidates(confidences: Sequence[float | None], most: int = MAX_CANDIDATES) -> list[float]:
    """A tier's candidate thresholds, most confident first: distinct confidences at least a
    stride of records apart, so that at most about ``most`` remain.

    >>> candidates([0.9, 0.8, 0.8, 0.7, None], most=2)
    [0.9, 0.8]
    """
    ranked = sorted((c for c in confidences if c is not None), reverse=True)
    if not ranked:
        return []
    stride = max(1, math.ceil(len(ranked) / most))
    chosen: list[float] = []
    last_seen = -stride
    for seen, confidence in enumerate(ranked, 1):
        distinct = seen == len(ranked) or ranked[seen] != confidence
        if distinct and seen - last_seen >= stride:
            chosen.append(confidence)
            last_seen = seen
    return chosen[:most]


def path(
    gold: Sequence[Sequence[TierPoint]], most: int = MAX_CANDIDATES
) -> list[tuple[float, ...]]:
    """The fixed sequence of threshold vectors tested: step ``j`` holds every tier's ``j``-th
    candidate (or its last). Empty when some tier has no confidence at all."""
    tiers = len(gold[0]) if gold else 0
    per_tier = [candidates([row[t][0] for row in gold], most) for t in range(tiers)]
    if not per_tier or any(not c for c in per_tier):
        return []
    steps = max(len(c) for c in per_tier)
    return [tuple(c[min(j, len(c) - 1)] for c in per_tier) for j in range(steps)]


@dataclasses.dataclass(frozen=True, slots=True)
class TierOutcome:
    """What one tier does on the gold under the chosen thresholds: records it accepts (of the
    ``reached`` that came to it) and how many of those it labels right."""

    threshold: float
    reached: int
    accepted: int
    correct: int


@dataclasses.dataclass(frozen=True, slots=True)
class CascadeStep:
    """One threshold vector tested: the cascade's accepted records, the right ones, pass or not."""

    thresholds: tuple[float, ...]
    accepted: int
    correct: int
    passed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class CascadeGuarantee:
    """What :func:`choose_thresholds` found on ``records`` gold records.

    ``thresholds`` is None when no step passed (a refusal; ``reason`` says why), else one per
    tier, with ``tiers`` what each does on the gold under them.
    """

    target: float
    delta: float
    records: int
    thresholds: tuple[float, ...] | None
    tiers: tuple[TierOutcome, ...]
    accepted: int
    correct: int
    bound: float | None
    steps: tuple[CascadeStep, ...]
    reason: str | None = None

    @property
    def refused(self) -> bool:
        return self.thresholds is None

    @property
    def coverage(self) -> float:
        return self.accepted / self.records if self.records else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.accepted if self.accepted else None


def outcome(
    gold: Sequence[Sequence[TierPoint]], thresholds: Sequence[float]
) -> tuple[TierOutcome, ...]:
    """Each tier's part when the cascade runs on ``gold`` under ``thresholds``."""
    reached = [0] * len(thresholds)
    accepted = [0] * len(thresholds)
    correct = [0] * len(thresholds)
    for row in gold:
        tier = route(row, thresholds)
        last = len(thresholds) - 1 if tier is None else tier
        for t in range(last + 1):
            reached[t] += 1
        if tier is not None:
            accepted[tier] += 1
            correct[tier] += row[tier][1]
    return tuple(
        TierOutcome(th, r, a, c)
        for th, r, a, c in zip(thresholds, reached, accepted, correct, strict=True)
    )


def choose_thresholds(
    gold: Sequence[Sequence[TierPoint]],
    target: float,
    delta: float,
    *,
    most: int = MAX_CANDIDATES,
) -> CascadeGuarantee:
    """The loosest thresholds on the fixed path that the walk accepts (module docstring).

    ``gold``: one row per gold record, one ``(confidence, right)`` per tier, in tier order.
    Raises ValueError for a target or delta outside (0, 1), rows of unequal length, or no tier.
    """
    least = min_records(target, delta)  # checks target and delta
    widths = {len(row) for row in gold}
    if len(widths) > 1:
        raise ValueError(f"every gold record needs one point per tier; lengths seen: {widths}")
    if widths == {0}:
        raise ValueError("a cascade needs at least one tier")
    steps: list[CascadeStep] = []
    chosen: CascadeStep | None = None
    for thresholds in path(gold, most):
        tiers = outcome(gold, thresholds)
        accepted = sum(t.accepted for t in tiers)
        if accepted < least:
            continue
        correct = sum(t.correct for t in tiers)
        step = CascadeStep(thresholds, accepted, correct, passes(correct, accepted, target, delta))
        steps.append(step)
        if not step.passed:
            break
        chosen = step
    if chosen is None:
        shown = f"{target:g} accuracy at {1 - delta:g} confidence"
        best = max((s.correct / s.accepted for s in steps), default=None)
        seen = f" (best seen: {best:.3f})" if best is not None else ""
        reason = (
            f"no thresholds let the cascade reach {shown} on {len(gold)} gold records{seen}; "
            f"a passing step needs at least {least} accepted records, all right at that count: "
            "label more gold with every tier, lower the target, or use a stronger last tier"
        )
        return CascadeGuarantee(
            target, delta, len(gold), None, (), 0, 0, None, tuple(steps), reason
        )
    return CascadeGuarantee(
        target,
        delta,
        len(gold),
        chosen.thresholds,
        outcome(gold, chosen.thresholds),
        chosen.accepted,
        chosen.correct,
        lower_bound(chosen.correct, chosen.accepted, delta),
        tuple(steps),
    )
