"""A confidence threshold that keeps its promise: the records at or above it are at least
``target`` accurate, with probability at least ``1 - delta`` over the draw of the gold.

The procedure (after "Trust or Escalate", Jung, Brahman & Choi, ICLR 2025, which applies the
fixed-sequence testing of Learn-then-Test to model judgments):

1. Candidate thresholds are taken from the gold's distinct confidences, from the most
   confident down, spread evenly by records (at most ``MAX_CANDIDATES``). They depend on the
   confidences only, never on which records are right, so the order is fixed before any
   label is looked at.
2. For candidate ``t`` with ``n`` gold records at or above it, ``k`` of them right, the null
   hypothesis "accuracy at or above ``t`` is below ``target``" is rejected when the exact
   binomial p-value ``P(Bin(n, target) >= k)`` is at most ``delta``; that is the same as the
   one-sided Clopper–Pearson lower bound at level ``1 - delta`` being at least ``target``.
3. Candidates are tested in order; the first that is not rejected stops the walk. The
   threshold is the last rejected one (the lowest, so the widest coverage). Fixed-sequence
   testing needs no multiplicity correction: the chance of accepting any threshold whose true
   accuracy is below target stays at most ``delta``.

Candidates with fewer records than ``min_records(target, delta)`` are skipped: they cannot be
rejected even if every record is right, and skipping them depends on counts alone, so the walk
does not stop on the first, nearly empty, candidates.

A record without a confidence (a failed one, or a reply whose fields could not be scored) is
never accepted; it counts in the gold and lowers coverage, not accuracy.

Why no scipy: the bound needs an exact binomial tail and a bisection, about forty lines here;
scipy would add tens of megabytes to every install and slow ``import extract``. The tests check
this code against exact rational arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

# Past this many records at the observed accuracy, "how much more gold" is not worth saying.
MAX_GOLD_ASKED = 1_000_000
# Thresholds tested at most, spread evenly over the gold's records (see ``_candidates``).
MAX_CANDIDATES = 20
_BISECTIONS = 64

Point = tuple[float | None, bool]


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, summed exactly in log space.

    >>> round(binomial_tail(2, 2, 0.5), 6), binomial_tail(0, 5, 0.3), binomial_tail(6, 5, 0.3)
    (0.25, 1.0, 0.0)
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    # Sum the shorter side: the terms of the other would cancel to the same digits anyway.
    upper = k > n * p
    span = range(k, n + 1) if upper else range(k)
    logs = [_log_pmf(i, n, p) for i in span]
    top = max(logs)
    part = min(1.0, math.exp(top) * math.fsum(math.exp(x - top) for x in logs))
    return part if upper else max(0.0, 1.0 - part)


def _log_pmf(i: int, n: int, p: float) -> float:
    log_choose = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
    return log_choose + i * math.log(p) + (n - i) * math.log1p(-p)


def lower_bound(correct: int, n: int, delta: float) -> float:
    """The one-sided Clopper–Pearson lower bound on an accuracy at level ``1 - delta``: the
    ``p`` at which ``P(Bin(n, p) >= correct) = delta``. 0 for no records or none right.

    Raises ValueError for counts or a level out of range.

    >>> round(lower_bound(10, 10, 0.05), 4)  # 0.05 ** (1 / 10)
    0.7411
    """
    _check_level(delta, "delta")
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct} must be between 0 and n={n}")
    if correct == 0:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        if binomial_tail(correct, n, middle) > delta:
            high = middle
        else:
            low = middle
    return low


def passes(correct: int, n: int, target: float, delta: float) -> bool:
    """Whether ``correct`` right of ``n`` shows an accuracy of at least ``target`` at level
    ``1 - delta``: the exact binomial p-value is at most ``delta``.

    >>> passes(59, 59, 0.95, 0.05), passes(58, 58, 0.95, 0.05)
    (True, False)
    """
    return n > 0 and binomial_tail(correct, n, target) <= delta


def min_records(target: float, delta: float) -> int:
    """The fewest records that can show ``target`` at level ``1 - delta``, all of them right.

    >>> min_records(0.95, 0.05), min_records(0.9, 0.1)
    (59, 22)
    """
    _check_level(target, "target")
    _check_level(delta, "delta")
    n = max(1, math.ceil(math.log(delta) / math.log(target)))
    while not passes(n, n, target, delta):  # rounding at the boundary
        n += 1
    while n > 1 and passes(n - 1, n - 1, target, delta):
        n -= 1
    return n


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One candidate tested: its threshold, records at or above it, how many are right."""

    threshold: float
    accepted: int
    correct: int
    passed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Guarantee:
    """What :func:`choose_threshold` found on ``records`` gold records.

    ``threshold`` is None when no candidate passed (a refusal); then ``needed`` is the gold
    records (in all) that would let one pass if the accuracy seen at its best candidate holds
    (None when no candidate is accurate enough for more gold to help), and ``reason`` says
    so in words. ``coverage`` is the share of the gold at or above the threshold, ``accuracy``
    its accuracy there, ``bound`` its Clopper–Pearson lower bound.
    """

    target: float
    delta: float
    records: int
    threshold: float | None
    accepted: int
    correct: int
    bound: float | None
    steps: tuple[Step, ...]
    needed: int | None = None
    needed_at: float | None = None
    reason: str | None = None

    @property
    def refused(self) -> bool:
        return self.threshold is None

    @property
    def coverage(self) -> float:
        return self.accepted / self.records if self.records else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.accepted if self.accepted else None


