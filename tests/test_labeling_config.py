"""The labeling config file: its round trip, its checks, and its use by ``extract eval
--target-accuracy``, ``extract label --config`` and ``Labeling(config=...)``."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Scripted, sentiment_reply

from extract import ConfigError
from extract.batch.labeling_config import (
    LabelingConfig,
    Provenance,
    Threshold,
    decode_path,
    file_sha256,
    provenance_mismatch,
)
from extract.batch.session import Labeling
from extract.cli import main
from extract.core.confidence import SCORING_VERSION

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}
THRESHOLD = Threshold(0.9, 0.95, 0.05, 0.6, 0.98, 0.951, 200, 120)


def full_config() -> LabelingConfig:
    return LabelingConfig(
        options={
            "instructions": "Say how the review feels.",
            "examples": [("Great film.", {"sentiment": "positive"})],
            "rendering": "schema",
            "confidence_temperature": 0.5,
            "samples": 1,
            "calibrate": True,
        },
        prior=False,
        record_threshold=THRESHOLD,
        field_thresholds={"$.sentiment": THRESHOLD},
        calibration_sha256="ab" * 32,
        calibration_ids=("1", "7"),
        calibration_confidences=(0.5, 0.75, 0.9),
        provenance=Provenance(model="tiny", digest="sha256:" + "cd" * 32, gold_sha256="ef" * 32),
        extra={"tiers": [{"model": "bigger"}]},
    )


def test_the_file_round_trips(tmp_path: Path) -> None:
    config = full_config()
    path = tmp_path / "tuned.json"
    config.save(path)
    assert LabelingConfig.load(path) == config
    data = json.loads(path.read_text())
    assert data["extract_labeling_config"] == 1
    assert data["options"]["prior"] == "n/a"
    assert data["options"]["examples"] == [
        {"text": "Great film.", "value": {"sentiment": "positive"}}
    ]
    assert data["tiers"] == [{"model": "bigger"}]  # kept for a later version
    assert data["provenance"]["scoring_version"] == SCORING_VERSION
    assert LabelingConfig.from_dict({"extract_labeling_config": 1}) == LabelingConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "not a labeling config"),
        ({"extract_labeling_config": 1, "options": {"sampels": 2}}, "unknown sampels"),
        ({"extract_labeling_config": 1, "options": {"samples": "2"}}, "options.samples"),
        ({"extract_labeling_config": 1, "options": {"prior": "none"}}, "options.prior"),
        ({"extract_labeling_config": 1, "options": {"rendering": "x"}}, "options.rendering"),
        ({"extract_labeling_config": 1, "options": {"examples": [1]}}, "options.examples"),
        ({"extract_labeling_config": 1, "thresholds": {"record": {"threshold": 2}}}, "needs"),
        ({"extract_labeling_config": 1, "calibration": {"confidences": [2]}}, "0..1"),
        ({"extract_labeling_config": 1, "provenance": {"backend": "vllm"}}, "backend"),
        ({"extract_labeling_config": 1, "provenance": {"digest": 3}}, "provenance.digest"),
    ],
)
def test_a_bad_config_names_its_fault(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LabelingConfig.from_dict(data)


def test_loading_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json is not JSON"):
        LabelingConfig.load(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        LabelingConfig.load(tmp_path / "missing.json")


def test_given_options_override_the_config_and_are_named() -> None:
    merged, changed = full_config().call_options({"samples": 3, "rendering": "schema"})
    assert merged["samples"] == 3
    assert merged["instructions"] == "Say how the review feels."
    assert changed == ["samples"]


def test_provenance_is_compared_by_digest_then_name() -> None:
    recorded = Provenance(model="tiny", digest="sha256:aa", decode_path=decode_path({}))
    same = provenance_mismatch(recorded, model="alias", digest="sha256:aa", options={})
    assert same == []
    other = provenance_mismatch(recorded, model="tiny", digest="sha256:bb", options={})
    assert ["model digest" in p for p in other] == [True]
    named = provenance_mismatch(Provenance(model="tiny"), model="big", digest=None, options={})
    assert named == ["model 'big' is not the tuned 'tiny'"]
    path = provenance_mismatch(recorded, model="tiny", digest=None, options={"samples": 5})
    assert ["decode path" in p for p in path] == [True]
    old = Provenance(scoring_version=SCORING_VERSION - 1)
    assert "scoring" in provenance_mismatch(old, model="x", digest=None, options={})[0]
    server = provenance_mismatch(
        Provenance(model="tiny"), model="tiny", digest=None, options={}, backend="openai"
    )
    assert server == ["backend 'openai' is not the tuned 'ollama'"]


# -- the commands ------------------------------------------------------------------------------


def write_run(tmp_path: Path, size: int, seed: int) -> tuple[Path, Path]:
    """An output file of ``size`` records with confidences, and gold: the more confident a
    record, the likelier it is right (at 0.9 and above: always)."""
    rng = random.Random(seed)
    out, gold = tmp_path / f"out{seed}.jsonl", tmp_path / f"gold{seed}.jsonl"
    rows, golds = [], []
    for i in range(size):
        confidence = round(0.5 + 0.5 * rng.random(), 4)
        right = confidence >= 0.9 or rng.random() < confidence - 0.2
        value = "positive"
        rows.append(
            {
                "id": i,
                "line": i + 1,
                "ok": True,
                "value": {"sentiment": value},
                "confidence": {"$.sentiment": confidence},
                "min_confidence": confidence,
            }
        )
        golds.append({"id": i, "sentiment": value if right else "negative"})
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gold.write_text("".join(json.dumps(g) + "\n" for g in golds))
    return out, gold


def run_eval(out: Path, gold: Path, *args: str) -> Any:
    schema = out.with_name("sentiment.schema.json")
    schema.write_text(json.dumps(SENTIMENT))
    base = ["eval", str(out), "--gold", str(gold), "--schema", str(schema)]
    return CliRunner().invoke(main, [*base, *args])


def test_eval_sets_a_threshold_and_writes_it(tmp_path: Path) -> None:
    out, gold = write_run(tmp_path, 600, seed=1)
    config = tmp_path / "tuned.json"
    result = run_eval(out, gold, "--target-accuracy", "0.95", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "guarantee per record: accuracy ≥ 0.95 with probability ≥ 0.95" in result.output
    written = LabelingConfig.load(config)
    record = written.record_threshold
    assert record is not None
    assert record.threshold >= 0.9
    assert record.lower_bound >= 0.95
    assert record.gold_records == 600
    assert set(written.field_thresholds) == {"$.sentiment"}
    assert written.calibration_sha256 == file_sha256(gold)
    assert len(written.calibration_confidences) == 600
    # eval --config counts the records its threshold accepts, here all right.
    counted = run_eval(out, gold, "--config", str(config), "--json")
    section = json.loads(counted.stdout)["guarantee"]["accepted"]
    assert section["accepted"] == record.accepted
    assert section["accuracy"] == 1.0


def test_eval_refuses_with_how_much_gold_is_needed(tmp_path: Path) -> None:
    out, gold = write_run(tmp_path, 40, seed=2)
    config = tmp_path / "tuned.json"
    result = run_eval(out, gold, "--target-accuracy", "0.95", "--config", str(config))
    assert result.exit_code == 1
    assert "refused: no confidence threshold reaches 0.95" in result.output
    assert "more, drawn like these" in result.output
    assert not config.exists()
    as_json = run_eval(out, gold, "--target-accuracy", "0.95", "--config", str(config), "--json")
    needed = json.loads(as_json.stdout)["guarantee"]["thresholds"]["record"]["gold_needed"]
    assert needed > 40


def test_eval_refuses_the_gold_tuning_saw(tmp_path: Path) -> None:
    out, gold = write_run(tmp_path, 300, seed=3)
    config = tmp_path / "tuned.json"
    LabelingConfig(provenance=Provenance(gold_sha256=file_sha256(gold))).save(config)
    result = run_eval(out, gold, "--target-accuracy", "0.9", "--config", str(config))
    assert result.exit_code == 2
    assert "tuned on" in result.output
    # With the calibration split recorded, only those rows set the threshold.
    split = tuple(str(i) for i in range(0, 300, 2))
    LabelingConfig(
        calibration_ids=split, provenance=Provenance(gold_sha256=file_sha256(gold))
    ).save(config)
    as_json = run_eval(out, gold, "--target-accuracy", "0.9", "--config", str(config), "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["guarantee"]["thresholds"]["record"]["gold_records"] == 150


def test_eval_flags_need_one_output_and_a_config(tmp_path: Path) -> None:
    out, gold = write_run(tmp_path, 10, seed=4)
    assert "name one" in run_eval(out, gold, "--target-accuracy", "0.9").output
    bad = run_eval(out, gold, "--target-accuracy", "1.5", "--config", str(tmp_path / "c.json"))
    assert bad.exit_code == 2


def label_args(server: Scripted, source: Path, schema: Path, out: Path) -> list[str]:
    return ["label", str(source), "-s", str(schema), "-o", str(out), "--host", server.url]


def setup_label(tmp_path: Path, scripted: Callable[..., Scripted]) -> tuple[Scripted, Path, Path]:
    schema = tmp_path / "sentiment.json"
    schema.write_text(json.dumps(SENTIMENT))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": f"r{i}"}) + "\n" for i in range(4)))
    server = scripted()
    # Confidences 0.9, 0.6, 0.95, 0.55 (no calibration: the config turns it off).
    weights = [(0.9, 0.1), (0.6, 0.4), (0.95, 0.05), (0.55, 0.45)]
    server.engine.script(*[sentiment_reply(math.log(p), math.log(n)) for p, n in weights])
    return server, schema, source


def test_label_applies_the_config(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    server, schema, source = setup_label(tmp_path, scripted)
    config = tmp_path / "tuned.json"
    LabelingConfig(
        options={"instructions": "Say how the review feels.", "calibrate": False},
        prior=False,
        record_threshold=Threshold(0.8, 0.95, 0.05, 0.5, 1.0, 0.96, 100, 50),
        provenance=Provenance(model="tiny", decode_path=decode_path({"calibrate": False})),
    ).save(config)
    out = tmp_path / "out.jsonl"
    args = [*label_args(server, source, schema, out), "--config", str(config), "--no-cache"]
    result = CliRunner().invoke(main, [*args, "--min-confidence", "0.5"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # Replies go to whichever record asks first: judge each record by its own confidence.
    assert [r["accepted"] for r in lines] == [r["min_confidence"] >= 0.8 for r in lines]
    assert [r.get("review", False) for r in lines] == [not r["accepted"] for r in lines]
    assert "accepted under the guaranteed threshold: 2; not accepted: 2" in result.stderr
    assert all("Say how the review feels." in g["prompt"] for g in server.generates())


def test_label_refuses_a_provenance_mismatch_unless_forced(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    server, schema, source = setup_label(tmp_path, scripted)
    config = tmp_path / "tuned.json"
    LabelingConfig(
        options={"calibrate": False},
        provenance=Provenance(model="tiny", digest="sha256:" + "0" * 64),
    ).save(config)
    out = tmp_path / "out.jsonl"
    args = [*label_args(server, source, schema, out), "--config", str(config), "--no-cache"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2
    assert "model digest" in refused.output
    assert "--force" in refused.output
    forced = CliRunner().invoke(main, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(out.read_text().splitlines()) == 4


def test_labeling_takes_a_config_and_warns_of_a_shifted_batch(
    tmp_path: Path, scripted: Callable[..., Scripted], caplog: pytest.LogCaptureFixture
) -> None:
    server = scripted()
    replies = [sentiment_reply(math.log(0.55), math.log(0.45)) for _ in range(40)]
    server.engine.script(*replies)
    config = LabelingConfig(
        options={"calibrate": False},
        prior=False,
        record_threshold=Threshold(0.9, 0.95, 0.05, 0.5, 1.0, 0.96, 100, 50),
        calibration_confidences=tuple(0.9 + i / 1000 for i in range(100)),
    )
    with Labeling(SENTIMENT, model="tiny", hosts=server.url, config=config) as session:
        records = list(session.results([f"r{i}" for i in range(40)]))
    assert [r.accepted for r in records] == [False] * 40
    assert session.shift is not None
    assert session.shift.differs(0.01)
    assert "differ from the calibration gold's" in caplog.text
