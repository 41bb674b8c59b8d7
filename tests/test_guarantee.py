"""The guarantee's maths: exact binomial bounds, the fixed-sequence threshold against a
brute-force computation in exact rational arithmetic, the refusal's "how much more gold", the
guarantee's coverage of its promise on simulated gold, and the two-sample KS test."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from extract.core.guarantee import (
    binomial_tail,
    choose_threshold,
    lower_bound,
    min_records,
    needed_accepted,
    passes,
)
from extract.core.shift import ks_test


def exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    return sum(
        (Fraction(math.comb(n, i)) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)),
        Fraction(0),
    )


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (0, 5, "1/2"),
        (3, 5, "1/2"),
        (5, 5, "9/10"),
        (17, 20, "19/20"),
        (2, 40, "1/10"),
        (39, 40, "7/8"),
    ],
)
def test_the_binomial_tail_is_exact(k: int, n: int, p: str) -> None:
    assert binomial_tail(k, n, float(Fraction(p))) == pytest.approx(
        float(exact_tail(k, n, Fraction(p))), rel=1e-12, abs=1e-15
    )


@pytest.mark.parametrize(
    ("correct", "n"), [(1, 1), (7, 10), (10, 10), (45, 50), (0, 8), (190, 200)]
)
@pytest.mark.parametrize("delta", [0.05, 0.1])
def test_the_lower_bound_is_where_the_exact_tail_crosses_delta(
    correct: int, n: int, delta: float
) -> None:
    bound = lower_bound(correct, n, delta)
    if correct == 0:
        assert bound == 0.0
        return
    below, above = Fraction(bound) - Fraction(1, 10**9), Fraction(bound) + Fraction(1, 10**9)
    assert exact_tail(correct, n, below) <= Fraction(delta) <= exact_tail(correct, n, above)
    # Clopper–Pearson with all right has a closed form: delta ** (1 / n).
    if correct == n:
        assert bound == pytest.approx(delta ** (1 / n), abs=1e-9)


def brute_force(
    points: list[tuple[float | None, bool]], target: Fraction, delta: Fraction
) -> tuple[float | None, int, int]:
    """Every distinct confidence, highest first; skip those with too few records to pass even
    all right; stop at the first whose exact p-value exceeds delta."""
    least = next(n for n in itertools.count(1) if target**n <= delta)
    confidences = sorted({c for c, _ in points if c is not None}, reverse=True)
    best: tuple[float | None, int, int] = (None, 0, 0)
    for threshold in confidences:
        kept = [r for c, r in points if c is not None and c >= threshold]
        if len(kept) < least:
            continue
        if exact_tail(sum(kept), len(kept), target) > delta:
            break
        best = (threshold, len(kept), sum(kept))
    return best


@pytest.mark.parametrize("seed", range(60))
def test_the_threshold_matches_a_brute_force_computation(seed: int) -> None:
    rng = random.Random(seed)
    target = rng.choice([Fraction(7, 10), Fraction(4, 5), Fraction(3, 4)])
    delta = rng.choice([Fraction(1, 5), Fraction(1, 10)])
    size = rng.randint(1, 40)
    points: list[tuple[float | None, bool]] = []
    for _ in range(size):
        # Few distinct values (ties), some records without a confidence.
        confidence = rng.choice([None, *(round(0.5 + 0.05 * i, 2) for i in range(11))])
        right = rng.random() < (confidence or 0.5) + 0.1
        points.append((confidence, right))
    found = choose_threshold(points, float(target), float(delta), candidates=1000)
    assert (found.threshold, found.accepted, found.correct) == brute_force(points, target, delta)
    assert found.records == size
    if found.threshold is not None:
        assert found.coverage == found.accepted / size
        assert found.bound is not None
        assert found.bound >= float(target)


def test_min_records_is_the_fewest_that_can_pass() -> None:
    for target, delta in ((0.95, 0.05), (0.9, 0.1), (0.99, 0.01), (0.8, 0.2)):
        n = min_records(target, delta)
        assert passes(n, n, target, delta)
        assert not passes(n - 1, n - 1, target, delta)


def test_needed_records_are_the_fewest_at_the_observed_accuracy() -> None:
    for correct, n, target in ((98, 100, 0.95), (29, 30, 0.9), (60, 61, 0.95)):
        needed = needed_accepted(correct, n, target, 0.05)
        assert needed is not None
        rate = correct / n
        assert passes(math.floor(rate * needed + 1e-9), needed, target, 0.05)
        assert not passes(math.floor(rate * (needed - 1) + 1e-9), needed - 1, target, 0.05)
    assert needed_accepted(90, 100, 0.95, 0.05) is None  # below target: no gold helps


def test_a_refusal_says_how_much_gold_would_pass() -> None:
    rng = random.Random(7)
    # 60 records, 97% right at the top: too few to show 0.95 at 95% confidence.
    points: list[tuple[float | None, bool]] = [
        (0.5 + 0.5 * rng.random(), rng.random() < 0.97) for _ in range(60)
    ]
    found = choose_threshold(points, 0.95, 0.05)
    assert found.refused
    assert found.needed is not None
    assert found.needed > len(points)
    assert found.reason is not None
    assert f"about {found.needed} gold records ({found.needed - 60} more" in found.reason
    # The same gold, as many times over as it says (same accuracy at every level), passes.
    copies = math.ceil(found.needed / len(points))
    assert not choose_threshold(points * copies, 0.95, 0.05).refused


def test_a_refusal_without_hope_says_so() -> None:
    points: list[tuple[float | None, bool]] = [(0.9, i % 3 != 0) for i in range(90)]
    found = choose_threshold(points, 0.95, 0.05)
    assert found.refused
    assert found.needed is None
    assert found.reason is not None
    assert "lower the target" in found.reason
    nothing = choose_threshold([(None, True)] * 10, 0.95, 0.05)
    assert nothing.refused
    assert nothing.coverage == 0.0


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_levels_out_of_range_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_threshold([(0.9, True)], bad, 0.05)
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_threshold([(0.9, True)], 0.9, bad)


def overconfident(confidence: float) -> float:
    """The true accuracy at a confidence: it runs below the confidence, ever more so lower."""
    return 1 - 1.6 * (1 - confidence)


def accuracy_above(threshold: float) -> float:
    """The exact accuracy of records at or above ``threshold``, confidences uniform on
    [0.5, 1]: the mean of ``overconfident`` over [threshold, 1]."""
    return 1 - 0.8 * (1 - threshold)


def test_the_promise_holds_on_simulated_gold() -> None:
    """1000 gold draws of 200 records: the accepted records' true accuracy is at least the
    target in at least 1 - delta of them, less a binomial allowance of three standard
    deviations of the failure count (1000 * delta expected at worst, sd sqrt(1000 d (1-d)))."""
    target, delta, draws, size = 0.9, 0.1, 1000, 200
    rng = random.Random(2025)
    failures = refusals = 0
    coverages = []
    for _ in range(draws):
        points: list[tuple[float | None, bool]] = []
        for _ in range(size):
            confidence = 0.5 + 0.5 * rng.random()
            points.append((confidence, rng.random() < overconfident(confidence)))
        found = choose_threshold(points, target, delta)
        if found.threshold is None:
            refusals += 1  # accepts nothing: the promise holds vacuously
            continue
        coverages.append(found.coverage)
        failures += accuracy_above(found.threshold) < target
    allowance = 3 * math.sqrt(draws * delta * (1 - delta))
    assert failures <= draws * delta + allowance
    # And it is not vacuous: the best possible threshold, 0.875, would accept a quarter of
    # the records, and with 200 gold records about a third of the draws set one (646 refuse
    # with this seed) that accepts a tenth of the records or more on average.
    assert refusals < 0.7 * draws
    assert sum(coverages) / len(coverages) > 0.1


def permutation_p_value(first: list[float], second: list[float]) -> float:
    pool, size = first + second, len(first)
    observed = ks_test(first, second).statistic
    hits = total = 0
    for chosen in itertools.combinations(range(len(pool)), size):
        picked = set(chosen)
        a = [pool[i] for i in chosen]
        b = [pool[i] for i in range(len(pool)) if i not in picked]
        total += 1
        hits += ks_test(a, b).statistic >= observed - 1e-12
    return hits / total


@pytest.mark.parametrize("seed", range(6))
def test_the_exact_ks_p_value_matches_every_relabeling(seed: int) -> None:
    rng = random.Random(seed)
    first = [rng.random() for _ in range(rng.randint(2, 7))]
    second = [rng.random() ** 2 for _ in range(rng.randint(2, 7))]
    found = ks_test(first, second)
    assert found.method == "exact"
    assert found.p_value == pytest.approx(permutation_p_value(first, second), abs=1e-9)


def test_the_ks_test_flags_a_shift_and_not_its_absence() -> None:
    rng = random.Random(3)
    gold = [rng.betavariate(5, 2) for _ in range(200)]
    alike = [rng.betavariate(5, 2) for _ in range(200)]
    shifted = [rng.betavariate(2, 2) for _ in range(200)]
    assert not ks_test(alike, gold).differs(0.01)
    assert ks_test(shifted, gold).differs(0.01)
    big = ks_test([rng.betavariate(2, 2) for _ in range(700)], gold + alike)  # 700 × 400 cells
    assert big.method == "asymptotic"
    assert big.differs(0.01)
    with pytest.raises(ValueError, match="at least one"):
        ks_test([], gold)


def test_asymptotic_and_exact_ks_agree_on_moderate_samples() -> None:
    from extract.core import shift

    rng = random.Random(5)
    first = [rng.random() for _ in range(120)]
    second = [rng.random() ** 1.3 for _ in range(150)]
    exact = ks_test(first, second)
    gap = exact.statistic
    assert shift._asymptotic(120, 150, gap) == pytest.approx(exact.p_value, abs=0.02)
