"""The cascade's joint thresholds (extract.core.cascade): checked against a brute-force walk in
exact rational arithmetic, and for the promise itself on simulated gold of known accuracy."""

from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import pytest

from extract.core.cascade import TierPoint, candidates, choose_thresholds, path, route


def exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    return sum((comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)), Fraction(0))


def brute_force(
    gold: list[list[TierPoint]], target: float, delta: float
) -> tuple[float, ...] | None:
    """The walk written out plainly: every step's accepted records counted one by one, its
    p-value summed exactly; the smallest count that can pass found by trying counts."""
    t, d = Fraction(str(target)), Fraction(str(delta))
    least = next(n for n in range(1, 10_000) if exact_tail(n, n, t) <= d)
    chosen = None
    for thresholds in path(gold):
        accepted = right = 0
        for row in gold:
            for (confidence, ok), threshold in zip(row, thresholds, strict=False):
                if confidence is not None and confidence >= threshold:
                    accepted += 1
                    right += ok
                    break
        if accepted < least:
            continue
        if exact_tail(right, accepted, t) > d:
            break
        chosen = thresholds
    return chosen


def simulated(rng: random.Random, n: int, tiers: int) -> list[list[TierPoint]]:
    """Gold whose every tier is right with probability equal to its confidence (a calibrated
    tier); a tenth of the tiers' answers fail (no confidence)."""
    gold = []
    for _ in range(n):
        row: list[TierPoint] = []
        for tier in range(tiers):
            if rng.random() < 0.1:
                row.append((None, False))
                continue
            confidence = round(rng.uniform(0.5 + 0.1 * tier, 1.0), 2)
            row.append((confidence, rng.random() < confidence))
        gold.append(row)
    return gold


@pytest.mark.parametrize("seed", range(40))
def test_the_walk_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    gold = simulated(rng, rng.randint(20, 120), rng.choice([1, 2, 3]))
    target, delta = rng.choice([(0.8, 0.1), (0.85, 0.05), (0.9, 0.2)])
    found = choose_thresholds(gold, target, delta)
    assert found.thresholds == brute_force(gold, target, delta)
    if found.thresholds is not None:
        accepted = [route(row, found.thresholds) for row in gold]
        assert found.accepted == sum(a is not None for a in accepted)
        pairs = zip(gold, accepted, strict=True)
        assert found.correct == sum(row[a][1] for row, a in pairs if a is not None)
        assert sum(t.accepted for t in found.tiers) == found.accepted
        assert found.tiers[0].reached == len(gold)


def test_the_path_never_looks_at_the_labels() -> None:
    rng = random.Random(7)
    gold = simulated(rng, 80, 2)
    flipped = [[(c, not ok) for c, ok in row] for row in gold]
    assert path(gold) == path(flipped)
    assert path(gold)
    assert all(len(step) == 2 for step in path(gold))


def test_candidates_take_whole_confidence_levels() -> None:
    assert candidates([0.9, 0.8, 0.8, 0.7, None], most=2) == [0.9, 0.8]
    assert candidates([None, None]) == []
    assert candidates([0.5] * 30) == [0.5]


def test_a_refusal_says_what_to_do() -> None:
    gold: list[list[TierPoint]] = [[(0.9, i % 2 == 0), (0.8, i % 3 == 0)] for i in range(40)]
    found = choose_thresholds(gold, 0.95, 0.05)
    assert found.refused
    assert found.thresholds is None
    assert found.reason is not None
    assert "label more gold" in found.reason


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="one point per tier"):
        choose_thresholds([[(0.9, True)], [(0.9, True), (0.5, True)]], 0.9, 0.1)
    with pytest.raises(ValueError, match="target"):
        choose_thresholds([[(0.9, True)]], 1.5, 0.1)


def test_the_promise_holds_over_simulated_gold_draws() -> None:
    """On 300 gold draws of 200 records from calibrated tiers, the true accuracy of what the
    chosen thresholds accept (computed exactly from the known per-confidence accuracy over a
    large fresh batch) is below target in at most delta of the draws, plus a binomial
    allowance of three standard deviations."""
    target, delta, draws = 0.85, 0.1, 300
    rng = random.Random(2026)
    batch = simulated(random.Random(1), 20_000, 2)
    misses = 0
    for _ in range(draws):
        found = choose_thresholds(simulated(rng, 200, 2), target, delta)
        if found.thresholds is None:
            continue
        expected = [
            row[tier][0] for row in batch if (tier := route(row, found.thresholds)) is not None
        ]
        true_accuracy = sum(c for c in expected if c is not None) / len(expected)
        misses += true_accuracy < target
    allowance = 3 * (draws * delta * (1 - delta)) ** 0.5
    assert misses <= draws * delta + allowance
