"""P5: a finished batch run again with its cache.

The batch of P3's server (4 slots × 50 ms) is labelled once with a fresh cache file, then
labelled again with the same cache. The rerun must send no request to the model and be at
least 50 times faster; its values must equal the first run's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from extract import Labeling

from ._harness import Outcome, Scale, progress, rate
from ._servers import running
from .concurrency import SPEC, records
from .docs import Person

GOAL = 50.0


def _label(url: str, docs: list[dict[str, str]], cache: Path) -> tuple[float, list[Any], int]:
    """(seconds, values, records served from the cache)."""
    with Labeling(Person, model="tiny", hosts=url, cache=cache) as session:
        start = time.perf_counter()
        results = list(session.results(docs))
        seconds = time.perf_counter() - start
    values = [r.value if r.ok else None for r in results]
    return seconds, values, sum(r.cached for r in results)


def run(scale: Scale) -> list[Outcome]:
    """Measure P5."""
    docs = records(scale.cache_docs)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp, running(SPEC) as server:
        cache = Path(tmp) / "cache.sqlite"
        first, values, _ = _label(server.url, docs, cache)
        calls_first = server.model_calls
        progress(f"P5 first run: {first:.1f} s, {calls_first} model calls")
        again, again_values, from_cache = _label(server.url, docs, cache)
        calls_again = server.model_calls - calls_first
        progress(f"P5 rerun: {again:.2f} s, {calls_again} model calls")
    speedup = first / max(again, 1e-9)
    same = values == again_values and None not in values
    details = (
        f"{len(docs)} documents on {SPEC.slots} slots × {SPEC.latency * 1000:.0f} ms; "
        "library batch engine (extract.Labeling) with cache=<file>",
        f"- first run: {first:.2f} s ({rate(len(docs), first):.1f} docs/s), "
        f"{calls_first} model calls",
        f"- rerun: {again:.3f} s ({rate(len(docs), again):.0f} docs/s), {calls_again} model "
        f"calls, {from_cache}/{len(docs)} from the cache, values identical: {same}",
    )
    return [
        Outcome(
            "P5",
            "rerun of a finished batch with the cache",
            f"{speedup:.0f}× faster, {calls_again} model calls",
            f"≥ {GOAL:g}×, 0 calls",
            speedup >= GOAL and calls_again == 0 and same,
            details,
        )
    ]
