"""Evaluation arithmetic, checked against scikit-learn and an independent numpy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from extract.batch.evaluation.metrics import (
    FAILED,
    MISSING,
    THRESHOLDS,
    calibration,
    choice_metrics,
    paired_bootstrap,
)

CLASSES = ["bug", "billing", "feature", "other"]
pairs = st.lists(
    st.tuples(st.sampled_from(CLASSES), st.sampled_from([*CLASSES, FAILED, MISSING])),
    min_size=1,
    max_size=60,
)


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=150, deadline=None)
@given(pairs)
def test_choice_metrics_equal_scikit_learn(data: list[tuple[str, str]]) -> None:
    gold = [g for g, _ in data]
    predicted = [p for _, p in data]
    m = choice_metrics(gold, predicted)
    classes = [c.label for c in m.classes]
    assert set(classes) == (set(gold) | set(predicted)) - {FAILED, MISSING}
    diagonal = sum(m.confusion[i][i] for i in range(len(classes)))
    assert diagonal / len(data) == pytest.approx(accuracy_score(gold, predicted))
    macro = f1_score(gold, predicted, labels=classes, average="macro", zero_division=0)
    assert m.macro_f1 == pytest.approx(macro)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=classes, zero_division=0
    )
    for i, c in enumerate(m.classes):
        # scikit-learn says 0 where we say None (no prediction, or no gold, for the class).
        assert (c.precision or 0.0) == pytest.approx(precision[i])
        assert (c.recall or 0.0) == pytest.approx(recall[i])
        assert c.precision is None or c.predicted > 0
        assert c.f1 == pytest.approx(f1[i])
        assert c.support == support[i]
    assert np.array_equal(m.confusion, confusion_matrix(gold, predicted, labels=list(m.labels)))


def test_classes_follow_the_given_order_then_sorted() -> None:
    m = choice_metrics(["zeta", "alpha", "mid"], ["alpha", "zeta", FAILED], order=["mid", "zeta"])
    assert m.labels == ("mid", "zeta", "alpha", FAILED)
    with pytest.raises(ValueError, match="2 gold labels but 1"):
        choice_metrics(["a", "b"], ["a"])


def _numpy_calibration(conf: np.ndarray, right: np.ndarray) -> tuple[float, list[int]]:
    index = np.minimum((conf * 10).astype(int), 9)
    ece = 0.0
    counts = []
    for k in range(10):
        members = index == k
        counts.append(int(members.sum()))
        if members.any():
            ece += members.mean() * abs(right[members].mean() - conf[members].mean())
    return ece, counts


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=1, max_size=80)
)
def test_calibration_equals_a_numpy_computation(points: list[tuple[float, bool]]) -> None:
    cal = calibration(points)
    assert cal is not None
    conf = np.array([c for c, _ in points])
    right = np.array([r for _, r in points], dtype=float)
    ece, counts = _numpy_calibration(conf, right)
    assert cal.ece == pytest.approx(ece)
    assert [b.count for b in cal.bins] == counts
    assert cal.records == len(points)
    for point in cal.curve:
        kept = conf >= point.threshold
        assert point.kept == kept.sum()
        assert point.coverage == pytest.approx(kept.mean())
        expected = right[kept].mean() if kept.any() else None
        assert point.accuracy == pytest.approx(expected)


def test_calibration_bins_edges_and_limits() -> None:
    cal = calibration([(0.0, True), (0.1, False), (0.3, True), (1.0, True)])
    assert cal is not None
    assert [(b.low, b.high) for b in cal.bins][:2] == [(0.0, 0.1), (0.1, 0.2)]
    assert [b.count for b in cal.bins] == [1, 1, 0, 1, 0, 0, 0, 0, 0, 1]
    assert [p.threshold for p in cal.curve] == list(THRESHOLDS)
    empty = calibration([])
    assert (empty.records, empty.ece, empty.curve, empty.temperature) == (0, None, (), None)
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        calibration([(1.2, True)])


def test_a_perfectly_calibrated_set_has_zero_ece() -> None:
    points = [(0.75, True)] * 3 + [(0.75, False)]
    cal = calibration(points)
    assert cal is not None
    assert cal.ece == pytest.approx(0.0)


def test_paired_bootstrap_is_reproducible_and_brackets_the_difference() -> None:
    base = [i % 3 != 0 for i in range(300)]
    other = [i % 5 != 0 for i in range(300)]
    first = paired_bootstrap(base, other)
    assert first == paired_bootstrap(base, other)
    assert first.records == 300
    assert first.difference == pytest.approx(sum(other) / 300 - sum(base) / 300)
    assert first.low < first.difference < first.high
    wider = paired_bootstrap(base[:60], other[:60])
    assert wider.high - wider.low > first.high - first.low


def test_paired_bootstrap_edges() -> None:
    same = paired_bootstrap([True, False] * 10, [True, False] * 10)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    better = paired_bootstrap([False] * 10, [True] * 10)
    assert (better.difference, better.low, better.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([True], [True, False])
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap([], [])


def test_bootstrap_interval_matches_the_normal_approximation() -> None:
    # Independent check of the percentile interval: for many records it is close to
    # difference ± 1.96 standard errors of the paired differences.
    base = [(i * 7919) % 10 < 7 for i in range(2000)]
    other = [(i * 104729) % 10 < 8 for i in range(2000)]
    interval = paired_bootstrap(base, other)
    diffs = np.array(other, dtype=float) - np.array(base, dtype=float)
    half = 1.96 * diffs.std() / math.sqrt(len(diffs))
    assert interval.low == pytest.approx(diffs.mean() - half, abs=0.006)
    assert interval.high == pytest.approx(diffs.mean() + half, abs=0.006)
