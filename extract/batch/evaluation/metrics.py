"""The arithmetic of evaluation: pure functions over labels and confidences, no I/O.

Definitions (the README and ``extract eval --help`` repeat them):

- **Choice fields** (enums, booleans): a record is right when its value equals the gold value.
  Per class, precision = TP / (TP + FP) and recall = TP / (TP + FN) (None when the denominator
  is 0); F1 = 2TP / (2TP + FP + FN). Macro-F1 is the unweighted mean of F1 over the classes
  present in gold or in the predictions. The placeholders :data:`FAILED` (the record failed)
  and :data:`MISSING` (the value lacks the field) are predictions but not classes: they are
  misses for the gold class. These equal scikit-learn's ``precision_recall_fscore_support``
  and ``f1_score(average="macro", labels=<the classes>)``.
- **Calibration**: 10 equal-width bins; bin ``k`` holds the confidences ``c`` with
  ``k <= 10c < k + 1`` (1.0 goes to the last bin). ECE = sum over bins of
  ``count / total * |accuracy - mean confidence|``.
- **Confidence temperature**: fitted (``core.calibration.fit_temperature``) only on
  :data:`MIN_FIT_RECORDS` records or more; on fewer, one wrong record more or less moves it
  by a factor, and it is not given.
- **Accuracy against coverage**: keep the records whose confidence is at least a threshold;
  coverage is the share kept, accuracy is measured over what is kept.
- **Paired bootstrap**: resample the records (with replacement, the same records for both runs)
  ``resamples`` times with ``random.Random(seed)``; the interval holds the middle ``level`` of
  the resampled differences in accuracy (percentile method, nearest rank).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from ...core.calibration import fit_temperature, scaled

FAILED = "(failed)"
MISSING = "(missing)"
PLACEHOLDERS = (MISSING, FAILED)
BINS = 10
THRESHOLDS = (*(round(0.05 * k, 2) for k in range(20)), 0.99)
# Fewer records than this fit a temperature to their noise (9 records once "fitted" 0.01).
MIN_FIT_RECORDS = 50
RESAMPLES = 2000
SEED = 0
LEVEL = 0.95


@dataclasses.dataclass(frozen=True, slots=True)
class ClassMetrics:
    """One class of a choice field: gold count (support), predictions, precision, recall, F1."""

    label: str
    support: int
    predicted: int
    precision: float | None
    recall: float | None
    f1: float


@dataclasses.dataclass(frozen=True, slots=True)
class ChoiceMetrics:
    """A choice field's classes and confusion matrix.

    ``confusion[i][j]`` counts records whose gold is ``labels[i]`` and prediction ``labels[j]``;
    the placeholders come last, and only when they occur.
    """

    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    classes: tuple[ClassMetrics, ...]
    macro_f1: float


def choice_metrics(
    gold: Sequence[str], predicted: Sequence[str], order: Sequence[str] = ()
) -> ChoiceMetrics:
    """Per-class metrics and the confusion matrix of paired label lists.

    Classes come in ``order`` (e.g. the schema's enum), then the others sorted; a class in
    ``order`` that never occurs is left out. Raises ValueError when the lists differ in length.

    >>> m = choice_metrics(["a", "a", "b"], ["a", "b", FAILED])
    >>> m.labels, m.confusion
    (('a', 'b', '(failed)'), ((1, 1, 0), (0, 0, 1), (0, 0, 0)))
    >>> [(c.label, c.precision, c.recall) for c in m.classes], round(m.macro_f1, 3)
    ([('a', 1.0, 0.5), ('b', 0.0, 0.0)], 0.333)
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    seen = set(gold) | set(predicted)
    classes = [c for c in dict.fromkeys(order) if c in seen and c not in PLACEHOLDERS]
    classes += sorted(seen - set(classes) - set(PLACEHOLDERS))
    labels = classes + [p for p in PLACEHOLDERS if p in seen]
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g]][index[p]] += 1
    per_class = []
    for i, label in enumerate(classes):
        tp = matrix[i][i]
        support = sum(matrix[i])
        predictions = sum(row[i] for row in matrix)
        per_class.append(
            ClassMetrics(
                label=label,
                support=support,
                predicted=predictions,
                precision=tp / predictions if predictions else None,
                recall=tp / support if support else None,
                f1=2 * tp / (support + predictions),
            )
        )
    macro = sum(c.f1 for c in per_class) / len(per_class) if per_class else 0.0
    return ChoiceMetrics(
        labels=tuple(labels),
        confusion=tuple(tuple(row) for row in matrix),
        classes=tuple(per_class),
        macro_f1=macro,
    )


