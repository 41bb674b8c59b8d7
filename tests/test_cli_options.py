"""The call-option flags of `extract label` and `extract one`, and Parquet in and out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Scripted

from extract.cli import main
from extract.server import Reply

N = '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}'


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def n_server(scripted: Callable[..., Scripted]) -> Scripted:
    return scripted(responder=lambda body: Reply.text('{"n": 1}'))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n', encoding="utf-8")
    return path


def test_label_sends_the_call_options(n_server: Scripted, source: Path, tmp_path: Path) -> None:
    result = run(
        "label", str(source), "-o", str(tmp_path / "out.jsonl"), "-s", N, "--host", n_server.url,
        "-m", "tiny", "--instructions", "Count the things.", "--system", "Be exact.",
        "--option", "temperature=0", "--option", "stop=[\"}\\n\"]", "--max-attempts", "1",
        "--format", "json", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = n_server.generates()[0]
    assert body["prompt"].startswith("Count the things.\n")
    assert body["system"] == "Be exact."
    assert body["options"]["temperature"] == 0
    assert body["options"]["stop"] == ["}\n"]
    assert body["format"] == "json"


def test_a_bad_option_value_is_a_usage_error(n_server: Scripted, tmp_path: Path) -> None:
    result = run("one", "-s", N, "--host", n_server.url, "-m", "tiny",
                 "--option", "temperature=hot", "text")  # fmt: skip
    assert result.exit_code == 2
    assert "temperature" in result.output
    result = run("one", "-s", N, "--host", n_server.url, "-m", "tiny", "--option", "nokey", "x")
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


def test_show_prompt_prints_the_request_and_labels_nothing(
    n_server: Scripted, source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = run("label", str(source), "-o", str(out), "-s", N, "--host", n_server.url,
                 "-m", "tiny", "--show-prompt", "--option", "seed=7")  # fmt: skip
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)
    assert request["model"] == "tiny"
    assert "<document>\none\n</document>" in request["prompt"]
    assert request["options"]["seed"] == 7
    assert request["format"]["required"] == ["n"]
    assert request["truncate"] is False
    assert n_server.generates() == []
    assert not out.exists()


def test_one_show_prompt(n_server: Scripted) -> None:
    result = run("one", "-s", N, "--host", n_server.url, "-m", "tiny", "--show-prompt", "hello")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["prompt"].endswith("<document>\nhello\n</document>")
    assert n_server.generates() == []


def test_one_chunks_a_long_document(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=300, responder=lambda body: Reply.text('{"n": 2}'))
    text = " ".join(["word"] * 900)
    result = run("one", "-s", N, "--host", server.url, "-m", "tiny", "--chunk", "auto", text)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"n": 2}
    assert len(server.generates()) > 1
    refused = run("one", "-s", N, "--host", server.url, "-m", "tiny", text)
    assert refused.exit_code == 2
    assert "DocumentTooLong" in refused.output
    bad = run("one", "-s", N, "--host", server.url, "-m", "tiny", "--chunk", "big", text)
    assert bad.exit_code == 2


def test_label_reads_parquet_and_exports_parquet(n_server: Scripted, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs the parquet extra (pyarrow)")
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs the parquet extra")
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2], "text": ["one", "two"]}), source)
    table = tmp_path / "labels.parquet"
    out = tmp_path / "out.jsonl"
    result = run("label", str(source), "-o", str(out), "-s", N, "--host", n_server.url,
                 "-m", "tiny", "--export", str(table), "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = pq.read_table(table).to_pylist()
    assert [(r["id"], r["line"], r["n"]) for r in rows] == [("1", 1, 1), ("2", 2, 1)]
    again = run("label", str(source), "-o", str(out), "-s", N, "--host", n_server.url,
                "-m", "tiny", "-q")  # fmt: skip
    assert again.exit_code == 0
    assert len(n_server.generates()) == 2  # the rerun found both lines done


SENTIMENT = '{"type": "object", "properties": {"s": {"enum": ["pos", "neg"]}}, "required": ["s"]}'


def _choice(pos: float, neg: float) -> Reply:
    chunks = ['{"s": "', "pos", '"}']
    top = [{"token": "pos", "logprob": pos}, {"token": "neg", "logprob": neg}]
    value = {"token": "pos", "logprob": pos, "top_logprobs": top}
    around = [[{"token": chunk, "logprob": -0.01}] for chunk in (chunks[0], chunks[2])]
    return Reply.text("".join(chunks), chunks=chunks, logprobs=[around[0], [value], around[1]])


def test_min_confidence_marks_records_for_review(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = scripted()
    server.engine.script(_choice(-0.1, -3.0), _choice(-0.6, -0.8))
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run("label", str(source), "-o", str(out), "-s", SENTIMENT, "--host", server.url,
                 "-m", "tiny", "--no-calibrate", "--min-confidence", "0.7")  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("review", False) for r in records] == [False, True]
    assert "marked for review (under --min-confidence): 1" in result.output
    assert len(server.generates()) == 2  # --no-calibrate: no content-free request


def test_samples_and_examples_flags(scripted: Callable[..., Scripted], tmp_path: Path) -> None:
    server = scripted()
    server.engine.script(*(Reply.text(f'{{"s": "{v}"}}') for v in ("neg", "pos", "neg")))
    examples = tmp_path / "examples.jsonl"
    examples.write_text('{"text": "lovely", "value": {"s": "pos"}}\n', encoding="utf-8")
    result = run("one", "-s", SENTIMENT, "--host", server.url, "-m", "tiny", "--samples", "3",
                 "--examples", str(examples), "awful")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"s": "neg"}
    prompts = [b["prompt"] for b in server.generates()]
    assert len(prompts) == 3
    assert all('lovely\n</document>\n{"s":"pos"}' in p for p in prompts)
    examples.write_text('{"text": "lovely"}\n', encoding="utf-8")
    bad = run("one", "-s", SENTIMENT, "--host", server.url, "-m", "tiny",
              "--examples", str(examples), "awful")  # fmt: skip
    assert bad.exit_code == 2
    assert "line 1" in bad.output
