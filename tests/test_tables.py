"""Parquet input and CSV/Parquet export of a finished run (pyarrow: the parquet extra)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from extract import ConfigError
from extract.batch.tables import export, read_parquet
from extract.cli import main

pa = pytest.importorskip("pyarrow", reason="Parquet needs the parquet extra (pyarrow)")
pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs the parquet extra (pyarrow)")

RECORDS = [
    {
        "id": "a",
        "line": 1,
        "ok": True,
        "value": {"category": "billing", "score": 3, "tags": ["x"], "urgent": True},
        "attempts": 1,
        "usage": {"prompt_eval_count": 100, "eval_count": 20, "total_duration": 1_500_000_000},
        "cached": False,
        "confidence": {"$.category": 0.9, "$.urgent": 0.6},
    },
    {
        "id": 2,
        "line": 2,
        "ok": True,
        "value": {"category": "shipping", "score": 4.5, "tags": [], "urgent": False},
        "attempts": 2,
        "usage": {},
        "cached": True,
    },
    {
        "id": None,
        "line": 3,
        "ok": False,
        "error": {"type": "InputError", "message": "line 3: not valid JSON"},
        "attempts": 0,
        "usage": {},
        "cached": False,
    },
]


@pytest.fixture
def output(tmp_path: Path) -> Path:
    path = tmp_path / "labels.jsonl"
    lines = [json.dumps(r) for r in RECORDS]
    path.write_text("\n".join(lines) + '\n{"id": "torn', encoding="utf-8")
    return path


def test_export_to_parquet_keeps_types_and_one_row_per_record(output: Path, tmp_path: Path) -> None:
    target = tmp_path / "labels.parquet"
    assert export(output, target) == 3
    table = pq.read_table(target)
    assert table.schema.field("category").type == pa.string()
    assert table.schema.field("score").type == pa.float64()
    assert table.schema.field("urgent").type == pa.bool_()
    assert table.schema.field("tags").type == pa.string()  # a list: JSON text
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == ["a", "2", None]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[0]["tags"] == '["x"]'
    assert rows[0]["confidence"] == 0.6
    assert rows[0]["server_seconds"] == pytest.approx(1.5)
    assert rows[2]["error_type"] == "InputError"
    assert rows[2]["category"] is None


def test_export_to_csv(output: Path, tmp_path: Path) -> None:
    target = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["export", str(output), "-o", str(target)])
    assert result.exit_code == 0, result.output
    with open(target, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["ok"], r["category"]) for r in rows] == [
        ("a", "True", "billing"),
        ("2", "True", "shipping"),
        ("", "False", ""),
    ]


def test_a_value_field_named_like_a_fixed_column_is_prefixed(tmp_path: Path) -> None:
    output = tmp_path / "o.jsonl"
    output.write_text(json.dumps({"id": 1, "ok": True, "value": {"line": "x"}}) + "\n")
    export(output, tmp_path / "o.parquet")
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column("value.line").to_pylist() == ["x"]


def test_export_refuses_other_suffixes_and_missing_files(output: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"csv or \.parquet"):
        export(output, tmp_path / "x.xlsx")
    with pytest.raises(ConfigError, match="no such output"):
        export(tmp_path / "missing.jsonl", tmp_path / "x.csv")


def test_parquet_input_rows_become_documents(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"id": ["a", "b"], "text": ["hello", None], "lang": ["en", "fr"]}), path
    )
    docs = list(read_parquet(path, id_field="id", text_field="text"))
    assert [(d.id, d.text, d.fields) for d in docs[:1]] == [("a", "hello", {"lang": "en"})]
    assert docs[1].error is not None


def test_parquet_input_without_the_text_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(ConfigError, match="--text-field"):
        read_parquet(path, id_field="id", text_field="text")
