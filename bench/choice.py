"""P8: server seconds per correct label on a choice schema, extract deciding the choice from
one token (``core.decide``) against the ollama peer generating the whole reply.

    python -m bench.choice [--n 150] [--seed 0] [--rounds 2000]

``--n`` tweets of the bench corpus (``bench/corpus.py``: airline tweets, half positive, half
negative) are labelled positive or negative by SmolLM2-135M (the llama.cpp engine, in a child
process, metered: ``bench/labels_meter.py``) on a one-field enum schema, three ways, taking
turns document by document (the order rotating) so a busy spell on the machine falls on all
alike:

- extract: ``Extractor.extract`` with its defaults (``decide_choices`` unset: the choice is
  decided from one token where the server continues a reply; calibrated against the
  content-free prior), temperature 0;
- extract, whole: the same with ``decide_choices=False``: the reply generated token by token
  under the schema, as before;
- the peer: the ``ollama`` client's ``generate`` with a one-line prompt (the task, then the
  tweet), ``format=schema``, temperature 0, the whole reply generated (``bench/labels_peer``).

Each way runs on its own llama.cpp instance of the model, so the prompt prefix it finds cached
is its own previous request's. A way's cost is everything the server ran for it (the metered
log, read after each of its documents: every request, extract's one content-free prior request
included), in server seconds (``total_duration``). A failed or invalid reply counts as wrong.

Reported: seconds per correct label for each way, accuracy, and, for extract against the peer,
the ratio of seconds per correct label and the difference of accuracy with 95% paired-bootstrap
intervals (documents resampled, ``--rounds`` times). Goal: ratio ≤ 0.6 with its upper end
≤ 0.7, and the lower end of the accuracy difference ≥ −0.03. Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import ollama

from extract import ExtractionFailed, Extractor

from . import corpus
from ._servers import ServerSpec, running
from .labels_peer import plain_prompt

TASK = "Classify the sentiment of the tweet below."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": list(corpus.LABELS)}},
    "required": ["sentiment"],
    "additionalProperties": False,
}
OPTIONS = {"temperature": 0, "num_predict": 1024}
WAYS = ("extract", "extract, whole", "peer")
GOAL_RATIO, GOAL_RATIO_HIGH, GOAL_ACCURACY_LOW = 0.6, 0.7, -0.03


@dataclasses.dataclass(slots=True)
class Tally:
    """Per document: the server seconds a way cost, and whether its label was right."""

    seconds: list[float] = dataclasses.field(default_factory=list)
    right: list[bool] = dataclasses.field(default_factory=list)
    requests: int = 0

    def per_correct(self, picks: Sequence[int] | None = None) -> float:
        idx = range(len(self.right)) if picks is None else picks
        right = sum(self.right[i] for i in idx)
        return sum(self.seconds[i] for i in idx) / right if right else float("inf")

    def accuracy(self, picks: Sequence[int] | None = None) -> float:
        idx = list(range(len(self.right)) if picks is None else picks)
        return sum(self.right[i] for i in idx) / len(idx)


def interval(values: list[float]) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of ``values``.

    >>> interval([float(i) for i in range(1001)])
    (25.0, 975.0)
    """
    ordered = sorted(values)
    return ordered[round(0.025 * (len(ordered) - 1))], ordered[round(0.975 * (len(ordered) - 1))]


