"""Labels you can trust: accuracy and calibration of a choice field on the real model, through
the public API only.

    python -m bench.labels [--n 200] [--seed 0] [--held-out 1] [--out DIR]

``--n`` tweets of the bench corpus (``bench/corpus.py``: airline tweets, half positive, half
negative) are labelled positive or negative by SmolLM2-135M (the llama.cpp engine behind
``extract.server``) in five configurations, all given the same task sentence:

- greedy: ``Labeling(..., calibrate=False)``, temperature 0: the model's own choice and its
  confidence;
- calibrated: the defaults, temperature 0: each choice decided against the in-domain prior
  (16 requests per run, documents of random words from the sample), its confidence the
  calibrated one;
- calibrated N/A: ``domain_prior=False``: against the ``N/A`` document's prior (one request per
  run), as a single ``extract`` call does;
- few-shot k=4: calibrated, with ``examples=`` four corpus tweets (two per label) that are in
  no evaluated sample;
- calibrated, T from the first sample (held-out sample only): calibrated, its confidences
  reported under the temperature ``extract eval`` fitted on the first sample's calibrated
  records (``confidence_temperature=``), as a user with a labeled sample would;
- samples=5: ``samples=5`` at the server's default temperature (0.8), ``calibrate=False``: the
  majority of five, its confidence the agreement;
- the peer: the ``ollama`` client with a plain prompt and the schema as ``format``
  (``bench/labels_peer.py``); no confidence.

Each run's records are written as ``extract label`` writes them (``Record.to_json()``), next to
the gold, and scored by ``extract.evaluate``: accuracy (failed records count as wrong), macro-F1,
ECE of the reported confidence (10 equal-width bins), coverage, and per record the server's
seconds (``usage.total_duration``) and tokens (prompt + output). The prior's requests belong to
no record: their cost (``Labeling.priors``, and the ``N/A`` request found in the metered
server's log, ``bench/labels_meter.py``) is added to the calibrated runs', and what the server
ran is checked against records + prior. ``--held-out`` repeats everything on a second sample,
disjoint from the first, and fits one temperature for the calibrated confidences on the first
sample to check it on the second (``bench/labels_temperature.py``). Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extract import CallOptions, Labeling, Record, evaluate
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from . import corpus, labels_peer
from .labels_meter import Cost, MeteredEngine
from .labels_report import (
    CALIBRATED,
    CALIBRATED_NA,
    CALIBRATED_T,
    FIELD,
    GREEDY,
    PEER,
    Run,
    check_against_sklearn,
    goals,
    table,
    temperature_section,
)

TASK = "Classify the sentiment of the tweet below."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": list(corpus.LABELS)}},
    "required": ["sentiment"],
    "additionalProperties": False,
}
EXAMPLES = 4
SAMPLES = 5
ZERO = {"temperature": 0}
# The peer gets extract's own default cap on generated tokens, so neither can run longer.
PEER_OPTIONS = {"temperature": 0, "num_predict": 1024}


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """One way of labelling: Labeling options, or the peer (``options`` None)."""

    name: str
    options: CallOptions | None
    domain_prior: bool = True


def configs(examples: Sequence[corpus.Item], seed: int) -> tuple[Config, ...]:
    shots = [(item.text, {"sentiment": item.label}) for item in examples]
    return (
        Config(GREEDY, {"calibrate": False, "options": ZERO}),
        Config(CALIBRATED, {"options": ZERO}),
        Config(CALIBRATED_NA, {"options": ZERO}, domain_prior=False),
        Config(f"few-shot k={len(shots)}", {"examples": shots, "options": ZERO}),
        # A seed of the call's makes the samples repeatable (sample i gets seed + i); the
        # temperature stays the server's.
        Config(
            f"samples={SAMPLES}",
            {"samples": SAMPLES, "calibrate": False, "options": {"seed": seed}},
        ),
        Config(PEER, None),
    )


def run_config(
    url: str,
    engine: MeteredEngine,
    config: Config,
    items: Sequence[corpus.Item],
    folder: Path,
) -> Run:
    documents = [{"id": k, "text": item.text} for k, item in enumerate(items, 1)]
    started = time.monotonic()
    kept: list[Record] = []
    learned = Cost()
    if config.options is None:
        rows = labels_peer.label(
            url, DEFAULT_LOCAL_MODEL, documents, SCHEMA, task=TASK, options=PEER_OPTIONS
        )
    else:
        options: CallOptions = {**config.options, "instructions": TASK}
        with Labeling(
            SCHEMA,
            model=DEFAULT_LOCAL_MODEL,
            hosts=url,
            concurrency=1,  # the server runs one generation at a time; queued time is not work
            domain_prior=config.domain_prior,
            **options,
        ) as session:
            kept = list(session.results(documents))
            for prior in session.priors:
                usage = prior.usage
                learned += Cost(
                    prior.documents,
                    (usage.total_duration or 0) / 1e9,
                    usage.prompt_eval_count or 0,
                    usage.eval_count or 0,
                )
        rows = [record.to_json() for record in kept]
    wall = time.monotonic() - started
    path = folder / f"{_file_name(config.name)}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    report = evaluate(path, folder / "gold.jsonl", SCHEMA)
    log = engine.take()
    served = sum((g.cost for g in log), Cost())
    content_free = sum((g.cost for g in log if g.content_free), Cost()) + learned
    recorded = _recorded(rows)
    gold = {k: item.label for k, item in enumerate(items, 1)}
    points = tuple(
        (r.confidence[FIELD], r.value["sentiment"] == gold[r.id])
        for r in kept
        if r.ok and FIELD in r.confidence
    )
    return Run(
        config.name,
        report,
        recorded + content_free,
        content_free,
        wall,
        points,
        _mismatch(served, recorded + content_free),
    )


def _file_name(name: str) -> str:
    """``few-shot k=4`` → ``few-shot-k-4``; ``peer: ...`` → ``peer``."""
    return re.sub(r"[^a-z0-9]+", "-", name.split(":")[0].lower()).strip("-")


def _recorded(rows: Sequence[dict[str, Any]]) -> Cost:
    total = Cost()
    for row in rows:
        usage = row.get("usage", {})
        total += Cost(
            row.get("attempts", 1),
            usage.get("total_duration", 0) / 1e9,
            usage.get("prompt_eval_count", 0),
            usage.get("eval_count", 0),
        )
    return total


def _mismatch(served: Cost, accounted: Cost) -> str | None:
    same = (served.requests, served.tokens) == (accounted.requests, accounted.tokens)
    if same and abs(served.seconds - accounted.seconds) < 1e-6:
        return None
    return (
        f"server ran {served.requests} requests, {served.tokens} tokens, {served.seconds:.2f} s;"
        f" records + prior say {accounted.requests}, {accounted.tokens},"
        f" {accounted.seconds:.2f} s"
    )


def run_sample(
    url: str,
    engine: MeteredEngine,
    items: Sequence[corpus.Item],
    examples: Sequence[corpus.Item],
    seed: int,
    folder: Path,
    temperature: float | None = None,
) -> list[Run]:
    """Every configuration on one sample; with ``temperature`` (fitted on another sample's
    calibrated records), also the calibrated one reporting its confidences under it."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"id": k, "text": i.text} for k, i in enumerate(items, 1)]
    gold = [{"id": k, "sentiment": i.label} for k, i in enumerate(items, 1)]
    for name, rows in (("input", lines), ("gold", gold)):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / f"{name}.jsonl").write_text(text, encoding="utf-8")
    runs = []
    every = list(configs(examples, seed))
    if temperature is not None:
        scaled: CallOptions = {"options": ZERO, "confidence_temperature": temperature}
        every.insert(2, Config(CALIBRATED_T, scaled))
    for config in every:
        runs.append(run_config(url, engine, config, items, folder))
        print(f"seed {seed}: {config.name} done in {runs[-1].wall:.0f} s", file=sys.stderr)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="tweets per sample (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="which balanced sample")
    parser.add_argument(
        "--held-out", type=int, help="also a second, disjoint sample drawn with this seed"
    )
    parser.add_argument(
        "--out", type=Path, help="where the JSONL files go (default: a new temp dir)"
    )
    args = parser.parse_args()
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="bench-labels-"))
    first = corpus.load(args.n, seed=args.seed)
    samples = {args.seed: first}
    if args.held_out is not None:
        samples[args.held_out] = corpus.others(args.n, exclude=first, seed=args.held_out)
    every = [item for items in samples.values() for item in items]
    examples = corpus.others(EXAMPLES, exclude=every, seed=args.seed)
    started = time.monotonic()
    engine = MeteredEngine(LlamaEngine())
    results: dict[int, list[Run]] = {}
    fitted: float | None = None
    with serve(engine) as server:
        engine.load(DEFAULT_LOCAL_MODEL, None)  # so no run pays for loading the model
        for seed, items in samples.items():
            results[seed] = run_sample(
                server.url, engine, items, examples, seed, out / f"seed-{seed}", fitted
            )
            # What `extract eval` fits on the first sample's calibrated records, as a user
            # with a labeled sample would, is applied to the held-out sample.
            cal = next(run for run in results[seed] if run.name == CALIBRATED).report.calibration
            fitted = cal.temperature if cal is not None else None
    wall = time.monotonic() - started
    print(
        f"{args.n} tweets per sample ({', '.join(f'seed {s}' for s in samples)}), "
        f"{DEFAULT_LOCAL_MODEL}, task {TASK!r}; wall {wall / 60:.1f} min; records in {out}"
    )
    for seed, runs in results.items():
        print(f"\nSample seed {seed}:\n")
        print("\n".join(table(runs)))
    runs = results[args.seed]
    calibrated = next(run for run in runs if run.name == CALIBRATED)
    print("\n" + check_against_sklearn(out / f"seed-{args.seed}", CALIBRATED, calibrated.report))
    if args.held_out is not None:
        print("\n" + "\n".join(temperature_section(results[args.seed], results[args.held_out])))
    held_out = results[args.held_out] if args.held_out is not None else []
    lines, met = goals(runs, held_out)
    print("\n" + "\n".join(lines))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
