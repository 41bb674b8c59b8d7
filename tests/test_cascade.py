"""The cascade on the scripted engine: two scripted models as two tiers, with scripted
log-probabilities. Records below tier 1's threshold (or failed) go to tier 2; what neither
accepts is for review; every tier's cost is counted; a killed run resumes to one record per line."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import Scripted, sentiment_reply

from extract import Labeling
from extract.batch.cascade import Tier, parse_tier
from extract.cli import main
from extract.errors import ConfigError
from extract.integrations.ray import Labeler
from extract.server import Reply, ScriptedEngine, serve

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}


def two_models(body: Mapping[str, Any]) -> Reply:
    """``small``: sure of "sure" tweets (0.95), unsure of the others (0.6), and no JSON for
    "broken" ones; ``big``: 0.9 on every tweet but "hopeless" ones (0.55)."""
    prompt = str(body.get("prompt", ""))
    found = re.search(r"tweet (\d+) (\w+)", prompt)
    assert found is not None, prompt
    kind = found[2]
    if body.get("model") == "small":
        if kind == "broken":
            return Reply.text("not JSON")
        p = 0.95 if kind == "sure" else 0.6
    else:
        p = 0.55 if kind == "hopeless" else 0.9
    return sentiment_reply(math.log(p), math.log(1 - p))


KINDS = ["sure", "unsure", "broken", "hopeless"]


def texts(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "text": f"tweet {i} {KINDS[i % 4]}"} for i in range(n)]


def test_records_go_to_the_next_tier_below_the_threshold(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(models=("small", "big"), responder=two_models)
    with Labeling(
        SENTIMENT,
        model="small",
        hosts=server.url,
        calibrate=False,
        domain_prior=False,
        max_attempts=1,
        escalate=[{"model": "big"}],
        thresholds=[0.8, 0.8],
    ) as session:
        records = list(session.results(texts(12)))
    assert [r.line for r in records] == list(range(1, 13))
    for i, record in enumerate(records):
        kind = KINDS[i % 4]
        assert record.tier == {"sure": 1, "unsure": 2, "broken": 2, "hopeless": 2}[kind]
        assert record.accepted is (kind != "hopeless")
        assert record.ok
        # Tier 2's record carries tier 1's attempts too.
        assert record.attempts == (1 if kind == "sure" else 2)
        line = record.to_json()
        assert line["tier"] == record.tier
        assert line.get("review", False) is (kind == "hopeless")
    asked = [body["model"] for body in server.generates()]
    assert asked.count("small") == 12
    assert asked.count("big") == 9


def test_every_tiers_usage_is_summed() -> None:
    from extract.batch.cascade import final
    from extract.batch.records import Record
    from extract.core.wire import Metrics

    tried = [
        Record(1, True, attempts=1, usage=Metrics(total_duration=5, eval_count=3), tier=1),
        Record(1, True, attempts=2, usage=Metrics(total_duration=7, eval_count=4), tier=2),
    ]
    out = final(tried, accepted=True)
    assert (out.tier, out.attempts, out.usage.total_duration, out.usage.eval_count) == (2, 3, 12, 7)
    # Not accepted: the last ok record stands, here tier 1's, for review.
    failed = Record(1, False, attempts=1, tier=2)
    kept = final([tried[0], failed], accepted=False)
    assert kept.ok
    assert kept.tier == 1
    assert kept.accepted is False
    assert kept.attempts == 2


def test_bad_cascades_are_refused_before_any_record() -> None:
    with pytest.raises(ConfigError, match="needs 2 thresholds"):
        Labeling(SENTIMENT, model="small", escalate=[Tier("big")], thresholds=[0.5])
    with pytest.raises(ConfigError, match="escalate= tiers too"):
        Labeling(SENTIMENT, model="small", thresholds=[0.5])
    with pytest.raises(ConfigError, match="unknown 'size'"):
        parse_tier("size=3", lambda p: [])
    assert parse_tier("host=http://a:1,host=http://b:2,samples=3", lambda p: []) == Tier(
        None, ("http://a:1", "http://b:2"), {"samples": 3}
    )
    round_trip = Tier("big", ("http://h:1",), {"examples": [("t", {"sentiment": "positive"})]})
    assert Tier.of(json.loads(json.dumps(round_trip.to_dict()))) == round_trip


def test_the_cli_cascade_marks_review_and_counts_tiers(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = scripted(models=("small", "big"), responder=two_models)
    schema, source, out = tmp_path / "s.json", tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    schema.write_text(json.dumps(SENTIMENT))
    source.write_text("".join(json.dumps(t) + "\n" for t in texts(8)))
    args = ["label", str(source), "-s", str(schema), "-m", "small", "--host", server.url]
    args += ["-o", str(out), "--no-calibrate", "--no-domain-prior", "--max-attempts", "1"]
    result = CliRunner().invoke(main, [*args, "--escalate", "model=big", "--thresholds", "0.8,0.8"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["tier"] for line in lines] == [1, 2, 2, 2] * 2
    assert [line.get("review", False) for line in lines] == [False, False, False, True] * 2
    missing = CliRunner().invoke(main, [*args, "--escalate", "model=big"])
    assert missing.exit_code == 2
    assert "--thresholds" in missing.output


def _slow_two_models(body: Mapping[str, Any]) -> Reply:
    time.sleep(0.01)
    return two_models(body)


def test_a_killed_cascade_resumes_to_one_final_record_per_line(tmp_path: Path) -> None:
    docs = 160
    schema, source, out = tmp_path / "s.json", tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    schema.write_text(json.dumps(SENTIMENT))
    source.write_text("".join(json.dumps(t) + "\n" for t in texts(docs)))
    engine = ScriptedEngine(models=("small", "big"), responder=_slow_two_models)
    with serve(engine) as server:
        command = [sys.executable, "-m", "extract", "label", str(source), "-s", str(schema)]
        command += ["-m", "small", "--host", server.url, "-o", str(out), "--no-calibrate"]
        command += ["--no-domain-prior", "--max-attempts", "1", "--no-cache", "-q"]
        command += ["--escalate", "model=big", "--thresholds", "0.8,0.8"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        victim = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _lines(out) < 70:
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = _lines(out)
        assert 0 < killed_at < docs
        rerun = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
        assert rerun.returncode == 0, rerun.stderr.decode()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["line"] for line in lines) == list(range(1, docs + 1))
    for line in lines:
        kind = KINDS[(line["line"] - 1) % 4]
        assert line["tier"] == (1 if kind == "sure" else 2)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_from_gold_to_a_cascade_run_through_eval_and_the_config_file(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    """Each tier labels the gold alone; eval chooses both thresholds jointly and writes them
    into the config's cascade section; label reads tiers and thresholds from it; eval reports
    the cascade's output per tier."""
    server = scripted(models=("small", "big"), responder=two_models)
    schema, source, gold = tmp_path / "s.json", tmp_path / "in.jsonl", tmp_path / "gold.jsonl"
    schema.write_text(json.dumps(SENTIMENT))
    source.write_text("".join(json.dumps(t) + "\n" for t in texts(80)))
    # Every reply says "positive": right but for the "hopeless" tweets.
    gold.write_text(
        "".join(
            json.dumps({"id": i, "sentiment": "negative" if i % 4 == 3 else "positive"}) + "\n"
            for i in range(80)
        )
    )
    base = ["label", str(source), "-s", str(schema), "--host", server.url, "--no-calibrate"]
    base += ["--no-domain-prior", "--max-attempts", "1", "--no-cache", "-q"]
    runner = CliRunner()
    for model in ("small", "big"):
        result = runner.invoke(main, [*base, "-m", model, "-o", str(tmp_path / f"{model}.jsonl")])
        assert result.exit_code in (0, 1), result.output
    config = tmp_path / "cascade.json"
    chosen = runner.invoke(
        main,
        [
            "eval",
            str(tmp_path / "small.jsonl"),
            str(tmp_path / "big.jsonl"),
            "--gold",
            str(gold),
            "--cascade",
            "0.8",
            "--cascade-delta",
            "0.1",
            "--write-cascade",
            str(config),
        ],
    )
    assert chosen.exit_code == 0, chosen.output
    # Step 1 (0.95, 0.9) keeps 60 right of 60; step 2 (0.6, 0.55) takes the 20 wrong ones too.
    assert "--thresholds 0.9500,0.9000" in chosen.output
    written = json.loads(config.read_text())
    assert written["cascade"]["thresholds"] == [0.95, 0.9]
    assert written["cascade"]["guarantee"]["coverage"] == 0.75
    # The file holds thresholds and no tiers yet: --escalate names them.
    escalated = tmp_path / "escalated.jsonl"
    by_flag = [*base, "-m", "small", "-o", str(escalated), "--cascade-config", str(config)]
    assert runner.invoke(main, [*by_flag, "--escalate", "model=big"]).exit_code == 0
    written["cascade"]["tiers"] = [{"model": "big"}]
    config.write_text(json.dumps(written))
    out = tmp_path / "cascade.jsonl"
    run = runner.invoke(
        main, [*base, "-m", "small", "-o", str(out), "--cascade-config", str(config)]
    )
    assert run.exit_code == 0, run.output
    report = runner.invoke(main, ["eval", str(out), "--gold", str(gold)])
    assert report.exit_code == 0, report.output
    assert "tier 1: reached 80, accepted 20 (coverage 0.250), accuracy 1.000" in report.output
    assert "tier 2: reached 60, accepted 40 (coverage 0.500), accuracy 1.000" in report.output
    assert "review (no tier accepted): 20, accuracy 0.000" in report.output
    as_json = runner.invoke(main, ["eval", str(out), "--gold", str(gold), "--json"])
    tiers = json.loads(as_json.output)["tiers"]
    assert [t["accepted"] for t in tiers["tiers"]] == [20, 40]
    assert tiers["review"] == 20
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    from_flag = [json.loads(line) for line in escalated.read_text().splitlines()]
    assert [line["tier"] for line in from_flag] == [line["tier"] for line in lines]
    assert {len(line["tier_usage"]) for line in lines if line["tier"] == 2} == {2}
    assert {len(line["tier_usage"]) for line in lines if line["tier"] == 1} == {1}


def test_rays_labeler_runs_the_cascade_and_says_tier_and_review(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(models=("small", "big"), responder=two_models)
    labeler = Labeler(
        schema=SENTIMENT,
        model="small",
        hosts=server.url,
        calibrate=False,
        max_attempts=1,
        escalate=[{"model": "big"}],
        thresholds=[0.8, 0.8],
    )
    try:
        batch = pa.table({"text": [t["text"] for t in texts(8)]})
        out = labeler(batch)
        assert isinstance(out, pa.Table)
    finally:
        labeler.close()
    assert out.column("tier").to_pylist() == [1, 2, 2, 2] * 2
    assert out.column("review").to_pylist() == [False, False, False, True] * 2
    assert out.column("attempts").to_pylist() == [1, 2, 2, 2] * 2