def choose_threshold(
    points: Sequence[Point], target: float, delta: float, *, candidates: int = MAX_CANDIDATES
) -> Guarantee:
    """The lowest confidence threshold that fixed-sequence testing accepts (module docstring).

    ``points``: one ``(confidence, right)`` per gold record, confidence None when the record
    has none. At most ``candidates`` thresholds are tested, spread evenly by records.
    Raises ValueError for a target or delta outside (0, 1), or fewer than one candidate.
    """
    _check_level(target, "target")
    _check_level(delta, "delta")
    if candidates < 1:
        raise ValueError(f"candidates={candidates!r}: test at least one threshold")
    levels = _levels(points)
    steps: list[Step] = []
    chosen: Step | None = None
    for threshold, seen, right in _candidates(levels, min_records(target, delta), candidates):
        step = Step(threshold, seen, right, passes(right, seen, target, delta))
        steps.append(step)
        if not step.passed:
            break
        chosen = step
    if chosen is None:
        return _refusal(len(points), levels, target, delta, tuple(steps))
    return Guarantee(
        target,
        delta,
        len(points),
        chosen.threshold,
        chosen.accepted,
        chosen.correct,
        lower_bound(chosen.correct, chosen.accepted, delta),
        tuple(steps),
    )


Level = tuple[float, int, int]  # a threshold, the records at or above it, how many are right


def _levels(points: Sequence[Point]) -> list[Level]:
    """Every distinct confidence, most confident first, with the records at or above it."""
    ranked = sorted(((c, r) for c, r in points if c is not None), key=lambda p: -p[0])
    levels: list[Level] = []
    right = 0
    for seen, (confidence, is_right) in enumerate(ranked, 1):
        right += is_right
        # A threshold takes every record of its confidence.
        if seen == len(ranked) or ranked[seen][0] != confidence:
            levels.append((confidence, seen, right))
    return levels


def _candidates(levels: list[Level], least: int, most: int) -> list[Level]:
    """The levels to test, in order: those with at least ``least`` records, at least a stride
    of records apart so that no more than about ``most`` are tested. Counts decide, never
    which records are right, so the sequence is fixed before the labels are looked at; fewer,
    wider steps also give the walk fewer chances to stop on one unlucky record."""
    usable = [level for level in levels if level[1] >= least]
    if not usable:
        return []
    stride = max(1, math.ceil((usable[-1][1] - usable[0][1] + 1) / most))
    chosen = [usable[0]]
    for level in usable[1:]:
        if level[1] - chosen[-1][1] >= stride:
            chosen.append(level)
    return chosen


def _refusal(
    total: int, levels: list[Level], target: float, delta: float, steps: tuple[Step, ...]
) -> Guarantee:
    """No threshold passed: how much gold would let one pass, were the gold larger with the
    same accuracy at every confidence level (see :func:`_scale_needed`)."""
    least = min_records(target, delta)
    needs = [(t, seen, needed_accepted(right, seen, target, delta)) for t, seen, right in levels]
    options = [
        (scale, needs[j][0])
        for j in range(len(needs))
        if (scale := _scale_needed(needs[: j + 1], least)) is not None
    ]
    shown = f"{target:g} accuracy at {1 - delta:g} confidence"
    if not options:
        top = max((s.correct / s.accepted for s in steps), default=None)
        seen_text = f" (best seen: {top:.3f})" if top is not None else ""
        reason = (
            f"no confidence threshold reaches {shown} on {total} gold records{seen_text}, and "
            "no confidence level on this gold is accurate enough for more gold to help: lower "
            "the target, or improve the labeling (extract tune)"
        )
        return Guarantee(target, delta, total, None, 0, 0, None, steps, reason=reason)
    scale, at = min(options)
    gold = max(total + 1, math.ceil(scale * total - 1e-9))
    reason = (
        f"no confidence threshold reaches {shown} on {total} gold records; about {gold} "
        f"gold records ({gold - total} more, drawn like these) would let a threshold near "
        f"{at:.3f} pass, if accuracy at each confidence level stays as seen here"
    )
    return Guarantee(
        target, delta, total, None, 0, 0, None, steps, needed=gold, needed_at=at, reason=reason
    )


def _scale_needed(levels: Sequence[tuple[float, int, int | None]], least: int) -> float | None:
    """How many times larger the gold must be for the walk to reach and pass the last of
    ``levels`` (each: threshold, records at or above it, records needed at its accuracy):
    every level that has ``least`` records at that size must pass too. None: never."""
    *before, (_, seen, needed) = levels
    if needed is None:
        return None
    scale = max(1.0, needed / seen)
    # Each level's own scale to pass (None: none), compared as ratios so that rounding in
    # ``scale * seen`` cannot keep a level blocking after scale reached it.
    wanted = [(s, None if n is None else n / s) for _, s, n in before]
    while True:
        blockers = [w for s, w in wanted if scale * s >= least and (w is None or scale < w)]
        if not blockers:
            return scale
        if any(w is None for w in blockers):
            return None
        scale = max(w for w in blockers if w is not None)


def needed_accepted(correct: int, n: int, target: float, delta: float) -> int | None:
    """The fewest records at the observed accuracy ``correct / n`` whose count of right ones
    (rounded down) passes; None when that accuracy is not above target or more than
    ``MAX_GOLD_ASKED`` records would be needed.

    >>> needed_accepted(98, 100, 0.95, 0.05)
    181
    """
    if n == 0 or correct / n <= target:
        return None
    rate = correct / n

    def ok(size: int) -> bool:
        return passes(math.floor(rate * size + 1e-9), size, target, delta)

    high = max(n, 1)
    while not ok(high):
        high *= 2
        if high > MAX_GOLD_ASKED:
            return None
    low = 0
    # The count passing is monotone but for rounding: the bisection lands within a record.
    while high - low > 1:
        middle = (low + high) // 2
        if ok(middle):
            high = middle
        else:
            low = middle
    return high


def _check_level(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name}={value!r}: give a number between 0 and 1 (exclusive)")
