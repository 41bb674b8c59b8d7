"""``extract label``: files in, one output line per input line, resumable, exit codes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Responder, Scripted

from extract import Schema
from extract.batch import Record
from extract.batch.progress import Progress, Tally
from extract.cli import main
from extract.cli.label import EXIT_SOME_FAILED
from extract.server import Reply

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "n.json"
    path.write_text(json.dumps(SCHEMA))
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def label(server: Scripted, schema: Path, *args: str, stdin: str | None = None) -> Any:
    base = ["label", "--schema", str(schema), "-m", "tiny", "--host", server.url]
    return CliRunner().invoke(main, [*base, *args], input=stdin)


def output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_labels_a_jsonl_file(server: Scripted, schema_file: Path, tmp_path: Path) -> None:
    rows = [{"id": f"t{n}", "text": f"<<{n}>>", "extra": n} for n in range(5)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = label(server, schema_file, str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = output(out)
    assert [(r["id"], r["line"]) for r in lines] == [(f"t{n}", n + 1) for n in range(5)]
    assert [r["value"] for r in lines] == [{"n": n} for n in range(5)]
    assert all(r["ok"] and r["attempts"] == 1 and r["usage"]["eval_count"] for r in lines)
    assert "records 5: 5 ok, 0 failed, 0 cached" in result.stderr
    assert "docs/s" in result.stderr


def test_bad_lines_become_error_records_and_exit_1(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": "a", "text": "<<1>>"}\n'
        b'{"id": "b", "body": "no text field"}\n'
        b"\xff\xfe not utf-8\n"
        b'{"id": "d", "text": \n'
        b'"<<5>>"\n'
        b'{"id": "f", "text": "<<6:bad>>"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = label(server, schema_file, str(source), "-o", str(out), "--quiet")
    assert result.exit_code == EXIT_SOME_FAILED
    assert result.stderr == ""
    lines = output(out)
    # Lines that are not records have no id ("line" traces them); so has a bare string.
    assert [r["id"] for r in lines] == ["a", "b", None, None, None, "f"]
    assert [r["line"] for r in lines] == [1, 2, 3, 4, 5, 6]
    assert [r["ok"] for r in lines] == [True, False, False, False, True, False]
    kinds = [r["error"]["type"] for r in lines if not r["ok"]]
    assert kinds == ["InputError", "InputError", "InputError", "ExtractionFailed"]
    assert "not UTF-8" in lines[2]["error"]["message"]


def test_csv_input(server: Scripted, schema_file: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text('ticket,body\nx1,"<<1>>, with a comma"\n,<<2>>\n')
    out = tmp_path / "out.jsonl"
    result = label(
        server, schema_file, str(source), "-o", str(out), "--id-field", "ticket",
        "--text-field", "body",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["line"], r["value"]) for r in output(out)] == [
        ("x1", 1, {"n": 1}),
        (None, 2, {"n": 2}),
    ]


def test_csv_without_the_text_column_is_a_usage_error(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,body\n1,hello\n")
    result = label(server, schema_file, str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert "no 'text' column" in result.stderr
    assert server.generates() == []


def test_stdin_input(server: Scripted, schema_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = label(server, schema_file, "-", "-o", str(out), stdin='"<<7>>"\n"<<8>>"\n')
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["line"], r["value"]) for r in output(out)] == [
        (None, 1, {"n": 7}),
        (None, 2, {"n": 8}),
    ]


def test_empty_input_writes_an_empty_output(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("")
    out = tmp_path / "out.jsonl"
    result = label(server, schema_file, str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text() == ""
    assert f"warning: {source} holds no records" in result.stderr
    assert "records 0" in result.stderr  # the summary still comes
    blank = write_jsonl(tmp_path / "blank.jsonl", [])
    blank.write_text("\n  \n")
    result = label(server, schema_file, str(blank), "-o", str(tmp_path / "o2.jsonl"))
    assert result.exit_code == 0
    assert "holds no records" in result.stderr
    result = label(server, schema_file, "-", "-o", str(tmp_path / "o3.jsonl"), stdin="")
    assert result.exit_code == 0
    assert "warning: stdin holds no records" in result.stderr


def test_input_with_records_does_not_warn(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>"])
    out = tmp_path / "out.jsonl"
    assert label(server, schema_file, str(source), "-o", str(out)).exit_code == 0
    again = label(server, schema_file, str(source), "-o", str(out))  # nothing left to do
    assert again.exit_code == 0
    assert "warning" not in again.stderr


def test_unknown_model_exits_3_before_any_work(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>"])
    out = tmp_path / "out.jsonl"
    args = ["label", str(source), "-o", str(out), "-s", str(schema_file), "--host", server.url]
    result = CliRunner().invoke(main, [*args, "-m", "missing"])
    assert result.exit_code == 3
    assert "ModelNotFound" in result.stderr
    assert not out.exists()  # a run that failed before its first record leaves no file


def test_unreachable_host_exits_3_saying_how_to_start_a_server(
    schema_file: Path, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>"])
    out = tmp_path / "new" / "dir" / "o.jsonl"
    args = ["label", str(source), "-o", str(out), "-s", str(schema_file)]
    result = CliRunner().invoke(main, [*args, "-m", "tiny", "--host", "http://127.0.0.1:9"])
    assert result.exit_code == 3
    assert "ConnectError" in result.stderr
    assert "`ollama serve`" in result.stderr
    assert "`extract serve`" in result.stderr
    assert not (tmp_path / "new").exists()  # nor the folders made for it


def test_a_bad_schema_leaves_no_output_file(server: Scripted, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "objekt"}')
    out = tmp_path / "out.jsonl"
    result = label(server, bad, str(source), "-o", str(out))
    assert result.exit_code == 2
    assert "SchemaError" in result.stderr
    assert not out.exists()


def test_a_failed_start_leaves_an_existing_output_untouched(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>", "<<2>>"])
    empty, started = tmp_path / "empty.jsonl", tmp_path / "started.jsonl"
    empty.write_text("")
    assert label(server, schema_file, str(source), "-o", str(started)).exit_code == 0
    before = started.read_bytes()
    for out in (empty, started):
        args = ["label", str(source), "-o", str(out), "-s", str(schema_file)]
        result = CliRunner().invoke(main, [*args, "-m", "missing", "--host", server.url])
        assert result.exit_code == 3
    assert empty.read_text() == ""
    assert started.read_bytes() == before


@pytest.mark.parametrize(
    "extra",
    [
        ["--concurrency", "0"],  # out of range
        ["--format", "yaml"],  # not a choice
        ["-o", "IN"],  # the input itself
    ],
)
def test_usage_errors_exit_2(
    server: Scripted, schema_file: Path, tmp_path: Path, extra: list[str]
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>"])
    extra = [str(source) if e == "IN" else e for e in extra]
    result = label(server, schema_file, str(source), "-o", str(tmp_path / "out.jsonl"), *extra)
    assert result.exit_code == 2


def test_no_model_is_a_usage_error(schema_file: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>"])
    args = ["label", str(source), "-o", str(tmp_path / "out.jsonl"), "-s", str(schema_file)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "EXTRACT_MODEL" in result.stderr


def test_rerun_skips_done_ids_and_repairs_a_torn_line(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"<<{n}>>"} for n in range(10)])
    out = tmp_path / "out.jsonl"
    assert label(server, schema_file, str(source), "-o", str(out), "--no-cache").exit_code == 0
    kept = out.read_text().splitlines(keepends=True)[:4]
    out.write_text("".join(kept) + '{"id": 4, "ok": tr')  # killed while writing record 4
    before = len(server.generates())
    result = label(server, schema_file, str(source), "-o", str(out), "--no-cache")
    assert result.exit_code == 0, result.output
    assert "resuming: 4 records" in result.stderr
    assert [r["id"] for r in output(out)] == list(range(10))
    assert len(server.generates()) - before == 6
    again = label(server, schema_file, str(source), "-o", str(out), "--no-cache")
    assert again.exit_code == 0
    assert len(server.generates()) - before == 6  # a finished batch: nothing to do
    assert len(output(out)) == 10


def test_rerun_of_a_batch_with_failures_still_exits_1(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>", "<<2:bad>>"])
    out = tmp_path / "out.jsonl"
    assert label(server, schema_file, str(source), "-o", str(out)).exit_code == EXIT_SOME_FAILED
    again = label(server, schema_file, str(source), "-o", str(out))
    assert again.exit_code == EXIT_SOME_FAILED
    assert "already in the output: 2 records (1 failed; --retry-failed" in again.stderr


def test_retry_failed_labels_the_failures_again_and_keeps_one_record_per_input(
    scripted: Callable[..., Scripted], schema_file: Path, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ["<<1>>", "<<2:bad>>", "<<3>>"])
    out = tmp_path / "out.jsonl"
    outage = scripted(responder=Responder())
    assert label(outage, schema_file, str(source), "-o", str(out)).exit_code == EXIT_SOME_FAILED
    healed = scripted(responder=lambda _body: Reply.text('{"n": 2}'))
    result = label(healed, schema_file, str(source), "-o", str(out), "--retry-failed")
    assert result.exit_code == 0, result.output
    assert len(healed.generates()) == 1
    records = sorted(output(out), key=lambda r: r["line"])
    assert [(r["line"], r["ok"]) for r in records] == [(1, True), (2, True), (3, True)]
    assert not list(tmp_path.glob(".out.jsonl*"))  # no temporary file left behind


def test_cache_makes_a_second_run_free(server: Scripted, schema_file: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [f"<<{n}>>" for n in range(6)])
    cache = tmp_path / "c.sqlite"
    first = tmp_path / "first.jsonl"
    assert (
        label(server, schema_file, str(source), "-o", str(first), "--cache", str(cache)).exit_code
        == 0
    )
    sent = len(server.generates())
    second = tmp_path / "second.jsonl"
    result = label(server, schema_file, str(source), "-o", str(second), "--cache", str(cache))
    assert result.exit_code == 0
    assert len(server.generates()) == sent
    assert [r["value"] for r in output(second)] == [r["value"] for r in output(first)]
    assert all(r["cached"] for r in output(second))
    assert "6 cached" in result.stderr
    third = tmp_path / "third.jsonl"
    label(server, schema_file, str(source), "-o", str(third), "--cache", str(cache), "--no-cache")
    assert len(server.generates()) == sent + 6


def test_progress_bar_shows_rate_and_counts() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, show=True, total=2, tally=Tally())
    progress.update(Record(1, True, {"n": 1}))
    progress.update(Record(2, False))
    progress.close()
    assert "2/2" in stream.getvalue()
    assert "ok=1 failed=1" in stream.getvalue()


def subprocess_label(server: Scripted, source: Path, out: Path, schema: Path) -> list[str]:
    return [
        sys.executable, "-m", "extract", "label", str(source), "-o", str(out),
        "-s", str(schema), "-m", "tiny", "--host", server.url, "--concurrency", "3", "--quiet",
    ]  # fmt: skip


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.parametrize("kill_after", [0, 7, 30])
def test_sigkill_then_rerun_gives_exactly_one_record_per_id(
    scripted: Callable[..., Scripted], schema_file: Path, tmp_path: Path, kill_after: int
) -> None:
    server = scripted(slots=3, latency=0.03, responder=Responder())
    ids = [f"r{n}" for n in range(40)]
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"id": i, "text": f"<<{n}>>"} for n, i in enumerate(ids)]
    )
    out = tmp_path / "out.jsonl"
    command = subprocess_label(server, source, out, schema_file)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    victim = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while line_count(out) < kill_after and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    written = line_count(out)
    assert written < len(ids)  # killed mid-run, not after it
    rerun = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    records = output(out)
    assert sorted(r["id"] for r in records) == sorted(ids)
    assert all(r["ok"] for r in records)
    # Nothing written before the kill was asked for again.
    assert len(server.generates()) <= 40 + (40 - written)


def test_sigterm_ends_like_ctrl_c_with_the_summary_and_how_to_resume(
    scripted: Callable[..., Scripted], schema_file: Path, tmp_path: Path
) -> None:
    server = scripted(slots=1, latency=0.05, responder=Responder())
    ids = [f"r{n}" for n in range(40)]
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"id": i, "text": f"<<{n}>>"} for n, i in enumerate(ids)]
    )
    out = tmp_path / "out.jsonl"
    command = subprocess_label(server, source, out, schema_file)
    command.remove("--quiet")
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    victim = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while line_count(out) < 3 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=60)
    assert victim.returncode == 143, err
    assert "terminated: rerun the same command to label the rest" in err
    assert "wall time" in err  # the summary
    assert "Traceback" not in err
    written = line_count(out)
    assert 3 <= written < len(ids)
    rerun = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert f"resuming: {written} records" in rerun.stderr.decode()
    assert sorted(r["id"] for r in output(out)) == sorted(ids)


@pytest.mark.real_model
def test_readme_main_job_on_the_bundled_sample(tmp_path: Path) -> None:
    sample = REPO / "examples" / "tickets.jsonl"
    out = tmp_path / "labels.jsonl"
    # The README's command. Whether a 135M model labels every ticket depends on its numerics
    # (llama.cpp build, CPU); the README's claim is measured in bench/. Asserted here is what
    # the library guarantees: one record per line, in order; every ok value valid, its quote
    # found in its ticket, its choices scored; every failure typed; the exit code saying which.
    command = ["label", str(sample), "-o", str(out), "--schema", "ticket", "--local"]
    result = CliRunner().invoke(main, [*command, "--option", "seed=1"])
    documents = [json.loads(line) for line in sample.read_text().splitlines()]
    records = output(out)
    assert [r["id"] for r in records] == [d["id"] for d in documents]
    schema = Schema.load("ticket")
    for record, document in zip(records, documents, strict=True):
        if record["ok"]:
            schema.validate(record["value"])
            assert schema.ground(record["value"], document["text"])[1] == []
            assert set(record["confidence"]) == {"$.category", "$.priority"}
            assert all(0 < c <= 1 for c in record["confidence"].values())
        else:
            assert record["error"]["type"] == "ExtractionFailed"
            assert record["error"]["last_error"]["type"]
    failed = sum(not r["ok"] for r in records)
    assert result.exit_code == (EXIT_SOME_FAILED if failed else 0), result.output


def test_a_reply_the_server_cuts_is_retried(
    scripted: Callable[..., Scripted], schema_file: Path, tmp_path: Path
) -> None:
    server = scripted(responder=Responder())
    server.engine.script(Reply.cut(['{"n"']))
    source = write_jsonl(tmp_path / "in.jsonl", ["<<3>>"])
    out = tmp_path / "out.jsonl"
    result = label(server, schema_file, str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    [record] = output(out)
    assert record["value"] == {"n": 3}
    assert record["attempts"] == 2
