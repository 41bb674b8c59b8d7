"""Is the batch like the gold? A two-sample Kolmogorov–Smirnov test on confidences.

A guaranteed threshold holds for records drawn like the gold it was set on. The records'
confidences are what a run sees of that without labels: when the batch's differ markedly from
the calibration gold's, the batch is likely of another kind, and the guarantee may not carry.

The statistic is the largest gap between the two empirical distribution functions. Its
p-value is exact (the share of lattice paths that stay within the gap, counted as
probabilities so nothing overflows) while ``m * n`` is at most ``EXACT_CELLS``, else the
asymptotic Kolmogorov distribution with Stephens' small-sample correction. Ties make the exact
value conservative (the test then says "differ" less often, never more).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence

EXACT_CELLS = 250_000
_SERIES_TERMS = 100


@dataclasses.dataclass(frozen=True, slots=True)
class ShiftTest:
    """The two samples' sizes, the KS statistic and its two-sided p-value; ``method`` is
    "exact" or "asymptotic"."""

    batch: int
    gold: int
    statistic: float
    p_value: float
    method: str

    def differs(self, alpha: float) -> bool:
        """Whether the batch's confidences differ from the gold's at level ``alpha``."""
        return self.p_value < alpha


def ks_test(batch: Sequence[float], gold: Sequence[float]) -> ShiftTest:
    """The two-sample Kolmogorov–Smirnov test of ``batch`` against ``gold``.

    Raises ValueError when either sample is empty.

    >>> t = ks_test([0.1, 0.2, 0.3], [0.7, 0.8, 0.9])
    >>> t.statistic, round(t.p_value, 4), t.method
    (1.0, 0.1, 'exact')
    """
    if not batch or not gold:
        raise ValueError("both samples need at least one value")
    first, second = sorted(batch), sorted(gold)
    m, n = len(first), len(second)
    gap = 0.0
    for value in (*first, *second):
        below_first = bisect.bisect_right(first, value) / m
        below_second = bisect.bisect_right(second, value) / n
        gap = max(gap, abs(below_first - below_second))
    if m * n <= EXACT_CELLS:
        return ShiftTest(m, n, gap, _exact(m, n, gap), "exact")
    return ShiftTest(m, n, gap, _asymptotic(m, n, gap), "asymptotic")


def _exact(m: int, n: int, gap: float) -> float:
    """P(D >= gap) under the null: one minus the share of monotone paths from (0, 0) to
    (m, n) that keep ``|i/m - j/n| < gap`` at every point."""
    # Equality counts as reaching the gap; the small tolerance absorbs rounding in i/m - j/n.
    limit = gap - 1e-12

    def inside(i: int, j: int) -> bool:
        return abs(i / m - j / n) < limit

    # row[j]: the probability that a uniformly random path passes (i, j) having stayed inside.
    row = [0.0] * (n + 1)
    for i in range(m + 1):
        for j in range(n + 1):
            if i == 0 and j == 0:
                row[j] = 1.0
                continue
            if not inside(i, j):
                row[j] = 0.0
                continue
            left = i + j
            # A random path at (a, b) steps in x with chance (m - a) / (m + n - a - b).
            from_above = row[j] * (m - i + 1) / (m + n - left + 1) if i else 0.0
            from_left = row[j - 1] * (n - j + 1) / (m + n - left + 1) if j else 0.0
            row[j] = from_above + from_left
    return min(1.0, max(0.0, 1.0 - row[n]))


def _asymptotic(m: int, n: int, gap: float) -> float:
    """The Kolmogorov distribution's tail at the scaled gap (Stephens' correction)."""
    size = math.sqrt(m * n / (m + n))
    x = (size + 0.12 + 0.11 / size) * gap
    if x < 0.2:
        return 1.0
    total = math.fsum(
        2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, _SERIES_TERMS)
    )
    return min(1.0, max(0.0, total))