def normalise_text(text: str) -> str:
    """Text with case folded and whitespace runs made one space, for the lenient string match.

    >>> normalise_text("  New\\tYORK ")
    'new york'
    """
    return " ".join(text.split()).casefold()


@dataclasses.dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Confidences in ``[low, high)`` (the last bin includes 1.0): how many, how sure, how right."""

    low: float
    high: float
    count: int
    confidence: float | None
    accuracy: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class CoveragePoint:
    """Keeping the records with confidence >= ``threshold``: share kept and their accuracy."""

    threshold: float
    kept: int
    coverage: float
    accuracy: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Calibration:
    """How well confidence predicts being right, over ``records`` records that carry it.

    ``ece`` is None when no record carries confidence. ``temperature`` is the confidence
    temperature these records fit best, with ``fitted_ece`` the ECE under it (on these same
    records: an optimistic figure); both None when fewer than :data:`MIN_FIT_RECORDS` records
    carry confidence. ``unscored`` counts the ok records that carry none though the others
    do (records served from an old cache, a document read in pieces): they are in no figure
    here.
    """

    records: int
    ece: float | None
    bins: tuple[CalibrationBin, ...]
    curve: tuple[CoveragePoint, ...]
    temperature: float | None = None
    fitted_ece: float | None = None
    unscored: int = 0


def calibration(
    points: Sequence[tuple[float, bool]], *, fit: bool = True, unscored: int = 0
) -> Calibration:
    """ECE, per-bin accuracy and the accuracy-coverage curve of (confidence, right) pairs, and
    (``fit``, on at least :data:`MIN_FIT_RECORDS` pairs) the confidence temperature they fit
    best with the ECE under it. ``unscored`` is passed through.

    No pairs give no ECE and an empty curve. Raises ValueError for a confidence outside 0..1.

    >>> c = calibration([(0.95, True), (0.91, False), (0.35, False)])
    >>> round(c.ece, 3), [b.count for b in c.bins if b.count], c.temperature
    (0.403, [1, 2], None)
    >>> calibration([]).ece is None
    True
    """
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(BINS)]
    for confidence, right in points:
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence {confidence} is outside 0..1")
        bins[min(int(confidence * BINS), BINS - 1)].append((confidence, right))
    total = len(points)
    out = []
    ece: float | None = 0.0 if points else None
    for k, members in enumerate(bins):
        mean_conf = acc = None
        if members:
            mean_conf = sum(c for c, _ in members) / len(members)
            acc = sum(r for _, r in members) / len(members)
            ece = (ece or 0.0) + len(members) / total * abs(acc - mean_conf)
        out.append(CalibrationBin(k / BINS, (k + 1) / BINS, len(members), mean_conf, acc))
    curve = []
    for threshold in THRESHOLDS if points else ():
        kept = [right for confidence, right in points if confidence >= threshold]
        accuracy = sum(kept) / len(kept) if kept else None
        curve.append(CoveragePoint(threshold, len(kept), len(kept) / total, accuracy))
    done = Calibration(total, ece, tuple(out), tuple(curve), unscored=unscored)
    if not fit or total < MIN_FIT_RECORDS:
        return done
    temperature = fit_temperature(points)
    under = calibration([(scaled(c, temperature), r) for c, r in points], fit=False)
    return dataclasses.replace(done, temperature=temperature, fitted_ece=under.ece)


@dataclasses.dataclass(frozen=True, slots=True)
class Interval:
    """``difference`` in accuracy (other minus base) over ``records`` paired records,
    with its bootstrap interval ``[low, high]``."""

    difference: float
    low: float
    high: float
    records: int


def paired_bootstrap(
    base: Sequence[bool],
    other: Sequence[bool],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """The accuracy difference of two runs on the same records, with a paired bootstrap interval.

    ``base[i]`` and ``other[i]`` say whether each run got record ``i`` right. Raises
    ValueError when the lists are empty or differ in length.

    >>> paired_bootstrap([True, False] * 5, [True, True] * 5).difference
    0.5
    """
    if len(base) != len(other) or not base:
        raise ValueError("paired_bootstrap needs two non-empty lists of the same length")
    diffs = [int(o) - int(b) for b, o in zip(base, other, strict=True)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    low = means[round(tail * (resamples - 1))]
    high = means[round((1 - tail) * (resamples - 1))]
    return Interval(sum(diffs) / n, low, high, n)
