"""A single call against the plain one: is ``extract one``'s default at least as accurate?

    python -m bench.single_call [--n 100] [--seed 0] [--out DIR]

``--n`` tweets of the bench corpus (``bench/corpus.py``: airline tweets, half positive, half
negative) are labelled one at a time by SmolLM2-135M (the llama.cpp engine behind
``extract.server``), each tweet by every configuration in turn, so the configurations share
the machine's load:

- extract default: ``Extractor().extract(text, SCHEMA)`` with nothing set, as ``extract one``
  calls it: the shape prompt, the default instructions, the calibrated choice (the ``N/A``
  prior, one request per extractor), the server's default temperature;
- extract, generic task: the default with ``instructions=DEFAULT_INSTRUCTIONS``, the task
  sentence that does not say what the schema is about (``extract one``'s prompt until the
  default task named the schema's description, ``core.prompt.default_task``);
- extract, no calibration: the default with ``calibrate=False``;
- the peer: ``ollama.Client.generate`` with a one-line prompt (``TASK``, a blank line, the
  tweet), ``format=SCHEMA``, temperature 0 (``bench/labels_peer.py``).

A failed record counts as wrong. Each extract row is compared with the peer's on the same
tweets: the accuracy difference and its 95% paired bootstrap interval (tweets resampled with
replacement, both configurations' outcomes kept together, 10,000 resamples, fixed seed). The
goal: the default's accuracy ≥ the peer's. Records go under ``--out``; the table is printed, in
the form bench/RESULTS.md keeps it. Exits 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import ollama

from extract import ExtractError, Extractor
from extract.core.prompt import DEFAULT_INSTRUCTIONS
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from . import corpus, labels_peer

TASK = "Classify the sentiment of the tweet below."
SCHEMA: dict[str, Any] = {
    "title": "Sentiment",
    "description": "Overall sentiment of a text.",
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": list(corpus.LABELS)}},
    "required": ["sentiment"],
    "additionalProperties": False,
}
PEER_OPTIONS = {"temperature": 0, "num_predict": 1024}
DEFAULT = "extract default (as `extract one`)"
SHAPE_ONLY = "extract, generic task sentence (instructions=DEFAULT_INSTRUCTIONS)"
GREEDY = "extract, calibrate=False"
PEER = "peer: ollama.generate, one-line prompt, format=schema, temperature 0"
RESAMPLES = 10_000
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcomes:
    """One configuration's answers, tweet by tweet (None: no valid reply)."""

    name: str
    answers: tuple[str | None, ...]
    seconds: float

    def correct(self, gold: Sequence[str]) -> list[bool]:
        return [a == g for a, g in zip(self.answers, gold, strict=True)]


def paired_interval(
    mine: Sequence[bool], theirs: Sequence[bool], *, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """The accuracy difference ``mine - theirs`` and its 95% paired bootstrap interval.

    >>> paired_interval([True, True, False, True], [True, False, False, True], resamples=200)[0]
    0.25
    """
    n = len(mine)
    diffs = [int(a) - int(b) for a, b in zip(mine, theirs, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(diffs) / n, means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def _extract_answer(ex: Extractor, text: str, **options: Any) -> str | None:
    try:
        value = ex.extract(text, SCHEMA, **options).value
    except ExtractError:
        return None
    return str(value["sentiment"])


def run(url: str, items: Sequence[corpus.Item], out: Path) -> list[Outcomes]:
    """Every configuration on every tweet, interleaved tweet by tweet."""
    answers: dict[str, list[str | None]] = {DEFAULT: [], SHAPE_ONLY: [], GREEDY: [], PEER: []}
    seconds = dict.fromkeys(answers, 0.0)
    with Extractor(DEFAULT_LOCAL_MODEL, host=url) as ex, ollama.Client(host=url) as client:

        def peer(text: str) -> str | None:
            reply = client.generate(
                model=DEFAULT_LOCAL_MODEL,
                prompt=labels_peer.plain_prompt(TASK, text),
                format=SCHEMA,
                options=PEER_OPTIONS,
            )
            try:
                value = json.loads(reply.response or "")
            except ValueError:
                return None
            return value["sentiment"] if VALIDATOR.is_valid(value) else None

        ways: dict[str, Callable[[str], str | None]] = {
            DEFAULT: lambda t: _extract_answer(ex, t),
            SHAPE_ONLY: lambda t: _extract_answer(ex, t, instructions=DEFAULT_INSTRUCTIONS),
            GREEDY: lambda t: _extract_answer(ex, t, calibrate=False),
            PEER: peer,
        }
        for k, item in enumerate(items, 1):
            for name, way in ways.items():
                started = time.monotonic()
                answers[name].append(way(item.text))
                seconds[name] += time.monotonic() - started
            if k % 10 == 0:
                print(f"{k}/{len(items)} tweets", file=sys.stderr)
    rows = [
        {"id": k, "gold": item.label, **{name: answers[name][k - 1] for name in answers}}
        for k, item in enumerate(items, 1)
    ]
    (out / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return [Outcomes(name, tuple(answers[name]), seconds[name]) for name in answers]


def table(outcomes: Sequence[Outcomes], gold: Sequence[str]) -> tuple[list[str], bool]:
    """The Markdown table (accuracy, Δ vs the peer with its interval, seconds per tweet) and
    whether the default is at least as accurate as the peer."""
    peer = next(o for o in outcomes if o.name == PEER).correct(gold)
    lines = [
        "| configuration | accuracy | Δ vs peer [95% paired bootstrap] | valid | s/tweet |",
        "|---|---|---|---|---|",
    ]
    met = True
    for o in outcomes:
        right = o.correct(gold)
        accuracy = sum(right) / len(right)
        valid = sum(a is not None for a in o.answers) / len(o.answers)
        if o.name == PEER:
            delta = "—"
        else:
            d, low, high = paired_interval(right, peer)
            delta = f"{d:+.3f} [{low:+.3f}, {high:+.3f}]"
            if o.name == DEFAULT:
                met = accuracy >= sum(peer) / len(peer)
        per = o.seconds / len(o.answers)
        lines.append(f"| {o.name} | {accuracy:.3f} | {delta} | {valid:.0%} | {per:.1f} |")
    return lines, met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="tweets (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="which balanced sample")
    parser.add_argument("--out", type=Path, help="where the answers go (default: a temp dir)")
    args = parser.parse_args()
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="bench-single-call-"))
    out.mkdir(parents=True, exist_ok=True)
    items = corpus.load(args.n, seed=args.seed)
    gold = [item.label for item in items]
    started = time.monotonic()
    engine = LlamaEngine()
    with serve(engine) as server:
        engine.load(DEFAULT_LOCAL_MODEL, None)  # so no configuration pays for loading
        outcomes = run(server.url, items, out)
    wall = time.monotonic() - started
    lines, met = table(outcomes, gold)
    print(
        f"{args.n} tweets (seed {args.seed}), {DEFAULT_LOCAL_MODEL}, one at a time; "
        f"wall {wall / 60:.1f} min; answers in {out}\n"
    )
    print("\n".join(lines))
    print(f"\ngoal: the default's accuracy ≥ the peer's: {'met' if met else 'MISSED'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
