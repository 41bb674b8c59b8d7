"""Property: whatever runs, SIGKILLs and --retry-failed befall ``extract label`` on an input
with malformed lines and duplicate ids, every input line ends with exactly one record that
traces to it (by ``line``, with the line's own id), and the exit code says whether any failed.

Two drivers of the same steps: real SIGKILLs of the command run as a subprocess against a
scripted server (few examples: each run starts a Python), and in-process runs whose kill is
simulated by cutting what the run appended at a random byte (many more sequences, torn lines
included). A killed run with ordered output leaves a prefix of what it would have written,
so the cut is a faithful stand-in.
"""

from __future__ import annotations

import dataclasses
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
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from extract.batch.ids import id_key
from extract.batch.records import OutputFile
from extract.cli import main
from extract.server import ScriptedEngine, serve

REPO = Path(__file__).resolve().parent.parent
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
# Few ids, so that duplicates are common; 2 and "2" are one id; None: no id field.
IDS = st.sampled_from([None, "a", "b", 2, "2", 3])
KINDS = ("ok", "bad", "junk", "array", "notext", "string", "blank")
RUN_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Line:
    """One input line: what it is (one of KINDS) and the id it gives, if it gives one."""

    kind: str
    id: Any

    def render(self, number: int) -> str:
        given = {} if self.id is None else {"id": self.id}
        return {
            "ok": json.dumps({**given, "text": f"<<{number}>>"}),
            "bad": json.dumps({**given, "text": f"<<{number}:bad>>"}),
            "junk": "not json {",
            "array": "[1, 2]",
            "notext": json.dumps({**given, "body": "no text field"}),
            "string": json.dumps(f"<<{number}>>"),
            "blank": "  ",
        }[self.kind]

    @property
    def record_id(self) -> Any:
        """The id this line's record must carry."""
        return self.id if self.kind in ("ok", "bad", "notext") else None


@dataclasses.dataclass(frozen=True)
class Step:
    """One run of the command."""

    kill_after: int | None  # SIGKILL once OUTPUT has this many new lines; None: run to the end
    retry_failed: bool
    allow_duplicates: bool

    def args(self) -> list[str]:
        flags = {
            "--retry-failed": self.retry_failed,
            "--allow-duplicate-ids": self.allow_duplicates,
        }
        return [flag for flag, on in flags.items() if on]


LINES = st.lists(st.builds(Line, st.sampled_from(KINDS), IDS), min_size=1, max_size=10)
# Allowing duplicates now and then, so that most sequences never do.
ALLOW = st.sampled_from([False, False, False, True])
STEPS = st.lists(st.builds(Step, st.none() | st.integers(0, 10), st.booleans(), ALLOW), max_size=3)
FINAL = st.builds(Step, st.none(), st.booleans(), ALLOW)


# The input of the report (a malformed line 2, a record with id 2, id "a" twice), then a line
# whose text never gives valid JSON, a line without an id, and a blank line.
REPORTED = [
    Line("ok", "a"), Line("junk", None), Line("ok", 2), Line("ok", "a"), Line("bad", "b"),
    Line("string", None), Line("blank", None), Line("ok", 3),
]  # fmt: skip


def write_input(path: Path, lines: list[Line]) -> None:
    path.write_text("".join(line.render(n) + "\n" for n, line in enumerate(lines, 1)))


def whole_records(out: Path) -> list[dict[str, Any]]:
    """The complete lines of OUTPUT (a killed run may leave a torn last one)."""
    data = out.read_bytes() if out.exists() else b""
    return [json.loads(raw) for raw in data.split(b"\n")[:-1]]


def check_traceable(lines: list[Line], out: Path) -> dict[int, dict[str, Any]]:
    """At any moment: at most one record per line, each for a non-blank line, with its id."""
    by_line: dict[int, dict[str, Any]] = {}
    for record in whole_records(out):
        number = record["line"]
        assert number not in by_line, f"line {number} has two records"
        assert 1 <= number <= len(lines)
        line = lines[number - 1]
        assert line.kind != "blank"
        assert record["id"] == line.record_id
        by_line[number] = record
    return by_line


def check_final(lines: list[Line], out: Path, exit_code: int, runs: list[Step]) -> None:
    """After a run to the end: one record per non-blank line, each the outcome it must be.

    ``runs``: every run so far, the last one to the end. A later line with an earlier line's
    id is a DuplicateId error unless a run allowed duplicates; a run that allowed them and
    retried the failures labelled them all.
    """
    allowed = any(run.allow_duplicates for run in runs)
    relabelled = runs[-1].allow_duplicates and runs[-1].retry_failed
    by_line = check_traceable(lines, out)
    assert sorted(by_line) == [n for n, line in enumerate(lines, 1) if line.kind != "blank"]
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if line.record_id is not None:
            first_line.setdefault(id_key(line.record_id), number)
    for number, record in by_line.items():
        line = lines[number - 1]
        error = record.get("error", {}).get("type")
        first = first_line.get(id_key(line.record_id)) if line.record_id is not None else None
        duplicate = first is not None and first < number
        if duplicate and not allowed:
            assert error == "DuplicateId"
        if duplicate and relabelled:
            assert error != "DuplicateId"
        if error == "DuplicateId":
            # Only a later line with an earlier line's id; the error names that line.
            assert duplicate
            assert record["error"]["first_line"] == first
        elif line.kind in ("junk", "array", "notext"):
            assert error == "InputError"
        elif line.kind == "bad":
            assert error == "ExtractionFailed"
        else:
            assert record["ok"]
            assert record["value"] == {"n": number}
    failed = any(not record["ok"] for record in by_line.values())
    assert exit_code == (1 if failed else 0)


