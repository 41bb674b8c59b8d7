"""``python -m bench.isolation``: what running llama.cpp in a child process costs per request.

Two servers hold the same SmolLM2 model, one with the engine in process
(:class:`~extract.server.InProcessLlamaEngine`) and one with it in a child process
(:class:`~extract.server.LlamaEngine`). The same greedy requests (temperature 0, a schema
``format``, streamed as extract streams them) go to both, interleaved and in alternating order,
so both see the same machine noise. Each pair gives a ratio child / in-process of the client's
wall time; the table shows their geometric mean with a 95% bootstrap interval. Goal: ≤ 1.05.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence

import httpx

from extract.server import InProcessLlamaEngine, LlamaEngine, serve

from ._harness import progress
from .corpus import load

SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}, "why": {"type": "string"}},
    "required": ["sentiment", "why"],
}
GOAL = 1.05


def _request(client: httpx.Client, text: str) -> float:
    body = {
        "model": "smollm2:135m",
        "prompt": f"Label the sentiment of this tweet as JSON.\n\n{text}",
        "format": SCHEMA,
        "options": {"temperature": 0, "num_predict": 32, "seed": 1},
    }
    started = time.perf_counter()
    with client.stream("POST", "/api/generate", json=body) as reply:
        reply.raise_for_status()
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    elapsed = time.perf_counter() - started
    if not lines[-1].get("done"):
        raise RuntimeError(f"no done line: {lines[-1]}")
    return elapsed


def bootstrap_geomean(
    ratios: Sequence[float], draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The geometric mean of ``ratios`` and a 95% percentile-bootstrap interval."""
    logs = [math.log(r) for r in ratios]
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(logs, k=len(logs))) for _ in range(draws))
    low, high = means[int(0.025 * draws)], means[int(0.975 * draws) - 1]
    return math.exp(statistics.fmean(logs)), math.exp(low), math.exp(high)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=__doc__)
    parser.add_argument("--n", type=int, default=60, help="prompts (each sent to both servers)")
    args = parser.parse_args(argv)
    texts = [item.text for item in load(args.n)]
    with (
        serve(InProcessLlamaEngine()) as inner,
        serve(LlamaEngine()) as outer,
        httpx.Client(base_url=inner.url, timeout=120) as a,
        httpx.Client(base_url=outer.url, timeout=120) as b,
    ):
        _request(a, "warm-up"), _request(b, "warm-up")
        pairs: list[tuple[float, float]] = []
        for n, text in enumerate(texts):
            if n % 2:
                child, local = _request(b, text), _request(a, text)
            else:
                local, child = _request(a, text), _request(b, text)
            pairs.append((child, local))
            if n % 10 == 9:
                progress(f"{n + 1}/{len(texts)} pairs")
    mean, low, high = bootstrap_geomean([child / local for child, local in pairs])
    child_ms = statistics.median(c for c, _ in pairs) * 1000
    local_ms = statistics.median(local for _, local in pairs) * 1000
    verdict = "pass" if high <= GOAL else ("pass (mean)" if mean <= GOAL else "FAIL")
    print("| engine | median ms per request | requests |")
    print("|---|---|---|")
    print(f"| in process | {local_ms:.1f} | {len(pairs)} |")
    print(f"| child process | {child_ms:.1f} | {len(pairs)} |")
    print()
    print(
        f"child / in-process: {mean:.3f} (95% bootstrap interval {low:.3f}–{high:.3f}); "
        f"goal ≤ {GOAL}: {verdict}"
    )
    return 0 if mean <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
