"""``extract review``: export the records worth a look, then use the corrections as gold and
as examples."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from extract.cli import main

COLUMNS = ["id", "line", "text", "value", "confidence", "reason", "corrected"]
SCHEMA = json.dumps({"type": "object", "properties": {"c": {"enum": ["bug", "ui"]}}})


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    """An output file (and its input) holding one record of each kind."""
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": f"t{i}", "text": f"ticket {i}, with a comma"} for i in range(1, 6)],
    )
    failure = {"type": "ExtractionFailed", "message": "x", "last_error": {"type": "InvalidJSON"}}
    output = write_jsonl(
        tmp_path / "out.jsonl",
        [
            {"id": "t1", "line": 1, "ok": True, "value": {"c": "bug"}, "confidence": {"$.c": 0.97}},
            {"id": "t2", "line": 2, "ok": False, "error": failure},
            {"id": "t3", "line": 3, "ok": True, "value": {"c": "bug"}, "confidence": {"$.c": 0.41}},
            {"id": "t4", "line": 4, "ok": True, "value": {"c": "ui"}, "agreement": {"$.c": 0.6}},
            {"id": "t5", "line": 5, "ok": True, "value": {"c": "ui"}},
        ],
    )
    return output, source


def review(*args: str) -> Result:
    return CliRunner().invoke(main, ["review", *args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_exports_failed_unsure_and_disagreeing_records(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    output, source = run
    target = tmp_path / "review.csv"
    result = review(
        str(output), "-o", str(target), "--input", str(source), "--min-confidence", "0.8"
    )
    assert result.exit_code == 0, result.output
    assert "wrote 4 of 5 records" in result.output
    with open(target, encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == COLUMNS
    rows = read_csv(target)
    assert [r["id"] for r in rows] == ["t2", "t3", "t4", "t5"]
    assert [r["line"] for r in rows] == ["2", "3", "4", "5"]
    assert rows[0]["reason"] == "failed (InvalidJSON)"
    assert rows[0]["value"] == ""
    assert rows[1]["reason"] == "confidence 0.41 at $.c"
    assert (rows[1]["confidence"], json.loads(rows[1]["value"])) == ("0.4100", {"c": "bug"})
    assert rows[2]["reason"] == "samples disagree at $.c (60% agree)"
    # Ok, but without the confidence its run's other records carry: nothing shows it clears 0.8.
    assert (rows[3]["reason"], rows[3]["confidence"]) == ("no confidence", "")
    assert rows[1]["text"] == "ticket 3, with a comma"
    assert all(r["corrected"] == "" for r in rows)


def test_without_a_threshold_confidence_is_no_reason(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    output, _ = run
    target = tmp_path / "review.csv"
    assert review(str(output), "-o", str(target)).exit_code == 0
    rows = read_csv(target)
    assert [r["id"] for r in rows] == ["t2", "t4"]
    assert "text" not in rows[0]


def test_an_existing_review_file_is_never_overwritten(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    output, _ = run
    target = tmp_path / "review.csv"
    target.write_text("id,corrected\nt1,precious work\n", encoding="utf-8")
    result = review(str(output), "-o", str(target))
    assert result.exit_code == 2
    assert "exists" in result.output
    assert "precious work" in target.read_text(encoding="utf-8")


def test_a_note_when_no_record_carries_confidence(tmp_path: Path) -> None:
    output = write_jsonl(tmp_path / "out.jsonl", [{"id": 1, "ok": True, "value": "x"}])
    result = review(str(output), "-o", str(tmp_path / "r.csv"), "--min-confidence", "0.5")
    assert result.exit_code == 0
    assert "no record carries confidence" in result.output


def fill(path: Path, corrections: dict[str, str]) -> None:
    rows = read_csv(path)
    for row in rows:
        row["corrected"] = corrections.get(row["id"], "")
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_corrected_file_is_gold_for_eval(run: tuple[Path, Path], tmp_path: Path) -> None:
    output, source = run
    target = tmp_path / "review.csv"
    review(str(output), "-o", str(target), "--input", str(source), "--min-confidence", "0.8")
    # t2 failed, t3 is right after all, t4 was wrong; the person skipped nothing else.
    fill(target, {"t2": '{"c": "ui"}', "t3": '{"c": "bug"}', "t4": '{"c": "bug"}'})
    result = CliRunner().invoke(
        main, ["eval", str(output), "--gold", str(target), "-s", SCHEMA, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["coverage"]["records"] == 3
    (field,) = report["fields"]
    assert (field["path"], field["correct"], field["records"]) == ("$.c", 1, 3)


def test_unfilled_rows_are_skipped_as_gold(run: tuple[Path, Path], tmp_path: Path) -> None:
    output, _ = run
    target = tmp_path / "review.csv"
    review(str(output), "-o", str(target))
    fill(target, {"t4": '{"c": "ui"}'})
    result = CliRunner().invoke(
        main, ["eval", str(output), "--gold", str(target), "-s", SCHEMA, "--json"]
    )
    assert json.loads(result.output)["coverage"]["records"] == 1


def test_corrections_become_examples(run: tuple[Path, Path], tmp_path: Path) -> None:
    output, source = run
    target = tmp_path / "review.csv"
    review(str(output), "-o", str(target), "--input", str(source), "--min-confidence", "0.8")
    fill(target, {"t2": '{"c": "ui"}', "t4": "bug"})
    examples = tmp_path / "examples.jsonl"
    result = review(str(target), "--to-examples", str(examples))
    assert result.exit_code == 0, result.output
    assert "wrote 2 examples" in result.output
    lines = [json.loads(line) for line in examples.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"text": "ticket 2, with a comma", "value": {"c": "ui"}},
        {"text": "ticket 4, with a comma", "value": "bug"},
    ]


def test_examples_need_the_texts(run: tuple[Path, Path], tmp_path: Path) -> None:
    output, _ = run
    target = tmp_path / "review.csv"
    review(str(output), "-o", str(target))
    result = review(str(target), "--to-examples", str(tmp_path / "ex.jsonl"))
    assert result.exit_code == 2
    assert "--input" in result.output


def test_usage_errors(run: tuple[Path, Path], tmp_path: Path) -> None:
    output, _ = run
    assert "name the review CSV" in review(str(output)).output
    mixed = review(str(output), "-o", str(tmp_path / "r.csv"), "--to-examples", "x.jsonl")
    assert mixed.exit_code == 2
    missing = review(str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "r.csv"))
    assert missing.exit_code == 2
    assert "no output file at" in missing.output