# -- real SIGKILLs -------------------------------------------------------------------------


def command(source: Path, out: Path, schema: Path, url: str, step: Step) -> list[str]:
    return [
        sys.executable, "-m", "extract", "label", str(source), "-o", str(out), "-s", str(schema),
        "-m", "tiny", "--host", url, "--concurrency", "1", "--no-cache", "--quiet", *step.args(),
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    """This environment, with this checkout first on the child's import path."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run_killed(argv: list[str], out: Path, kill_after: int) -> None:
    """Start the command; SIGKILL it once OUTPUT has ``kill_after`` more lines (or at exit)."""
    start = line_count(out)
    victim = subprocess.Popen(
        argv, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + RUN_TIMEOUT
    while victim.poll() is None and line_count(out) < start + kill_after:
        assert time.monotonic() < deadline, "the command never got that far"
        time.sleep(0.001)
    victim.send_signal(signal.SIGKILL)
    victim.wait(RUN_TIMEOUT)


def run_to_end(argv: list[str]) -> int:
    done = subprocess.run(
        argv, env=child_env(), capture_output=True, timeout=RUN_TIMEOUT, check=False
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done.returncode


@pytest.fixture(scope="module")
def slow_server() -> Any:
    """One scripted server for every example, answering one request at a time and slowly
    enough that a kill after a number of lines lands mid-run."""
    engine = ScriptedEngine(models=("tiny",), slots=1, latency=0.04, responder=Responder())
    with serve(engine) as server:
        yield server.url


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(lines=LINES, steps=STEPS, final=FINAL)
@example(  # the reported input, a failing line, a kill mid-run, then retries
    lines=REPORTED,
    steps=[Step(2, False, False), Step(None, True, False), Step(1, True, True)],
    final=Step(None, True, True),
)
def test_sigkills_and_retries_leave_one_traceable_record_per_line(
    slow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[Line],
    steps: list[Step],
    final: Step,
) -> None:
    workdir = tmp_path_factory.mktemp("ids")
    source, out, schema = workdir / "in.jsonl", workdir / "out.jsonl", workdir / "n.json"
    write_input(source, lines)
    schema.write_text(json.dumps(SCHEMA))
    for done, step in enumerate(steps, 1):
        argv = command(source, out, schema, slow_server, step)
        if step.kill_after is None:
            check_final(lines, out, run_to_end(argv), steps[:done])
        else:
            run_killed(argv, out, step.kill_after)
            check_traceable(lines, out)
    exit_code = run_to_end(command(source, out, schema, slow_server, final))
    check_final(lines, out, exit_code, [*steps, final])


# -- in-process runs, kills simulated by a cut ---------------------------------------------


def run_in_process(url: str, source: Path, out: Path, schema: Path, step: Step) -> int:
    argv = [
        "label", str(source), "-o", str(out), "-s", str(schema), "-m", "tiny", "--host", url,
        "--no-cache", "--quiet", *step.args(),
    ]  # fmt: skip
    result = CliRunner().invoke(main, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(lines=LINES, steps=STEPS, final=FINAL, cuts=st.lists(st.floats(0, 1), min_size=3))
def test_cut_runs_and_retries_leave_one_traceable_record_per_line(
    scripted: Callable[..., Scripted],
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[Line],
    steps: list[Step],
    final: Step,
    cuts: list[float],
) -> None:
    server = scripted(slots=2, responder=Responder())
    workdir = tmp_path_factory.mktemp("ids")
    source, out, schema = workdir / "in.jsonl", workdir / "out.jsonl", workdir / "n.json"
    write_input(source, lines)
    schema.write_text(json.dumps(SCHEMA))
    for done, (step, cut) in enumerate(zip(steps, cuts, strict=False), 1):
        if step.kill_after is None:
            exit_code = run_in_process(server.url, source, out, schema, step)
            check_final(lines, out, exit_code, steps[:done])
            continue
        # What the run finds after its own resume (a retry rewrites OUTPUT first): a kill
        # leaves that, plus a prefix of what the run appends.
        OutputFile(out).resume(retry_failed=step.retry_failed)
        kept = out.stat().st_size
        run_in_process(server.url, source, out, schema, step)
        data = out.read_bytes()
        out.write_bytes(data[: kept + round(cut * (len(data) - kept))])
        check_traceable(lines, out)
    exit_code = run_in_process(server.url, source, out, schema, final)
    check_final(lines, out, exit_code, [*steps, final])
