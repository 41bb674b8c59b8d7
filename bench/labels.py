"""Labels you can trust: accuracy and calibration of choice fields on the real model.

    python -m bench.labels [--n 200] [--seed 0] [--records labels.jsonl]

Labels ``--n`` tweets of the bench corpus (``bench/corpus.py``: airline tweets, half positive,
half negative) with SmolLM2-135M (the llama.cpp engine behind ``extract.server``), one
request per tweet: extract's own prompt (``build_prompt``), the schema's grammar as
``format``, temperature 0, ``logprobs`` with 20 alternatives. From each reply's log-probabilities
(``core.confidence``) three labels are read:

- greedy: the label the model wrote;
- content-free: the label whose score rose most over the scores the same prompt gets for the
  document ``N/A`` (one more request per configuration; ``core.calibration``);
- batch: the same against the mean scores over the whole batch (no extra request).

For each, the accuracy, the share of "positive" answers (the gold is 50%) and the expected
calibration error (ECE, 10 equal bins) of the confidence reported beside the label. Each
configuration changes the prompt: the generic task sentence or one naming the task, with or
without definitions of the two labels in the schema (``x-labels``). ``--records`` writes each
tweet's gold label and each strategy's label and confidence, for a reliability diagram.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from extract.core.calibration import CONTENT_FREE_DOCUMENT, Prior, calibrated
from extract.core.confidence import ChoiceScores, score_choices
from extract.core.decode import decode
from extract.core.prompt import build_prompt
from extract.core.schema import Schema
from extract.core.wire import parse_logprobs
from extract.errors import OutputError
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from . import corpus

FIELD = "$.sentiment"
TASK = "Classify the sentiment of the tweet below."
DEFINITIONS = {"positive": "praise, thanks, satisfaction", "negative": "complaints, problems"}
BINS = 10
TOP_LOGPROBS = 20


def sentiment_schema(definitions: bool) -> Schema:
    field: dict[str, Any] = {"type": "string", "enum": list(corpus.LABELS)}
    if definitions:
        field["x-labels"] = DEFINITIONS
    return Schema.load(
        {
            "type": "object",
            "properties": {"sentiment": field},
            "required": ["sentiment"],
            "additionalProperties": False,
        }
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    name: str
    instructions: str | None
    definitions: bool


CONFIGS = (
    Config("generic task", None, False),
    Config("named task", TASK, False),
    Config("named task + label definitions", TASK, True),
)


def ask(client: httpx.Client, prompt: str, schema: Schema) -> ChoiceScores | None:
    """The scores of the sentiment field in the model's reply; None when it has none."""
    body = {
        "model": DEFAULT_LOCAL_MODEL,
        "prompt": prompt,
        "format": schema.grammar,
        "stream": False,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "options": {"temperature": 0, "num_predict": 32},
    }
    reply = client.post("/api/generate", json=body).json()
    text = reply.get("response", "")
    try:
        schema.validate(decode(text))
    except OutputError:
        return None
    return score_choices(schema, text, parse_logprobs(reply.get("logprobs"))).get(FIELD)


def ece(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """Expected calibration error over ``BINS`` equal-width confidence bins."""
    total = 0.0
    for b in range(BINS):
        low, high = b / BINS, (b + 1) / BINS
        inside = [i for i, c in enumerate(confidences) if low < c <= high or (b == 0 and c == 0)]
        if inside:
            accuracy = sum(correct[i] for i in inside) / len(inside)
            mean = sum(confidences[i] for i in inside) / len(inside)
            total += len(inside) / len(confidences) * abs(accuracy - mean)
    return total


def summary(name: str, picked: Sequence[ChoiceScores], gold: Sequence[str]) -> str:
    labels = [s.options[s.chosen] for s in picked]
    correct = [label == g for label, g in zip(labels, gold, strict=True)]
    accuracy = sum(correct) / len(correct)
    positive = labels.count("positive") / len(labels)
    error = ece([s.confidence for s in picked], correct)
    return f"| {name} | {accuracy:.3f} | {positive:.2f} | {error:.3f} |"


def run(
    client: httpx.Client, config: Config, items: Sequence[corpus.Item], records: list[Any]
) -> list[str]:
    schema = sentiment_schema(config.definitions)

    def prompt(text: str) -> str:
        return build_prompt(text, schema, instructions=config.instructions)

    free = ask(client, prompt(CONTENT_FREE_DOCUMENT), schema)
    scored = [(ask(client, prompt(item.text), schema), item.label) for item in items]
    kept = [(s, label) for s, label in scored if s is not None]
    scores, gold = [s for s, _ in kept], [label for _, label in kept]
    batch = Prior.from_scores(scores)
    rows = [
        f"| **{config.name}** ({len(kept)}/{len(items)} scored; N/A prior {_shown(free)}) | | | |",
        summary("greedy", scores, gold),
    ]
    strategies = {"greedy": scores}
    for name, prior in (
        ("content-free", Prior.from_scores([free] if free else [])),
        ("batch", batch),
    ):
        strategies[name] = [calibrated(s, prior) or s for s in scores]
        rows.append(summary(name, strategies[name], gold))
    for i, label in enumerate(gold):
        picked = {k: [v[i].options[v[i].chosen], v[i].confidence] for k, v in strategies.items()}
        records.append({"config": config.name, "gold": label, **picked})
    return rows


def _shown(scores: ChoiceScores | None) -> str:
    if scores is None:
        return "none"
    return ", ".join(f"{o} {p:.2f}" for o, p in zip(scores.options, scores.logprobs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="tweets to label (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="which balanced sample")
    parser.add_argument("--records", help="also write each item's labels to this JSONL file")
    args = parser.parse_args()
    items = corpus.load(args.n, seed=args.seed)
    started = time.monotonic()
    lines = ["| strategy | accuracy | share positive | ECE |", "|---|---|---|---|"]
    records: list[Any] = []
    with serve(LlamaEngine()) as server, httpx.Client(base_url=server.url, timeout=600) as client:
        for config in CONFIGS:
            lines += run(client, config, items, records)
    print(f"{len(items)} tweets, {DEFAULT_LOCAL_MODEL}, {time.monotonic() - started:.0f} s")
    print("\n".join(lines))
    if args.records:
        with open(args.records, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(r) + "\n" for r in records)


if __name__ == "__main__":
    main()
