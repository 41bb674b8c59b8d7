"""Peak memory of ``extract label`` on large inputs: it should not grow with the input.

    python bench/batch_memory.py [LINES ...]                 # default: 1000 100000
    python bench/batch_memory.py --empty-texts 1000000      # the pipeline alone, no model calls

For each size, writes a JSONL file of that many short tickets, labels it with
``python -m extract label`` against a scripted server that answers at once (many slots, no
latency), and prints the labeller's peak RSS (the server runs in this process, not counted),
its wall time, docs/s and CPU time per document. The output must hold one line per input line.

With ``--empty-texts`` every ticket's text is empty: each line becomes an InputError record
without a request, which runs reading, the engine's window, and writing at full speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from extract.server import Reply, ScriptedEngine, serve

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
REPLY = Reply.text('{"n": 1}')
EXIT_SOME_FAILED = 1


def write_input(path: Path, lines: int, *, empty: bool) -> None:
    with open(path, "w") as f:
        for i in range(lines):
            text = "" if empty else f"Ticket {i}: the app crashes on start."
            f.write(json.dumps({"id": f"T-{i}", "text": text}) + "\n")


def forget_requests(engine: ScriptedEngine, stop: threading.Event) -> None:
    # The scripted engine records every request; a million of them would fill this process.
    while not stop.wait(0.5):
        engine.reset()


def run(lines: int, workdir: Path, *, empty: bool) -> dict[str, float]:
    source, out = workdir / f"in-{lines}.jsonl", workdir / f"out-{lines}.jsonl"
    schema = workdir / "n.json"
    schema.write_text(json.dumps(SCHEMA))
    write_input(source, lines, empty=empty)
    engine = ScriptedEngine(models=("tiny",), slots=64, responder=lambda body: REPLY)
    stop = threading.Event()
    with serve(engine) as srv:
        janitor = threading.Thread(target=forget_requests, args=(engine, stop), daemon=True)
        janitor.start()
        command = [
            sys.executable, "-m", "extract", "label", str(source), "-o", str(out),
            "-s", str(schema), "-m", "tiny", "--host", srv.url, "--no-cache", "--quiet",
        ]  # fmt: skip
        started = time.perf_counter()
        child = subprocess.Popen(command)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        stop.set()
    code = os.waitstatus_to_exitcode(status)
    if code != (EXIT_SOME_FAILED if empty and lines else 0):
        raise SystemExit(f"extract label exited with {code}")
    with open(out, "rb") as f:
        written = sum(1 for _ in f)
    if written != lines:
        raise SystemExit(f"{written} output lines for {lines} input lines")
    return {
        "lines": lines,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "wall_s": wall,
        "docs_s": lines / wall,
        "cpu_ms_per_doc": (usage.ru_utime + usage.ru_stime) * 1000 / max(lines, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 100_000])
    parser.add_argument("--empty-texts", action="store_true", help="no model calls at all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for lines in args.sizes:
            result = run(lines, Path(tmp), empty=args.empty_texts)
            print(
                f"{result['lines']:>9} lines: peak RSS {result['peak_rss_mb']:.1f} MB, "
                f"wall {result['wall_s']:.1f} s, {result['docs_s']:.0f} docs/s, "
                f"labeller CPU {result['cpu_ms_per_doc']:.2f} ms/doc",
                flush=True,
            )


if __name__ == "__main__":
    main()
