"""P4: peak memory of ``extract label`` over large JSONL files, instant scripted replies.

The CLI runs as a child process, as a user runs it (progress bar off, a cache file in a
temporary folder). Its peak resident set comes from the kernel when it is reaped
(``wait4``'s ``ru_maxrss``: exact, no sampling gap); a sampler also records its resident set
as the run goes, to show whether memory grows with the input. Flat means the larger file's
peak stays within 10% of the smaller one's, once the one table that must grow with the input
is allowed for: the ids already seen, which catch a repeated id (``extract.batch.ids``: 64-bit
digests in a table of 16-byte slots kept at most half full, so up to 32 bytes a distinct id).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from ._harness import Outcome, Scale, progress, rate
from ._servers import ServerSpec, running
from .docs import PERSON_REPLY, Person, person_text

GOAL_MB = 150.0
FLAT_TOLERANCE = 0.10
ID_TABLE_BYTES = 32  # per distinct id, at most (see the module docstring)
SAMPLE_SECONDS = 0.5
CLI = (sys.executable, "-m", "extract", "label")
INTERRUPTED = 130  # extract label's exit code after Ctrl-C
# Instant replies: the run is bound by CPU, so slots only keep the server from serialising.
SPEC = ServerSpec(reply=PERSON_REPLY, slots=16)


# The labeling command runs under this small launcher, which reports its pid, then its exit
# status and peak RSS. The peak a parent reads from wait4 counts the memory the child held
# when forked, before exec: forked from the bench itself (~140 MB), every run "peaked" at the
# bench's own size. SIGINT is reset so that the budget's Ctrl-C acts as at a terminal, even
# when the bench runs in the background (whose children inherit SIGINT ignored).
_LAUNCHER = """
import json, os, signal, subprocess, sys
child = subprocess.Popen(
    sys.argv[1:],
    stdout=subprocess.DEVNULL,
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
)
print(child.pid, flush=True)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"status": status, "maxrss_kb": usage.ru_maxrss}), flush=True)
"""


def write_input(path: Path, lines: int) -> None:
    """A JSONL file of ``lines`` records: an id and a distinct text each."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            out.write(json.dumps({"id": i, "text": person_text(i)}) + "\n")


class _Sampler(threading.Thread):
    """Samples a process's resident set until it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._process = psutil.Process(pid)
        self._stop_event = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self._stop_event.wait(SAMPLE_SECONDS):
            try:
                rss = self._process.memory_info().rss
            except psutil.Error:
                return
            self.samples.append((time.perf_counter() - start, rss / 2**20))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One ``extract label`` run: its peak, its time, RSS over time, and how far it got."""

    peak_mb: float
    seconds: float
    samples: list[tuple[float, float]]
    written: int
    stopped: bool


def label(url: str, lines: int, tmp: Path, budget: float) -> Run:
    """Run ``extract label`` over ``lines`` records, interrupted (as by Ctrl-C) after
    ``budget`` seconds.

    Raises:
        RuntimeError: the command failed.
    """
    source, output = tmp / f"in-{lines}.jsonl", tmp / f"out-{lines}.jsonl"
    schema = tmp / "person.json"
    schema.write_text(json.dumps(Person.model_json_schema()), encoding="utf-8")
    write_input(source, lines)
    command = [
        *CLI, str(source), "-o", str(output),
        "--schema", str(schema), "--model", "tiny", "--host", url,
        "--cache", str(tmp / f"cache-{lines}.sqlite"), "--quiet",
    ]  # fmt: skip
    with (tmp / f"stderr-{lines}.txt").open("wb") as stderr:
        start = time.perf_counter()
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert launcher.stdout is not None
        pid = int(launcher.stdout.readline())
        sampler = _Sampler(pid)
        sampler.start()
        stopper = threading.Timer(budget, os.kill, (pid, signal.SIGINT))
        stopper.start()
        report = json.loads(launcher.stdout.readline())
        launcher.wait()
        seconds = time.perf_counter() - start
        stopper.cancel()
        sampler.stop()
    returncode = os.waitstatus_to_exitcode(report["status"])
    stopped = returncode == INTERRUPTED and stopper.finished.is_set() and seconds >= budget
    if returncode != 0 and not stopped:
        tail = (tmp / f"stderr-{lines}.txt").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"extract label exited {returncode}: {tail}")
    with output.open("rb") as produced:
        written = sum(1 for _ in produced)
    source.unlink()
    output.unlink()
    # ru_maxrss is in kilobytes on Linux.
    return Run(report["maxrss_kb"] / 1024, seconds, sampler.samples, written, stopped)


def _profile(samples: list[tuple[float, float]]) -> str:
    """Resident MB at each quarter of the run."""
    if not samples:
        return "no samples"
    picks = [
        samples[min(len(samples) - 1, round(q * (len(samples) - 1)))] for q in (0.25, 0.5, 0.75, 1)
    ]
    return ", ".join(f"{t:.0f} s: {mb:.0f} MB" for t, mb in picks)


def run(scale: Scale) -> list[Outcome]:
    """Measure P4."""
    peaks: list[float] = []
    written: list[int] = []
    details = [
        "`python -m extract label IN.jsonl -o OUT.jsonl --schema person.json --model tiny "
        "--host URL --cache FILE --quiet`, scripted server with instant replies",
    ]
    complete = True
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, running(SPEC) as server:
        for lines in scale.memory_lines:
            result = label(server.url, lines, Path(tmp), scale.memory_budget)
            peaks.append(result.peak_mb)
            written.append(result.written)
            complete = complete and (result.written == lines or result.stopped)
            progress(f"P4 {lines} lines: peak {result.peak_mb:.0f} MB in {result.seconds:.0f} s")
            cut = (
                f" (stopped by Ctrl-C at the {scale.memory_budget / 60:.0f}-minute budget)"
                if result.stopped
                else ""
            )
            details.append(
                f"- {lines:,} lines: peak RSS {result.peak_mb:.1f} MB, {result.seconds:.0f} s "
                f"({rate(result.written, result.seconds):.0f} docs/s), {result.written:,} output "
                f"lines{cut}; RSS over the run: {_profile(result.samples)}"
            )
    id_table_mb = ID_TABLE_BYTES * max(0, written[-1] - written[0]) / 1e6
    flat = peaks[-1] <= peaks[0] * (1 + FLAT_TOLERANCE) + id_table_mb
    details.append(f"- allowed for the id table: {id_table_mb:.0f} MB more at the larger file")
    sizes = " / ".join(f"{n:,}" for n in scale.memory_lines)
    return [
        Outcome(
            "P4",
            f"peak RSS of `extract label`, {sizes} lines",
            " / ".join(f"{p:.0f} MB" for p in peaks) + (" (flat)" if flat else " (grows)"),
            f"< {GOAL_MB:.0f} MB, flat but for the id table",
            max(peaks) < GOAL_MB and flat and complete,
            tuple(details),
        )
    ]
