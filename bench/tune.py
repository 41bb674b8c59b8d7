"""Tuned against default, on records the tuning never saw.

    python -m bench.tune [--gold 120] [--held-out 150] [--seed 0] [--shots 0,2,4,8]
                         [--budget CALLS] [--out DIR]

``--gold`` tweets of the bench corpus (``bench/corpus.py``: airline tweets, half positive, half
negative) are the gold ``extract tune`` is given, with its default search (renderings shape and
schema, k in {0, 2, 4, 8}, in-domain and ``N/A`` priors, one sample; 3 folds; 40% of the gold
held out for calibration) on SmolLM2-135M (the llama.cpp engine behind ``extract.server``, at
temperature 0). ``--held-out`` other tweets, in no gold, are then labeled twice through
``Labeling``: with the defaults, and with the tuned config's options; the table gives each
one's accuracy with its bootstrap interval, and the paired bootstrap interval of their
difference. Also reported: the tuning's wall-clock seconds, its model calls, and the search's
own verdict on its tuning records.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extract import Labeling
from extract.batch.cache import Cache
from extract.batch.evaluation.metrics import paired_bootstrap
from extract.batch.tune import GoldSet, Space, Tuner
from extract.cli.tune import render_report
from extract.core.tuning import bootstrap_interval
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from . import corpus

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": list(corpus.LABELS)}},
    "required": ["sentiment"],
    "additionalProperties": False,
}
ZERO = {"temperature": 0}


async def held_out_right(
    url: str, items: Sequence[corpus.Item], options: dict[str, Any], prior: bool
) -> list[bool]:
    """Whether each held-out item is labeled right, by a fresh session with ``options``."""
    documents = [{"id": str(k), "text": item.text} for k, item in enumerate(items)]
    async with Labeling(
        SCHEMA,
        model=DEFAULT_LOCAL_MODEL,
        hosts=url,
        concurrency=1,
        domain_prior=prior,
        **{"options": ZERO, **options},
    ) as session:
        right = {}
        async for record in session.aresults(documents):
            value = record.value if record.ok else None
            label = value.get("sentiment") if isinstance(value, dict) else None
            right[str(record.id)] = label == items[int(record.id)].label
    return [right[str(k)] for k in range(len(items))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tune", description=__doc__)
    parser.add_argument("--gold", type=int, default=120)
    parser.add_argument("--held-out", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", default="0,2,4,8")
    parser.add_argument("--budget", type=int, default=None, help="tune's --budget")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    gold_items = corpus.load(args.gold, seed=args.seed)
    held = corpus.others(args.held_out, exclude=gold_items, seed=args.seed + 1)
    texts = {f"g{k}": item.text for k, item in enumerate(gold_items)}
    values = {f"g{k}": {"sentiment": item.label} for k, item in enumerate(gold_items)}
    digest = hashlib.sha256(json.dumps([texts, values], sort_keys=True).encode()).hexdigest()
    strata = {k: json.dumps(v["sentiment"]) for k, v in values.items()}
    gold = GoldSet(texts, values, strata, digest)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-tune-"))
    out.mkdir(parents=True, exist_ok=True)
    shots = tuple(int(s) for s in args.shots.split(","))
    with serve(LlamaEngine()) as server, Cache(out / "cache.sqlite") as cache:
        tuner = Tuner(
            gold,
            SCHEMA,
            model=DEFAULT_LOCAL_MODEL,
            hosts=[server.url],
            space=Space(shots=shots),
            cache=cache,
            seed=args.seed,
            budget=args.budget,
            options={"options": ZERO},
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        started = time.monotonic()
        report = asyncio.run(tuner.run())
        tuning_seconds = time.monotonic() - started
        report.config.save(out / "tuned.json")
        print(render_report(report), flush=True)
        tuned = dict(report.config.options)
        started = time.monotonic()
        base = asyncio.run(held_out_right(server.url, held, {}, True))
        best = asyncio.run(
            held_out_right(server.url, held, tuned, report.config.prior is not False)
        )
        held_seconds = time.monotonic() - started
    diff = paired_bootstrap(base, best, seed=args.seed)
    rows = {"default": bootstrap_interval(base), "tuned": bootstrap_interval(best)}
    print(
        f"\nheld-out: {len(held)} tweets in no gold (tuning took {tuning_seconds:.0f} s,"
        f" {report.calls} model calls; held-out runs {held_seconds:.0f} s)"
    )
    print("| run | accuracy | 95% interval |\n|---|---|---|")
    for name, (accuracy, low, high) in rows.items():
        print(f"| {name} | {accuracy:.3f} | [{low:.3f}, {high:.3f}] |")
    print(f"| tuned − default | {diff.difference:+.3f} | [{diff.low:+.3f}, {diff.high:+.3f}] |")
    print(f"tuned: {report.winner.candidate.describe()}; config in {out / 'tuned.json'}")
    summary = {
        "gold": args.gold,
        "held_out": len(held),
        "tuning_seconds": tuning_seconds,
        "calls": report.calls,
        "winner": report.winner.candidate.describe(),
        "held_out_default": rows["default"],
        "held_out_tuned": rows["tuned"],
        "difference": [diff.difference, diff.low, diff.high],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