def bootstrap(
    a: Tally, b: Tally, rounds: int, seed: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% paired-bootstrap intervals of ``a``'s seconds per correct label over ``b``'s, and
    of ``a``'s accuracy minus ``b``'s (the same documents resampled for both)."""
    rng = random.Random(seed)
    n = len(a.right)
    ratios, differences = [], []
    for _ in range(rounds):
        picks = [rng.randrange(n) for _ in range(n)]
        ratios.append(a.per_correct(picks) / b.per_correct(picks))
        differences.append(a.accuracy(picks) - b.accuracy(picks))
    return interval(ratios), interval(differences)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.choice", description=__doc__)
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    items = corpus.load(args.n, seed=args.seed)
    spec = ServerSpec(kind="llama", metered=True, names=WAYS)
    tallies = {way: Tally() for way in WAYS}
    started = time.monotonic()
    with running(spec) as server:
        deciding = Extractor(WAYS[0], host=server.url, instructions=TASK, options=OPTIONS)
        whole = Extractor(
            WAYS[1], host=server.url, instructions=TASK, options=OPTIONS, decide_choices=False
        )
        peer = ollama.Client(host=server.url)

        def by_extract(extractor: Extractor) -> Callable[[str], Any]:
            def label(text: str) -> Any:
                try:
                    return extractor.extract(text, SCHEMA).value.get("sentiment")
                except ExtractionFailed:
                    return None

            return label

        def by_peer(text: str) -> Any:
            reply = peer.generate(
                model=WAYS[2], prompt=plain_prompt(TASK, text), format=SCHEMA, options=OPTIONS
            )
            try:
                value = json.loads(reply.response or "")
            except ValueError:
                return None
            return value.get("sentiment") if isinstance(value, dict) else None

        label = {WAYS[0]: by_extract(deciding), WAYS[1]: by_extract(whole), WAYS[2]: by_peer}
        server.take_generations()  # loading is nobody's cost
        for k, item in enumerate(items):
            order = WAYS[k % 3 :] + WAYS[: k % 3]
            for way in order:
                got = label[way](item.text)
                cost = server.take_generations()
                tally = tallies[way]
                tally.seconds.append(sum(g.cost.seconds for g in cost))
                tally.requests += len(cost)
                tally.right.append(got == item.label)
            if (k + 1) % 25 == 0:
                print(f"  {k + 1}/{len(items)} documents", file=sys.stderr, flush=True)
        deciding.close()
        whole.close()
    elapsed = time.monotonic() - started
    ours, peers = tallies[WAYS[0]], tallies[WAYS[2]]
    ratio = ours.per_correct() / peers.per_correct()
    (r_low, r_high), (d_low, d_high) = bootstrap(ours, peers, args.rounds, args.seed)
    print(f"\nP8, n={len(items)} tweets, seed {args.seed}, {elapsed:.0f} s wall")
    print("| way | s per correct label | right | accuracy | requests | server s |")
    print("|---|---|---|---|---|---|")
    for way, tally in tallies.items():
        print(
            f"| {way} | {tally.per_correct():.3f} | {sum(tally.right)} of {len(tally.right)} | "
            f"{tally.accuracy():.3f} | {tally.requests} | {sum(tally.seconds):.1f} |"
        )
    difference = ours.accuracy() - peers.accuracy()
    print(
        f"\nextract / peer, s per correct label: {ratio:.3f} "
        f"(95% paired bootstrap {r_low:.3f}–{r_high:.3f}); goal ≤ {GOAL_RATIO}, "
        f"upper end ≤ {GOAL_RATIO_HIGH}"
    )
    print(
        f"extract − peer, accuracy: {difference:+.3f} ({d_low:+.3f} to {d_high:+.3f}); "
        f"goal: lower end ≥ {GOAL_ACCURACY_LOW}"
    )
    whole_tally = tallies[WAYS[1]]
    (w_low, w_high), (v_low, v_high) = bootstrap(ours, whole_tally, args.rounds, args.seed)
    print(
        f"extract deciding / whole, s per correct label: "
        f"{ours.per_correct() / whole_tally.per_correct():.3f} ({w_low:.3f}–{w_high:.3f}); "
        f"accuracy: {ours.accuracy() - whole_tally.accuracy():+.3f} ({v_low:+.3f} to {v_high:+.3f})"
    )
    met = ratio <= GOAL_RATIO and r_high <= GOAL_RATIO_HIGH and d_low >= GOAL_ACCURACY_LOW
    print("P8 met" if met else "P8 missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
