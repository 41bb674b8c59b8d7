"""``extract eval`` that does not guess: the run's schema kept beside its output, no temperature
from too few records, confident mistakes only under "wrong with high confidence", charts on
0–1 axes, and the gold rows to double-check."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Scripted, sentiment_reply

from extract import evaluate
from extract.batch.evaluation.doubts import HIGH_CONFIDENCE, gold_doubts
from extract.batch.evaluation.html import _coverage, _reliability, render_html
from extract.batch.evaluation.metrics import MIN_FIT_RECORDS
from extract.batch.sidecar import read_sidecar, sidecar_path
from extract.cli import main
from extract.core.schema import Schema

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
    "required": ["sentiment"],
}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def record(i: int, label: str, confidence: float, scores: dict[str, float] | None = None) -> Any:
    row: dict[str, Any] = {"id": i, "ok": True, "value": {"sentiment": label}}
    row["confidence"] = {"$.sentiment": confidence}
    if scores is not None:
        row["scores"] = {"$.sentiment": scores}
    return row


def test_label_keeps_the_schema_beside_its_output_and_eval_reads_it(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    schema = tmp_path / "sentiment.json"
    schema.write_text(json.dumps(SENTIMENT))
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": f"t{i}"} for i in range(4)])
    server = scripted()
    server.engine.script(*[sentiment_reply(math.log(0.9), math.log(0.1))] * 4)
    out = tmp_path / "out.jsonl"
    args = ["label", str(source), "-s", str(schema), "-m", "tiny", "--host", server.url]
    result = CliRunner().invoke(main, [*args, "-o", str(out), "--no-cache", "--no-calibrate"])
    assert result.exit_code == 0, result.output
    kept = json.loads(sidecar_path(out).read_text())
    assert (kept["schema"], kept["model"]) == (SENTIMENT, "tiny")
    assert read_sidecar(out) == Schema.load(SENTIMENT)
    assert len(out.read_text().splitlines()) == 4  # one output line per input line, still
    # Four gold rows of two labels: guessed from values, a free string; from the schema, an enum.
    gold = write_jsonl(
        tmp_path / "gold.jsonl",
        [{"id": i, "sentiment": ["positive", "neutral"][i % 2]} for i in range(4)],
    )
    text = CliRunner().invoke(main, ["eval", str(out), "--gold", str(gold)])
    assert text.exit_code == 0, text.output
    assert "$.sentiment: confusion matrix" in text.output
    assert evaluate(out, gold).field("sentiment").kind == "choice"


def test_a_temperature_is_not_fitted_on_too_few_records(tmp_path: Path) -> None:
    few = MIN_FIT_RECORDS - 1
    out = write_jsonl(tmp_path / "out.jsonl", [record(i, "positive", 0.6) for i in range(few)])
    gold = write_jsonl(
        tmp_path / "gold.jsonl",
        [{"id": i, "sentiment": "negative" if i % 10 == 0 else "positive"} for i in range(few)],
    )
    schema = json.dumps(SENTIMENT)
    text = CliRunner().invoke(main, ["eval", str(out), "--gold", str(gold), "-s", schema])
    assert text.exit_code == 0, text.output
    assert f"not fitted, since only {few} records carry confidence" in text.output
    assert "--confidence-temperature" not in text.output
    as_json = CliRunner().invoke(
        main, ["eval", str(out), "--gold", str(gold), "-s", schema, "--json"]
    )
    calibration = json.loads(as_json.output)["calibration"]
    assert (calibration["temperature"], calibration["fitted_ece"]) == (None, None)
    assert calibration["ece"] == pytest.approx(0.3, abs=0.01)


@pytest.fixture
def report_data(tmp_path: Path) -> tuple[Path, Path]:
    """Confidently wrong records (0.95, 0.85), an unsure wrong one (0.55), right ones at 0.6+."""
    rows = [
        record(0, "negative", 0.85, {"positive": 0.1, "negative": 0.85, "neutral": 0.05}),
        record(1, "negative", 0.95, {"positive": 0.04, "negative": 0.95, "neutral": 0.01}),
        record(2, "neutral", 0.55, {"positive": 0.4, "negative": 0.05, "neutral": 0.55}),
        record(3, "negative", 0.9),  # no scores: P(gold) is at most 0.1
        *(record(i, "positive", 0.6 + i / 100) for i in range(4, 30)),
    ]
    gold = [{"id": i, "sentiment": "positive"} for i in range(30)]
    return write_jsonl(tmp_path / "out.jsonl", rows), write_jsonl(tmp_path / "gold.jsonl", gold)


def test_gold_rows_to_double_check_are_the_confident_contradictions_ranked(
    report_data: tuple[Path, Path],
) -> None:
    out, gold = report_data
    report = evaluate(out, gold, SENTIMENT)
    doubts = report.doubtful_gold
    # Least probability left for the gold label first: 0.04, then 0.1 (scores) and at most
    # 0.1 (no scores, confidence 0.9) ranked by confidence; 0.55 is not confident.
    assert [(d.key, d.gold_probability) for d in doubts] == [("1", 0.04), ("3", None), ("0", 0.1)]
    assert all(d.gold == "positive" and d.predicted == "negative" for d in doubts)
    assert all(d.confidence >= HIGH_CONFIDENCE for d in doubts)
    assert report.to_dict()["doubtful_gold"][0]["key"] == "1"
    text = CliRunner().invoke(
        main, ["eval", str(out), "--gold", str(gold), "-s", json.dumps(SENTIMENT)]
    )
    assert "gold rows to double-check: 3 choice fields" in text.output
    listed = text.output[text.output.index("gold rows to double-check") :]
    assert listed.index("\n1 ") < listed.index("\n3 ") < listed.index("\n0 ")
    page = render_html(report, title="t", texts={})
    section = page[page.index("<h2>Gold rows to double-check</h2>") :]
    assert section.index("<td>1</td>") < section.index("<td>3</td>") < section.index("<td>0</td>")


def test_gold_doubts_leave_out_failed_records_and_fields_without_confidence() -> None:
    from extract.batch.evaluation.data import outcome_of
    from extract.batch.evaluation.fields import schema_specs

    specs = schema_specs(Schema.load(SENTIMENT))
    failed = outcome_of({"id": 1, "ok": False, "error": {"type": "InvalidJSON"}}, 1)
    bare = outcome_of({"id": 2, "ok": True, "value": {"sentiment": "negative"}}, 2)
    gold = {"sentiment": "positive"}
    assert gold_doubts([(failed, gold), (bare, gold)], specs) == ()


def test_wrong_with_high_confidence_lists_only_confident_mistakes_once(
    report_data: tuple[Path, Path],
) -> None:
    out, gold = report_data
    page = render_html(evaluate(out, gold, SENTIMENT), title="t", texts={})
    wrong = page[page.index("<h2>Wrong with high confidence</h2>") : page.index("<h2>Lowest")]
    lowest = page[page.index("<h2>Lowest confidence</h2>") : page.index("<h2>Gold rows")]
    assert f"calibrated confidence is {HIGH_CONFIDENCE:g} or more" in wrong
    assert [k for k in ("id 0 ", "id 1 ", "id 2 ", "id 3 ") if k in wrong] == [
        "id 0 ",
        "id 1 ",
        "id 3 ",
    ]
    assert wrong.index("id 1 ") < wrong.index("id 3 ") < wrong.index("id 0 ")
    assert "id 2 " in lowest  # the unsure mistake is among the lowest
    assert not any(f"id {k} " in lowest for k in (0, 1, 3))  # listed once


def test_the_charts_axes_run_from_0_to_1(report_data: tuple[Path, Path]) -> None:
    out, gold = report_data
    cal = evaluate(out, gold, SENTIMENT).calibration
    for figure in (_reliability(cal), _coverage(cal)):
        (ax,) = figure.axes[:1]
        assert (ax.get_xlim(), ax.get_ylim()) == ((0.0, 1.0), (0.0, 1.0))
