"""The pure parts of tuning on gold: the calibration split, the cross-validation folds, the
worked examples a fold may use, the successive-halving schedule, and the choice of a winner.

Everything here is deterministic given its seed, and knows nothing of models or servers:
``extract.batch.tune`` runs the candidates and hands their per-record results back here.

Stratification is by a record's *stratum* (its gold label, as text): the calibration split and
the folds keep each label's share, and examples are drawn round-robin over labels, so k=2 on a
two-label schema shows one of each.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

K = TypeVar("K")
C = TypeVar("C")

DEFAULT_CALIBRATION = 0.4
DEFAULT_FOLDS = 3
# The smallest subset a candidate is scored on in the first round of successive halving:
# fewer records than this rank candidates by noise.
MIN_ROUND_RECORDS = 20
RESAMPLES = 2000
LEVEL = 0.95


def _by_stratum(keys: Sequence[K], strata: Mapping[K, str], seed: int) -> list[list[K]]:
    """The keys grouped by stratum (groups in sorted stratum order), each group shuffled."""
    groups: dict[str, list[K]] = defaultdict(list)
    for key in keys:
        groups[strata.get(key, "")].append(key)
    rng = random.Random(seed)
    shuffled = []
    for name in sorted(groups):
        group = list(groups[name])
        rng.shuffle(group)
        shuffled.append(group)
    return shuffled


def calibration_split(
    keys: Sequence[K], strata: Mapping[K, str], fraction: float, *, seed: int = 0
) -> tuple[list[K], list[K]]:
    """``(tuning, calibration)``: ``fraction`` of the keys (rounded, stratified) held out for
    calibration, the rest for tuning, each in the order of ``keys``.

    Raises ValueError for a fraction outside [0, 1).

    >>> calibration_split(list(range(10)), {}, 0.4)[1]
    [1, 5, 7, 8]
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"the calibration fraction must be in [0, 1), not {fraction}")
    held: set[K] = set()
    for group in _by_stratum(keys, strata, seed):
        held.update(group[: round(len(group) * fraction)])
    return [k for k in keys if k not in held], [k for k in keys if k in held]


def assign_folds(
    keys: Sequence[K], strata: Mapping[K, str], folds: int, *, seed: int = 0
) -> dict[K, int]:
    """Each key's fold (0..folds-1), dealt round-robin within each stratum, so every fold
    holds its share of every label. Raises ValueError for fewer than 2 folds or more folds
    than keys."""
    if folds < 2 or folds > len(keys):
        raise ValueError(f"cannot make {folds} folds of {len(keys)} records (2..{len(keys)})")
    assigned: dict[K, int] = {}
    position = 0
    for group in _by_stratum(keys, strata, seed):
        for key in group:
            assigned[key] = position % folds
            position += 1
    return assigned


def draw_examples(pool: Sequence[K], strata: Mapping[K, str], k: int, *, seed: int = 0) -> list[K]:
    """``k`` keys of ``pool`` (fewer when it is smaller), taken round-robin over strata, each
    stratum shuffled by ``seed``: a balanced set of worked examples.

    >>> draw_examples(["a1", "a2", "b1"], {"a1": "a", "a2": "a", "b1": "b"}, 2)
    ['a1', 'b1']
    """
    groups = _by_stratum(sorted(pool, key=str), strata, seed)
    drawn: list[K] = []
    while len(drawn) < k and any(groups):
        for group in groups:
            if group and len(drawn) < k:
                drawn.append(group.pop(0))
    return drawn


def fold_examples(
    folds: Mapping[K, int],
    usable: Sequence[K],
    strata: Mapping[K, str],
    k: int,
    *,
    seed: int = 0,
) -> dict[int, list[K]]:
    """For each fold, ``k`` examples drawn (see :func:`draw_examples`) only from the
    ``usable`` keys of the *other* folds: a record is never scored with itself, or any record
    of its own fold, among the examples."""
    examples: dict[int, list[K]] = {}
    for fold in sorted(set(folds.values())):
        pool = [key for key in usable if key in folds and folds[key] != fold]
        examples[fold] = draw_examples(pool, strata, k, seed=seed + fold)
    return examples


def round_sizes(records: int, candidates: int, *, smallest: int = MIN_ROUND_RECORDS) -> list[int]:
    """How many records each round of successive halving scores its candidates on: doubling
    up to all ``records``, one round per halving of ``candidates`` (down to two).

    >>> round_sizes(120, 16), round_sizes(120, 2), round_sizes(30, 16)
    ([20, 30, 60, 120], [120], [20, 30])
    """
    rounds = max(1, math.ceil(math.log2(max(candidates, 1))))
    sizes = [
        min(records, max(smallest, math.ceil(records / 2 ** (rounds - 1 - r))))
        for r in range(rounds)
    ]
    kept: list[int] = []
    for size in sizes:
        if not kept or size > kept[-1]:
            kept.append(size)
    return kept


def planned_records(sizes: Sequence[int], candidates: int) -> int:
    """How many records successive halving labels at most (each record once per candidate,
    later rounds reusing the earlier ones'), when the default is kept besides the better half.

    >>> planned_records([20, 30, 60, 120], 16)
    830
    """
    total, alive, done = 0, candidates, 0
    for size in sizes:
        total += alive * (size - done)
        done = size
        kept = max(2, math.ceil(alive / 2))
        alive = min(alive, kept + 1)
    return total


@dataclasses.dataclass(frozen=True, slots=True)
class Scored:
    """A candidate's results on the records scored so far: ``right`` per record key."""

    candidate: Any
    right: Mapping[Any, bool]
    cost: float

    def accuracy(self, keys: Sequence[Any]) -> float:
        """The share of ``keys`` it got right (a key it has no result for counts as wrong)."""
        return sum(self.right.get(k, False) for k in keys) / len(keys) if keys else 0.0


def rank(scored: Sequence[Scored], keys: Sequence[Any]) -> list[Scored]:
    """Best first: higher accuracy on ``keys``, then (ties) the lower cost, then the order
    given (the default, listed first, wins a full tie)."""
    order = {id(s): i for i, s in enumerate(scored)}
    return sorted(scored, key=lambda s: (-s.accuracy(keys), s.cost, order[id(s)]))


def halve(
    scored: Sequence[Scored], keys: Sequence[Any], *, keep_always: Callable[[Any], bool]
) -> list[Scored]:
    """The better half (rounded up, at least two) by :func:`rank`, plus any candidate
    ``keep_always`` names (the default, which the winner is compared with)."""
    ranked = rank(scored, keys)
    kept = ranked[: max(2, math.ceil(len(ranked) / 2))]
    kept += [s for s in ranked[len(kept) :] if keep_always(s.candidate)]
    return kept


def bootstrap_interval(
    right: Sequence[bool], *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """``(accuracy, low, high)``: the share right, with its percentile bootstrap interval.

    Raises ValueError for no records.

    >>> bootstrap_interval([True] * 8 + [False] * 2)[0]
    0.8
    """
    if not right:
        raise ValueError("bootstrap_interval needs at least one record")
    n = len(right)
    values = [int(r) for r in right]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    low = means[round(tail * (resamples - 1))]
    high = means[round((1 - tail) * (resamples - 1))]
    return sum(values) / n, low, high
