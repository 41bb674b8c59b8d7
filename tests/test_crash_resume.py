"""Crash-resume: SIGKILL ``extract label`` at random moments, rerun it, and lose nothing.

The command runs as a real subprocess against a scripted server that also injects output
faults (re-asked) and dooms a few documents (failed records, which a rerun must not redo).
It is killed at seeded random moments — while starting, between records, in the middle of
writing one — and rerun each time on the same output file, then run to the end. The output
must then hold exactly one valid JSON line per input id, and no document whose line was
already written may have been sent to the model again. ``bench/soak.py`` does 20 kills.

The output file's repair is also checked on its own: cut at every byte offset, a resume keeps
exactly the whole records before the cut.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from soak_harness import FAULTS, SCHEMA, FaultPlan, Figures, QuietEngine, SoakConfig, documents

from extract.batch.records import OutputFile
from extract.errors import ConfigError
from extract.server import serve

REPO = Path(__file__).resolve().parent.parent
CI_DOCS = 300
CI_KILLS = 5
SEED = 11
# Transport faults cost the command's real back-off (seconds); the soak covers them.
OUTPUT_FAULTS = tuple(name for name, fault in FAULTS.items() if not fault.transport)
RUN_TIMEOUT = 120.0


@dataclasses.dataclass
class CrashFigures:
    """What the crash-resume run did."""

    docs: int
    kills: int = 0
    kills_mid_run: int = 0
    torn_lines: int = 0
    runs: int = 0
    resent: list[int] = dataclasses.field(default_factory=list)
    final_exit: int | None = None
    final_stderr: str = ""
    soak: Figures | None = None

    def table(self) -> str:
        soak = self.soak or Figures()
        rows = [
            ("documents", self.docs),
            ("SIGKILLs", self.kills),
            ("  after that run had written records", self.kills_mid_run),
            ("  that left a torn last line", self.torn_lines),
            ("runs (kills + the final one)", self.runs),
            ("records in the output", soak.records),
            ("  ok", soak.records - sum(soak.failed.values())),
            ("  failed (typed error)", sum(soak.failed.values())),
            ("lost", soak.lost),
            ("duplicated", len([p for p in soak.problems if "twice" in p])),
            ("written records sent again", len(self.resent)),
            ("unexplained", len(soak.problems)),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value:>6}" for label, value in rows)


def complete_lines(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The whole records in an output file, and whether a torn last line follows them."""
    data = path.read_bytes() if path.exists() else b""
    *lines, tail = data.split(b"\n")
    return [json.loads(line) for line in lines], bool(tail)


def label_command(source: Path, out: Path, schema: Path, cache: Path, url: str) -> list[str]:
    return [
        sys.executable, "-m", "extract", "label", str(source), "-o", str(out), "-s", str(schema),
        "-m", "tiny", "--host", url, "--concurrency", "4", "--cache", str(cache), "--quiet",
    ]  # fmt: skip


def crash_resume(workdir: Path, *, docs: int, kills: int, seed: int) -> CrashFigures:
    """Label ``docs`` documents, SIGKILLing the command ``kills`` times; return the figures."""
    rng = random.Random(seed)
    config = SoakConfig(
        docs=docs, seed=seed, fault_rate=0.1, doomed_rate=0.02, faults=OUTPUT_FAULTS
    )
    plan = FaultPlan(config)
    source, schema = workdir / "in.jsonl", workdir / "schema.json"
    source.write_text("".join(json.dumps(d) + "\n" for d in documents(docs)))
    schema.write_text(json.dumps(SCHEMA))
    out = workdir / "out.jsonl"
    figures = CrashFigures(docs)
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    with serve(QuietEngine(slots=4, latency=0.01, responder=plan)) as server:
        command = label_command(source, out, schema, workdir / "cache.sqlite", server.url)
        for left in range(kills, 0, -1):
            written, _ = complete_lines(out)
            # Spread the kills over what is left to do.
            room = (docs - len(written)) // (left + 1)
            before = {line["id"]: plan.seen(line["id"]) for line in written}
            with open(workdir / "stderr.txt", "wb") as stderr:
                victim = subprocess.Popen(command, env=env, stderr=stderr)
                _wait_for_a_moment(victim, out, len(written), room, left == kills, rng)
                victim.send_signal(signal.SIGKILL)
                victim.wait(RUN_TIMEOUT)
            figures.runs += 1
            figures.kills += victim.returncode == -signal.SIGKILL
            figures.kills_mid_run += _line_count(out) > len(written)
            figures.torn_lines += complete_lines(out)[1]
            figures.resent += [doc for doc, n in before.items() if plan.seen(doc) != n]
        written, _ = complete_lines(out)
        before = {line["id"]: plan.seen(line["id"]) for line in written}
        final = subprocess.run(
            command, env=env, capture_output=True, timeout=RUN_TIMEOUT, check=False
        )
        figures.runs += 1
        figures.final_exit, figures.final_stderr = final.returncode, final.stderr.decode()
        figures.resent += [doc for doc, n in before.items() if plan.seen(doc) != n]
    figures.soak = _check_output(out, plan)
    return figures


