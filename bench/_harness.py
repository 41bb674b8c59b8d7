"""What every benchmark shares: its sizes, its outcome, and a few statistics."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class Scale:
    """How much work each benchmark does: the full run, or ``--quick``."""

    quick: bool
    sequential_calls: int  # P1/P2: calls per client per round
    sequential_rounds: int  # P1/P2: interleaved rounds (the median is reported)
    batch_docs: int  # P3: documents through the batch engine
    memory_lines: tuple[int, ...]  # P4: JSONL sizes
    memory_budget: float  # P4: seconds per file; a longer run is stopped (Ctrl-C) and measured
    cache_docs: int  # P5: documents in the batch that is rerun
    real_docs: int  # P6: documents per schema
    real_budget: float  # P6: seconds; no new document is started after this


FULL = Scale(
    quick=False,
    sequential_calls=300,
    sequential_rounds=7,
    batch_docs=10_000,
    memory_lines=(100_000, 1_000_000),
    memory_budget=25 * 60,
    cache_docs=4_000,
    real_docs=50,
    real_budget=50 * 60,
)
QUICK = Scale(
    quick=True,
    sequential_calls=100,
    sequential_rounds=3,
    batch_docs=1_600,
    memory_lines=(10_000, 50_000),
    memory_budget=5 * 60,
    cache_docs=800,
    real_docs=10,
    real_budget=12 * 60,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the results table, and the detail behind it for RESULTS.md."""

    id: str
    what: str
    measured: str
    goal: str
    passed: bool | None
    details: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "n/a"}[self.passed]


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of per-round ratios: rounds run back to back, so each ratio shares its noise.

    >>> median_ratio([10, 20, 30], [10, 10, 10])
    2.0
    """
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def rate(count: int, seconds: float) -> float:
    """Items per second, never dividing by zero."""
    return count / max(seconds, 1e-9)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def progress(message: str) -> None:
    """A line on stderr, so a long run shows where it is."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
