"""``extract tune``: cross-validation without leaks, the search's choice, the budget, the
config it writes, and every flag, on the scripted engine with scripted log-probabilities.

The scripted model labels a tweet right, with confident log-probabilities, only when the prompt
shows worked examples; without them it answers "positive" to everything (half right). So every
candidate with examples beats the default, and among them the cheapest (the shortest prompt)
must win the tie.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Scripted, sentiment_reply

from extract.batch.cache import Cache
from extract.batch.evaluation.data import Gold
from extract.batch.labeling_config import LabelingConfig, file_sha256
from extract.batch.tune import Candidate, GoldSet, Space, Tuner, TuneReport, tune
from extract.cli import main
from extract.core import tuning
from extract.core.schema import Schema
from extract.server import Reply

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}
N = 40
ALL_TEXTS = {
    f"t{i}": f"flight {i} was {'lovely' if i % 2 == 0 else 'awful'} today" for i in range(120)
}
TEXTS = dict(list(ALL_TEXTS.items())[:N])
LABELS = {k: "positive" if int(k[1:]) % 2 == 0 else "negative" for k in ALL_TEXTS}
BY_TEXT = {text: LABELS[key] for key, text in ALL_TEXTS.items()}


def document_of(prompt: str) -> str:
    return prompt[prompt.rindex("<document>\n") + 11 : prompt.rindex("\n</document>")]


def example_texts(prompt: str) -> list[str]:
    """The texts of the worked examples a prompt shows."""
    head = prompt[: prompt.rindex("<document>\n")]
    return [part.split("\n</document>")[0] for part in head.split("<document>\n")[1:]]


def responder(body: Mapping[str, Any]) -> Reply:
    prompt = str(body["prompt"])
    label = BY_TEXT.get(document_of(prompt))
    if label is None:  # the prior's documents: no lean
        return sentiment_reply(-0.69, -0.69)
    if "Examples:" not in prompt:
        return sentiment_reply(-0.1, -2.4, "positive")
    if label == "positive":
        return sentiment_reply(-0.05, -3.0, "positive")
    return sentiment_reply(-3.0, -0.05, "negative")


def gold_set(n: int = N) -> GoldSet:
    texts = dict(list(ALL_TEXTS.items())[:n])
    values = {k: {"sentiment": LABELS[k]} for k in texts}
    return GoldSet.of(Gold(values), texts, Schema.load(SENTIMENT))


@pytest.fixture
def server(scripted: Callable[..., Scripted]) -> Scripted:
    return scripted(responder=responder)


def run(server: Scripted, n: int = N, **kwargs: Any) -> tuple[Tuner, TuneReport]:
    tuner = Tuner(gold_set(n), SENTIMENT, model="tiny", hosts=[server.url], **kwargs)
    return tuner, asyncio.run(tuner.run())


def test_folds_and_split_are_stratified_and_disjoint() -> None:
    keys = sorted(TEXTS)
    strata = {k: LABELS[k] for k in keys}
    tuned, held = tuning.calibration_split(keys, strata, 0.4, seed=3)
    assert len(held) == 16
    assert not set(tuned) & set(held)
    assert sum(LABELS[k] == "positive" for k in held) == 8
    folds = tuning.assign_folds(tuned, strata, 3, seed=3)
    for fold in range(3):
        members = [k for k in tuned if folds[k] == fold]
        assert len(members) == 8
        assert sum(LABELS[k] == "positive" for k in members) in (4,)
    examples = tuning.fold_examples(folds, tuned, strata, 4, seed=3)
    for fold, keys_shown in examples.items():
        assert len(keys_shown) == 4
        assert all(folds[k] != fold for k in keys_shown)
        assert sorted(LABELS[k] for k in keys_shown) == ["negative"] * 2 + ["positive"] * 2


def test_examples_never_come_from_the_scored_fold_nor_the_calibration_split(
    server: Scripted,
) -> None:
    tuner, _ = run(server, space=Space(renderings=("shape",), shots=(2, 8), priors=(False,)))
    key_of = {text: key for key, text in TEXTS.items()}
    scored_with_examples = 0
    for body in server.generates():
        prompt = str(body["prompt"])
        document = document_of(prompt)
        if document not in key_of:
            continue
        key = key_of[document]
        assert key in tuner.folds  # calibration records are never labeled while tuning
        shown = [key_of[t] for t in example_texts(prompt)]
        assert all(tuner.folds[s] != tuner.folds[key] for s in shown)
        assert not set(shown) & set(tuner.calibration)
        scored_with_examples += bool(shown)
    assert scored_with_examples >= len(tuner.tuning)


def test_the_search_picks_the_better_candidate_and_ties_go_to_the_cheaper(
    server: Scripted,
) -> None:
    tuner, report = run(server, space=Space(shots=(0, 2, 4), priors=(False,)))
    default = tuner.candidates[0]
    assert default == Candidate()
    assert report.default.candidate == default
    assert report.default.accuracy == 0.5
    # Every candidate with examples is right on every record: the cheapest of them wins.
    with_examples = [c for c in tuner.candidates if c.shots and not c.in_domain]
    cheapest = min(with_examples, key=tuner.prompt_chars)
    assert report.winner.candidate == cheapest
    assert cheapest.shots == 2
    assert report.winner.accuracy == 1.0
    assert report.winner.records == len(tuner.tuning)
    assert report.difference.difference == 0.5
    assert report.difference.low > 0
    assert report.significant
    # The halving kept the default to the end, for the paired comparison.
    assert report.default.records == len(tuner.tuning)
    assert report.winner.low <= report.winner.accuracy <= report.winner.high
    assert report.winner.seconds_per_record is not None
    assert report.winner.tokens_per_record
    assert report.winner.tokens_per_record > 0


def test_a_tie_with_the_default_keeps_the_default(scripted: Callable[..., Scripted]) -> None:
    # A model that ignores the examples: nothing beats the default, which is also cheapest.
    server = scripted(responder=lambda body: sentiment_reply(-0.1, -2.4, "positive"))
    _, report = run(server, space=Space(shots=(0, 2), priors=(False,)))
    assert report.winner.candidate == Candidate(in_domain=False) or report.winner.candidate == (
        Candidate()
    )
    assert report.winner.candidate.shots == 0
    assert not report.significant


def test_the_budget_caps_model_calls(scripted: Callable[..., Scripted]) -> None:
    space = Space(shots=(0, 2, 4, 8), priors=(False,))
    whole = scripted(responder=responder)
    _, full = run(whole, space=space)
    assert not full.budget_reached
    assert full.calls == len(whole.generates())
    capped = scripted(responder=responder)
    budget = full.calls - 10
    _, report = run(capped, space=space, budget=budget)
    assert report.budget_reached
    assert report.calls == len(capped.generates()) <= budget


def test_a_budget_too_small_for_one_round_is_refused_with_advice(server: Scripted) -> None:
    from extract.errors import ConfigError

    with pytest.raises(ConfigError, match="raise --budget"):
        run(server, space=Space(shots=(0, 2), priors=(False,)), budget=5)


def test_the_cache_makes_a_rerun_free(server: Scripted, cache_file: Path) -> None:
    space = Space(renderings=("shape",), shots=(0, 2), priors=(False,))
    with Cache(cache_file) as cache:
        _, first = run(server, space=space, cache=cache)
        sent = len(server.generates())
        _, again = run(server, space=space, cache=cache)
    # No gold record is labeled again: only the sessions' priors are asked again.
    again_sent = [document_of(str(b["prompt"])) for b in server.generates()[sent:]]
    assert again_sent
    assert not set(again_sent) & set(TEXTS.values())
    assert again.winner.candidate == first.winner.candidate
    assert again.winner.accuracy == first.winner.accuracy


def test_the_config_round_trips_with_the_calibration_split_and_provenance(
    server: Scripted, tmp_path: Path
) -> None:
    tuner, report = run(server, space=Space(shots=(0, 2), priors=(False,)))
    path = tmp_path / "tuned.json"
    report.config.save(path)
    loaded = LabelingConfig.load(path)
    assert loaded.to_dict() == report.config.to_dict()
    assert loaded.calibration_ids == tuple(tuner.calibration)
    assert loaded.prior is False
    assert loaded.options["rendering"] == report.winner.candidate.rendering
    examples = loaded.options.get("examples") or []
    assert len(examples) == 2
    assert not {TEXTS[k] for k in tuner.calibration} & {t for t, _ in examples}
    assert loaded.provenance is not None
    assert loaded.provenance.model == "tiny"
    assert loaded.provenance.backend == "ollama"
    assert loaded.provenance.decode_path
    assert "calibrated" in loaded.provenance.decode_path


def test_the_temperature_is_fitted_on_out_of_fold_predictions(server: Scripted) -> None:
    space = Space(shots=(2,), renderings=("shape",), priors=(False,))
    report = tune(gold_set(100), SENTIMENT, model="tiny", hosts=[server.url], space=space)
    assert report.tuning_records == 60
    assert report.calibration_records == 40
    # Right on every record at confidence ~0.95 (log-odds 2.95): a temperature below 1
    # sharpens it, fitted on the 60 out-of-fold predictions.
    assert report.winner.candidate.shots == 2
    assert report.temperature is not None
    assert report.temperature < 1
    assert report.config.options["confidence_temperature"] == report.temperature


def test_too_few_records_fit_no_temperature(server: Scripted) -> None:
    _, report = run(server, space=Space(shots=(2,), renderings=("shape",), priors=(False,)))
    assert report.tuning_records == 24
    assert report.temperature is None
    assert "confidence_temperature" not in report.config.options


def test_too_little_gold_is_refused(server: Scripted) -> None:
    from extract.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 10"):
        gold_set(5)
    with pytest.raises(ConfigError, match="folds"):
        run(server, n=12, folds=9)


def write_input(tmp_path: Path) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": k, "text": TEXTS[k], "label": {"sentiment": LABELS[k]}}) + "\n"
            for k in TEXTS
        )
    )
    return path


def test_cli_tune_with_every_flag(server: Scripted, tmp_path: Path, cache_file: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SENTIMENT))
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("Classify the sentiment.\n\nIs the flight good or bad?\n")
    source = write_input(tmp_path)
    out = tmp_path / "tuned.json"
    args = [
        "tune", str(source), "--gold-field", "label", "--schema", str(schema), "-o", str(out),
        "--host", server.url, "--model", "tiny", "--cache", str(cache_file),
        "--instructions", "Say the sentiment.", "--instructions-file", str(sentences),
        "--renderings", "shape", "--shots", "0,2", "--priors", "n/a", "--samples", "1",
        "--folds", "2", "--calibration", "0.25", "--budget", "2000", "--seed", "1",
        "--id-field", "id", "--text-field", "text",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "candidates" in result.stderr
    assert "round 1/" in result.stderr
    assert "10 held out for calibration" in result.stdout
    assert "2-fold" in result.stdout
    assert "significantly better" in result.stdout
    config = LabelingConfig.load(out)
    assert config.calibration_ids is not None
    assert len(config.calibration_ids) == 10
    assert config.provenance is not None
    assert config.provenance.gold_sha256 == file_sha256(source)
    assert config.calibration_sha256 == file_sha256(source)
    # Four task sentences (three given, one the default), one rendering, k in {0, 2}.
    assert result.stderr.count("] ") >= 8
    quiet = CliRunner().invoke(main, [*args, "--quiet", "--no-cache"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_cli_tune_with_gold_and_input_files(server: Scripted, tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": k, "sentiment": LABELS[k]}) + "\n" for k in TEXTS))
    source = write_input(tmp_path)
    out = tmp_path / "tuned.json"
    base = ["tune", str(gold), "-s", json.dumps(SENTIMENT), "-o", str(out), "--host", server.url]
    base += ["-m", "tiny", "--no-cache", "--shots", "0,2", "--priors", "n/a", "-q"]
    result = CliRunner().invoke(main, [*base, "--input", str(source)])
    assert result.exit_code == 0, result.output
    assert LabelingConfig.load(out).provenance is not None
    missing = CliRunner().invoke(main, base)
    assert missing.exit_code == 2
    assert "--input" in missing.output


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--shots", "two", "--shots"),
        ("--shots", "-1", "--shots"),
        ("--samples", "0", "--samples"),
        ("--renderings", "fancy", "--renderings"),
        ("--priors", "learned", "--priors"),
        ("--folds", "1", "--folds"),
        ("--calibration", "1", "--calibration"),
        ("--budget", "0", "--budget"),
    ],
)
def test_cli_tune_refuses_bad_flags(tmp_path: Path, flag: str, value: str, message: str) -> None:
    source = write_input(tmp_path)
    args = ["tune", str(source), "--gold-field", "label", "-s", json.dumps(SENTIMENT)]
    result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "t.json"), flag, value])
    assert result.exit_code == 2
    assert message in result.output


def test_gold_that_is_no_whole_value_tries_no_examples(server: Scripted) -> None:
    partial = {
        "type": "object",
        "properties": {"sentiment": {"enum": ["positive", "negative"]}, "why": {"type": "string"}},
        "required": ["sentiment", "why"],
    }
    said: list[str] = []
    tuner = Tuner(gold_set(), partial, model="tiny", hosts=[server.url], progress=said.append)
    assert {c.shots for c in tuner.candidates} == {0}
    assert any("no worked examples" in line for line in said)