def _wait_for_a_moment(
    victim: subprocess.Popen[bytes], out: Path, written: int, room: int, first: bool, rng: Any
) -> None:
    """Let the command run until a random moment: about ``room`` records in, at most."""
    if first or rng.random() < 0.2:
        # Any time from launch on: often while it imports, reads the output or checks the host.
        time.sleep(rng.uniform(0.0, 1.0))
        return
    # After a random number of new records, plus a little: sometimes in the middle of a write.
    target = written + rng.randint(1, max(1, room))
    deadline = time.monotonic() + RUN_TIMEOUT
    while victim.poll() is None and time.monotonic() < deadline:
        if _line_count(out) >= target:
            time.sleep(rng.uniform(0.0, 0.01))
            return
        time.sleep(0.001)


def _line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _check_output(out: Path, plan: FaultPlan) -> Figures:
    """Every line valid, one per input id, each explained by what its requests met."""
    figures = Figures(docs=plan.config.docs, planned_doomed=plan.planned_doomed())
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        figures.problems.append("the output ends with a torn line")
    seen: set[Any] = set()
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            line = json.loads(raw)
        except ValueError:
            figures.problems.append(f"line {number} is not JSON: {raw[:80]!r}")
            continue
        if line["id"] in seen:
            figures.problems.append(f"id {line['id']!r} written twice")
            continue
        seen.add(line["id"])
        figures.records += 1
        figures.tally(line, plan.take(line["id"]), plan)
    if missing := set(range(plan.config.docs)) - seen:
        figures.problems.append(f"ids never written: {sorted(missing)[:20]}")
    return figures


@pytest.mark.soak
def test_sigkill_at_random_moments_then_rerun_loses_nothing(tmp_path: Path) -> None:
    figures = crash_resume(tmp_path, docs=CI_DOCS, kills=CI_KILLS, seed=SEED)
    print(f"\ncrash-resume, {CI_DOCS} documents:\n{figures.table()}")
    soak = figures.soak
    assert soak is not None
    assert soak.problems == []
    assert soak.records == CI_DOCS
    assert figures.resent == []
    # Doomed documents failed, so the final run reports failures; nothing else went wrong.
    assert figures.final_exit == 1, figures.final_stderr
    assert "Traceback" not in figures.final_stderr
    assert soak.doomed == soak.planned_doomed > 0
    assert figures.kills == CI_KILLS
    assert figures.kills_mid_run > 0


def write_records(path: Path, count: int) -> bytes:
    sink = OutputFile(path)
    sink.resume()
    for n in range(count):
        sink.write({"id": f"r{n}", "line": n + 1, "ok": n % 3 != 0, "value": {"text": "é" * n}})
    sink.close()
    return path.read_bytes()


def test_a_resume_after_a_cut_at_any_byte_keeps_exactly_the_whole_records(
    tmp_path: Path,
) -> None:
    full = write_records(tmp_path / "full.jsonl", 4)
    ends = [i + 1 for i, byte in enumerate(full) if byte == ord("\n")]
    path = tmp_path / "out.jsonl"
    for cut in range(len(full) + 1):
        path.write_bytes(full[:cut])
        written = OutputFile(path).resume()
        whole = sum(end <= cut for end in ends)
        # A record cut just before its newline is whole: it is kept and its line finished.
        whole += cut in [end - 1 for end in ends]
        assert written.records == len(written.entries) == whole, cut
        assert written.failed == sum(n % 3 == 0 for n in range(whole))
        assert path.read_bytes() == full[: ends[whole - 1] if whole else 0]
        sink = OutputFile(path)
        sink.resume()
        sink.write({"id": "next", "line": 9, "ok": True})
        sink.close()
        assert [json.loads(line)["id"] for line in path.read_bytes().splitlines()] == [
            *(f"r{n}" for n in range(whole)),
            "next",
        ]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(tail=st.binary(max_size=200))
def test_a_resume_after_any_garbage_tail_repairs_or_refuses(
    tmp_path_factory: pytest.TempPathFactory, tail: bytes
) -> None:
    workdir = tmp_path_factory.mktemp("garbage")
    full = write_records(workdir / "base.jsonl", 3)
    path = workdir / "out.jsonl"
    path.write_bytes(full + tail)
    try:
        written = OutputFile(path).resume()
    except ConfigError:
        # Refused only when a line that is not a record has more lines after it; and then
        # the file is left as it was.
        assert b"\n" in tail
        assert path.read_bytes() == full + tail
        return
    data = path.read_bytes()
    assert data.startswith(full)
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert all("id" in json.loads(line) for line in lines)
    assert written.records == len(lines) >= 3
