"""One temperature for calibrated confidences: fitted on one sample, checked on another.

The calibrated confidence of a choice is the softmax of the options' ``score - prior``. Divided
by a temperature ``T`` before the softmax, the differences sharpen (``T < 1``: for confidences
that run low) or soften (``T > 1``). With two options the chosen one's confidence ``p`` holds
everything: its log-odds against the other are ``log(p / (1 - p))``, and under ``T`` the
confidence is the logistic of ``log-odds / T``. The choice itself never changes.

Points are ``(confidence, right)`` pairs. ECE uses the bins of ``extract eval`` (10 equal
widths, bin ``k`` holding ``k <= 10c < k + 1``, 1.0 in the last), written again here so that
``bench.labels`` can check the package's number against an independent one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Point = tuple[float, bool]
BINS = 10
# Temperatures tried: 0.01 to 5 in steps of 0.01.
GRID = tuple(round(0.01 * k, 2) for k in range(1, 501))
# Confidences are kept this far from 0 and 1, so their log-odds stay finite.
EPSILON = 1e-9


def scaled(confidence: float, temperature: float) -> float:
    """A two-option confidence with its log-odds divided by ``temperature``.

    >>> round(scaled(0.75, 1.0), 6), round(scaled(0.75, 0.5), 6)
    (0.75, 0.9)
    """
    p = min(max(confidence, EPSILON), 1 - EPSILON)
    return 1 / (1 + math.exp(-math.log(p / (1 - p)) / temperature))


def ece(points: Sequence[Point]) -> float:
    """Expected calibration error over ``BINS`` equal-width bins (0.0 for no points).

    >>> round(ece([(0.95, True), (0.91, False), (0.35, False)]), 3)
    0.403
    """
    bins: list[list[Point]] = [[] for _ in range(BINS)]
    for confidence, right in points:
        bins[min(int(confidence * BINS), BINS - 1)].append((confidence, right))
    total = 0.0
    for members in bins:
        if members:
            gap = sum(r for _, r in members) - sum(c for c, _ in members)
            total += abs(gap) / len(points)
    return total


def nll(points: Sequence[Point]) -> float:
    """Mean negative log-likelihood of the gold option (``1 - c`` when the choice was wrong).

    >>> round(nll([(0.8, True), (0.8, False)]), 4)
    0.9163
    """
    probabilities = (c if right else 1 - c for c, right in points)
    return -sum(math.log(max(p, EPSILON)) for p in probabilities) / len(points)


def rescaled(points: Sequence[Point], temperature: float) -> list[Point]:
    """Every point's confidence under ``temperature``."""
    return [(scaled(c, temperature), right) for c, right in points]


def fit(points: Sequence[Point], loss: Callable[[Sequence[Point]], float]) -> float:
    """The temperature of ``GRID`` that minimises ``loss`` (``ece`` or ``nll``) over ``points``;
    the lowest one on a tie. Raises ValueError for no points."""
    if not points:
        raise ValueError("fitting a temperature needs at least one point")
    return min(GRID, key=lambda t: loss(rescaled(points, t)))
