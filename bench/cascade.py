"""A two-tier cascade on the real model, its thresholds chosen jointly on gold.

    python -m bench.cascade [--gold 150] [--held-out 150] [--target 0.9] [--delta 0.1]

Tweets of the bench corpus (``bench/corpus.py``), labelled positive or negative by SmolLM2-135M
(``extract.server.LlamaEngine``), greedy (temperature 0), calibrated against the in-domain
prior, with the labels bench's task sentence:

- tier 1: the defaults;
- tier 2: the costlier setting of the same model, four worked examples (two per label, tweets
  in neither sample) in every prompt.

Every tweet (gold and held-out) is labelled by both tiers. The thresholds are chosen jointly
on the gold by ``extract.core.cascade.choose_thresholds`` at ``--target`` / ``--delta``; each
tier alone gets its own guaranteed threshold the same way (a one-tier cascade). On the held-out
tweets the cascade is then what ``Labeling(escalate=...)`` does: tier 1's record where its
confidence reaches its threshold, else tier 2's; its server seconds are tier 1's on every tweet
plus tier 2's on those escalated. Greedy decoding makes each tier's record the same whether it
is asked alone or inside the cascade, so this reads the cascade off the two runs rather than
running the model a third time. Reports accuracy on everything (no threshold), and at the
target: accepted accuracy, coverage and server seconds, for tier 1 alone, tier 2 alone and the
cascade.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from extract import CallOptions, Labeling, Record
from extract.core.cascade import TierPoint, choose_thresholds, route
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from . import corpus
from .labels import SCHEMA, TASK

ZERO = {"temperature": 0}


def run(url: str, items: list[corpus.Item], options: CallOptions) -> list[Record]:
    with Labeling(
        SCHEMA,
        model=DEFAULT_LOCAL_MODEL,
        hosts=url,
        concurrency=1,  # the server runs one generation at a time; queued time is not work
        **_with_task(options),
    ) as session:
        return list(session.results([i.text for i in items]))


def _with_task(options: CallOptions) -> CallOptions:
    return {"instructions": TASK, "options": ZERO, **options}


def point(record: Record, item: corpus.Item) -> TierPoint:
    right = record.ok and record.value.get("sentiment") == item.label
    return record.min_confidence if record.ok else None, bool(right)


def seconds(record: Record) -> float:
    return (record.usage.total_duration or 0) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gold", type=int, default=150)
    parser.add_argument("--held-out", type=int, default=150)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    items = corpus.load(args.gold + args.held_out, seed=args.seed)
    shots = [(i.text, {"sentiment": i.label}) for i in corpus.others(4, exclude=items, seed=1)]
    tiers: list[tuple[str, CallOptions]] = [
        ("tier 1: defaults", {}),
        ("tier 2: 4-shot examples", {"examples": shots}),
    ]
    with serve(LlamaEngine()) as server:
        records = [run(server.url, items, options) for _, options in tiers]
    gold, held = items[: args.gold], items[args.gold :]
    rows = [[point(r[k], item) for r in records] for k, item in enumerate(items)]
    gold_rows, held_rows = rows[: args.gold], rows[args.gold :]
    cost = [[seconds(r[k]) for r in records] for k in range(len(items))]
    held_cost = cost[args.gold :]
    out: dict[str, Any] = {"gold": len(gold), "held_out": len(held), "target": args.target}
    out["delta"] = args.delta
    report = []
    plans: list[tuple[str, list[int]]] = [
        (tiers[0][0], [0]),
        (tiers[1][0], [1]),
        ("cascade", [0, 1]),
    ]
    for name, used in plans:
        chosen = choose_thresholds(
            [[row[t] for t in used] for row in gold_rows], args.target, args.delta
        )
        everything = sum(row[used[-1]][1] for row in held_rows) / len(held_rows)
        entry: dict[str, Any] = {"name": name, "accuracy_all_last_tier": round(everything, 3)}
        if chosen.thresholds is None:
            entry["refused"] = chosen.reason
            entry["seconds"] = round(sum(sum(c[t] for t in used) for c in held_cost), 1)
        else:
            accepted = right = 0
            spent = 0.0
            per_tier = [0] * len(used)
            for row, c in zip(held_rows, held_cost, strict=True):
                sub = [row[t] for t in used]
                tier = route(sub, chosen.thresholds)
                reached = len(used) if tier is None else tier + 1
                spent += sum(c[t] for t in used[:reached])
                if tier is not None:
                    accepted += 1
                    right += sub[tier][1]
                    per_tier[tier] += 1
            entry.update(
                thresholds=[round(t, 4) for t in chosen.thresholds],
                gold_coverage=round(chosen.coverage, 3),
                held_coverage=round(accepted / len(held_rows), 3),
                held_accepted_accuracy=round(right / accepted, 3) if accepted else None,
                accepted_per_tier=per_tier,
                seconds=round(spent, 1),
            )
        report.append(entry)
    out["runs"] = report
    out["all_tier2_seconds"] = round(sum(c[1] for c in held_cost), 1)
    out["tier_accuracy_held"] = [
        round(sum(row[t][1] for row in held_rows) / len(held_rows), 3) for t in range(2)
    ]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
