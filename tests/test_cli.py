"""The thin CLI: `one`, `schemas`, `doctor`, exit codes from the error classes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import fast_retry

from extract import ConnectError, ExtractionFailed, Extractor, Schema
from extract.cli import main
from extract.server import Reply, ScriptedEngine, serve


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_one_prints_the_validated_json(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text('{"sentiment": "positive", "evidence": "love"}'))
    code, out, _ = run("one", "--schema", "sentiment", "-m", "tiny", "--host", url, "I love it!")
    assert code == 0
    assert json.loads(out)["sentiment"] == "positive"


def test_one_reads_stdin_and_reports_attempts(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text("nope"), Reply.text('{"sentiment": "negative", "evidence": "Awful"}'))
    code, _, err = run(
        "one", "-s", "sentiment", "-m", "tiny", "--host", url, "-v", "-", stdin="Awful."
    )
    assert code == 0
    assert "attempt 1: InvalidJSON" in err
    assert "attempt 2: ok" in err
    prompt = next(r.body["prompt"] for r in engine.requests if r.path == "/api/generate")
    assert "Awful." in prompt


def test_unknown_model_exits_3_with_the_pull_command(url: str) -> None:
    code, _, err = run("one", "-s", "sentiment", "-m", "llama3.2", "--host", url, "hi")
    assert code == 3
    assert "ollama pull llama3.2" in err


def test_bad_schema_file_exits_2(tmp_path: Path, url: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "objekt"}')
    code, _, err = run("one", "-s", str(bad), "-m", "tiny", "--host", url, "hi")
    assert code == 2
    assert "SchemaError" in err


def test_schemas_list_show_and_check(tmp_path: Path) -> None:
    code, out, _ = run("schemas")
    assert code == 0
    assert "sentiment" in out
    assert "invoice" in out
    code, out, _ = run("schemas", "show", "sentiment")
    assert json.loads(out)["type"] == "object"
    loose = tmp_path / "loose.json"
    loose.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                },
            }
        )
    )
    code, out, _ = run("schemas", "check", str(loose))
    assert code == 0
    assert "minimum" in out
    assert "uniqueItems" in out


def test_an_unreachable_host_says_how_to_start_a_server() -> None:
    with serve(ScriptedEngine()) as srv:
        dead = srv.url
    with (
        Extractor("tiny", host=dead, retry=fast_retry(1)) as ex,
        pytest.raises(ConnectError) as caught,
    ):
        ex.extract("hi", schema="sentiment")
    assert "`ollama serve`" in caught.value.message
    assert "`extract serve`" in caught.value.message


def test_python_dash_m_extract_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "extract", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("extract, version ")


def test_one_stream_shows_partials(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text("", chunks=['{"sentiment"', ': "posi', 'tive", "evidence": "ok"}']))
    code, out, err = run("one", "-s", "sentiment", "-m", "tiny", "--host", url, "--stream", "ok")
    assert code == 0
    assert json.loads(out)["sentiment"] == "positive"
    assert '{"sentiment": "posi"}' in err


@pytest.mark.real_model
def test_one_local_runs_the_real_model() -> None:
    text = "I love this phone, the battery lasts two days."
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "extract",
            "one",
            "--local",
            "-s",
            "sentiment",
            "-v",
            text,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # The model may fail this text (a 135M model's numerics differ between llama.cpp builds);
    # what is guaranteed is a valid, grounded value and exit 0, or a typed failure and exit 4.
    if done.returncode == 0:
        value = json.loads(done.stdout)
        schema = Schema.load("sentiment")
        schema.validate(value)
        assert schema.ground(value, text)[1] == []  # the evidence is found in the text
        assert "attempt 1:" in done.stderr
        assert "tokens/s" in done.stderr
    else:
        assert done.returncode == ExtractionFailed.exit_code, done.stderr
        assert "error: ExtractionFailed" in done.stderr
