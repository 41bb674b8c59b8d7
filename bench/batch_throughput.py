"""Docs/s of ``extract label`` against a server of known capacity, as a fraction of it.

    python bench/batch_throughput.py [--slots 4] [--latency 0.05] [--docs 400]

A scripted server with ``slots`` parallel slots that each hold a request for ``latency``
seconds can do at most ``slots / latency`` docs/s. The labeller runs twice: with its default
adaptive window (it starts at one request and must discover the slots) and with
``--concurrency`` set to the slot count. Each prints docs/s and the fraction of capacity.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from extract.server import Reply, ScriptedEngine, serve

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
REPLY = Reply.text('{"n": 1}')


def label(url: str, source: Path, out: Path, schema: Path, extra: list[str]) -> float:
    command = [
        sys.executable, "-m", "extract", "label", str(source), "-o", str(out), "-s", str(schema),
        "-m", "tiny", "--host", url, "--no-cache", *extra,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"([\d.]+) docs/s", done.stderr)
    if found is None:
        raise SystemExit(f"no docs/s in the summary:\n{done.stderr}")
    return float(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--docs", type=int, default=400)
    args = parser.parse_args()
    capacity = args.slots / args.latency
    engine = ScriptedEngine(
        models=("tiny",), slots=args.slots, latency=args.latency, responder=lambda body: REPLY
    )
    print(f"server: {args.slots} slots x {args.latency * 1000:.0f} ms = {capacity:.0f} docs/s")
    with tempfile.TemporaryDirectory() as tmp, serve(engine) as srv:
        work = Path(tmp)
        schema = work / "n.json"
        schema.write_text(json.dumps(SCHEMA))
        source = work / "in.jsonl"
        source.write_text(
            "".join(json.dumps({"id": i, "text": f"Ticket {i}"}) + "\n" for i in range(args.docs))
        )
        runs = {"adaptive (default)": [], f"--concurrency {args.slots}": ["-c", str(args.slots)]}
        for name, extra in runs.items():
            rate = label(srv.url, source, work / f"out-{len(extra)}.jsonl", schema, extra)
            print(f"{name:>20}: {rate:7.1f} docs/s = {rate / capacity:.0%} of capacity")


if __name__ == "__main__":
    main()
