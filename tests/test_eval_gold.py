"""Where gold comes from (JSONL, CSV, a `value`, the labeling input, a review file) and the
errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extract import ConfigError, InputError, evaluate

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["bug", "billing"]},
        "urgent": {"type": "boolean"},
        "amount": {"type": ["number", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "code": {"type": "string"},
    },
}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ok(record_id: Any, value: Any, **extra: Any) -> dict[str, Any]:
    return {"id": record_id, "ok": True, "value": value, "attempts": 1, **extra}


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    values = [
        {"category": "bug", "urgent": True, "amount": 3.5, "tags": ["a", "b"], "code": "007"},
        {"category": "billing", "urgent": False, "amount": 10, "tags": [], "code": "1"},
        {"category": "bug", "urgent": False, "amount": 2, "tags": ["c"], "code": "x"},
    ]
    return write_jsonl(tmp_path / "out.jsonl", [ok(i + 1, v) for i, v in enumerate(values)])


def test_csv_cells_are_read_by_each_fields_kind(outputs: Path, tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text(
        "id,category,urgent,amount,tags,code,text\n"
        '1,bug,true,3.5,"[""b"", ""a""]",007,ignored\n'
        "2,billing,FALSE,10.0,[],1,\n"
        "3,billing,,,,x,\n",
        encoding="utf-8",
    )
    report = evaluate(outputs, gold, SCHEMA)
    assert [f.path for f in report.fields] == [
        "$.category",
        "$.urgent",
        "$.amount",
        "$.tags",
        "$.code",
    ]
    assert report.field("category").accuracy == pytest.approx(2 / 3)
    # Empty cells are not scored: row 3 has no gold for urgent, amount or tags.
    assert (report.field("urgent").records, report.field("urgent").accuracy) == (2, 1.0)
    assert (report.field("amount").records, report.field("amount").accuracy) == (2, 1.0)
    assert report.field("tags").accuracy == 1.0
    # A string field keeps CSV text as it is: "007" is not the number 7.
    assert report.field("code").accuracy == 1.0
    assert report.records[0].gold["urgent"] is True


def test_jsonl_gold_with_a_value_object_and_ids_as_text(outputs: Path, tmp_path: Path) -> None:
    gold = write_jsonl(
        tmp_path / "gold.jsonl",
        [
            {"id": "1", "value": {"category": "bug"}},
            {"id": 2, "value": {"category": "bug"}},
            {"id": "9", "value": {"category": "bug"}},
        ],
    )
    report = evaluate(outputs, gold, SCHEMA)
    assert [f.path for f in report.fields] == ["$.category"]
    assert report.field("category").accuracy == 0.5
    c = report.coverage
    assert (c.records, c.gold_without_output, c.output_without_gold) == (2, 1, 1)
    assert c.missing_ids == ("9",)


def test_a_scalar_root_reads_the_value_column(tmp_path: Path) -> None:
    outputs = write_jsonl(
        tmp_path / "out.jsonl", [ok("a", "bug"), ok("b", "billing"), ok("a", "billing")]
    )
    gold = tmp_path / "gold.csv"
    gold.write_text("id,value\na,bug\nb,bug\n", encoding="utf-8")
    report = evaluate(outputs, gold, {"enum": ["bug", "billing"]})
    assert [f.path for f in report.fields] == ["$"]
    assert report.field("$").accuracy == 0.5
    assert report.coverage.duplicate_ids == 1
    gold.write_text("id,value\na,bug\nb,bug\nb,billing\n", encoding="utf-8")
    again = evaluate(outputs, gold, {"enum": ["bug", "billing"]})
    assert (again.coverage.duplicate_gold_ids, again.field("$").accuracy) == (1, 0.5)
    wrong_shape = tmp_path / "fields.csv"
    wrong_shape.write_text("id,label\na,bug\n", encoding="utf-8")
    with pytest.raises(InputError, match="'value' column"):
        evaluate(outputs, wrong_shape)


def test_gold_field_reads_the_labeling_input_by_line_for_records_without_ids(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"text": "printer on fire", "label": "bug"}\n\n{"text": "refund", "label": "billing"}\n',
        encoding="utf-8",
    )
    # `extract label` writes records without an id as id null with their line: 1 and 3 (the
    # blank line counts); they meet their gold by line.
    outputs = write_jsonl(
        tmp_path / "out.jsonl", [ok(None, "bug", line=1), ok(None, "bug", line=3)]
    )
    report = evaluate(outputs, source, gold_field="label")
    assert report.field("$").accuracy == 0.5
    with pytest.raises(InputError, match=r"no record of .* has a 'topic' field"):
        evaluate(outputs, source, gold_field="topic")


def test_a_csv_input_gives_gold_by_row_number(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('text,label\nhello,"{""category"": ""bug""}"\nbye,\n', encoding="utf-8")
    rows = [ok(None, {"category": "bug"}, line=1), ok(None, {}, line=2)]
    outputs = write_jsonl(tmp_path / "out.jsonl", rows)
    report = evaluate(outputs, source, gold_field="label")
    assert (report.field("category").records, report.field("category").accuracy) == (1, 1.0)


def test_a_review_file_is_gold_where_corrected_is_filled(outputs: Path, tmp_path: Path) -> None:
    review = tmp_path / "review.csv"
    review.write_text(
        "id,line,value,confidence,reason,corrected\n"
        '1,1,"{""category"": ""bug""}",0.4,low,"{""category"": ""billing""}"\n'
        '2,2,"{""category"": ""billing""}",0.3,low,\n',
        encoding="utf-8",
    )
    report = evaluate(outputs, review, SCHEMA)
    assert report.coverage.records == 1
    assert report.field("category").accuracy == 0.0


def test_a_mapping_of_ids_to_values_is_gold(outputs: Path) -> None:
    report = evaluate(outputs, {1: {"urgent": True}, "2": {"urgent": True}})
    assert report.field("urgent").accuracy == 0.5


def test_missing_files_are_input_errors(outputs: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no output file at"):
        evaluate(tmp_path / "nope.jsonl", {1: "x"})
    with pytest.raises(InputError, match="no gold file at"):
        evaluate(outputs, tmp_path / "nope.csv")


def test_gold_without_ids_says_how_to_fix_it(outputs: Path, tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text("ticket,category\n1,bug\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no 'id' column.*--id-field"):
        evaluate(outputs, gold)
    rows = write_jsonl(tmp_path / "gold.jsonl", [{"category": "bug"}])
    with pytest.raises(InputError, match="row 1 has no 'id' field"):
        evaluate(outputs, rows)
    assert evaluate(outputs, gold, id_field="ticket").coverage.records == 1


def test_no_common_id_is_an_input_error(outputs: Path) -> None:
    with pytest.raises(InputError, match="no output record has a gold id"):
        evaluate(outputs, {"x1": {"category": "bug"}})


def test_gold_fields_that_match_nothing_are_an_input_error(outputs: Path) -> None:
    with pytest.raises(InputError, match=r"no gold field matches.*gold has: colour"):
        evaluate(outputs, {1: {"colour": "red"}}, SCHEMA)


def test_bad_lines_and_values_are_input_errors(tmp_path: Path) -> None:
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"id": 1, "ok": true, "value": 1}\n{"id": 2, "ok', encoding="utf-8")
    with pytest.raises(InputError, match=r"line 2 is not JSON.*rerun it"):
        evaluate(torn, {1: 1})
    foreign = write_jsonl(tmp_path / "foreign.jsonl", [{"text": "not an output"}])
    with pytest.raises(InputError, match="not an `extract label` record"):
        evaluate(foreign, {1: 1})
    odd = write_jsonl(tmp_path / "odd.jsonl", [ok(1, "a", confidence={"$": 1.5})])
    with pytest.raises(InputError, match=r"confidence \$ is 1.5, not in 0..1"):
        evaluate(odd, {1: "a"})
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"id": 1, "ok": true, "value": "caf\xe9"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        evaluate(latin, {1: "a"})


def test_a_negative_tolerance_is_a_config_error(outputs: Path) -> None:
    with pytest.raises(ConfigError, match="tolerance"):
        evaluate(outputs, {1: {"amount": 1}}, tolerance=-1)
