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

import pytest
from click.testing import CliRunner
from conftest import Scripted, sentiment_reply

from extract import Labeling
from extract.batch.cascade import Tier, parse_tier
from extract.cli import main
from extract.errors import ConfigError
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
