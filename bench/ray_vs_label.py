"""Rows/s of the Ray integration against ``extract label``, on one scripted server.

    python -m bench.ray_vs_label [--rows 2000] [--slots 8] [--latency 0.05] [--cpus 2] [--blocks 16]

The server (a child process, as Ollama is) runs ``slots`` requests at once, each held for
``latency`` seconds: at most ``slots / latency`` rows/s. Every contender gets the same total
of ``slots`` requests in flight:

- ``extract label -c SLOTS`` (its summary's docs/s, and the command's wall time);
- Ray Data on a local instance (``ray.init(num_cpus=CPUS)``): read JSONL into BLOCKS blocks →
  ``Labeler`` → write Parquet, with 1 actor × SLOTS and 2 actors × SLOTS/2 in flight;
- the same Ray pipeline with a do-nothing callable class instead of ``Labeler``: Ray's own
  cost of starting actors and moving blocks, which no labeling can avoid.

Ray's overhead is its wall time minus the time the same rows take at ``extract label``'s rate.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import ray.data

from extract.integrations.ray import Labeler

from ._servers import ServerSpec, running

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


class Passthrough:
    """The cheapest callable class: what an actor pool costs before any labeling."""

    def __call__(self, batch: Any) -> Any:
        return batch


def run_label(url: str, source: Path, out: Path, schema: Path, slots: int) -> tuple[float, float]:
    """``extract label`` on ``source``: (its own docs/s, the command's wall seconds)."""
    command = [
        sys.executable, "-m", "extract", "label", str(source), "-o", str(out), "-s", str(schema),
        "-m", "tiny", "--host", url, "--no-cache", "-c", str(slots),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    found = re.search(r"([\d.]+) docs/s", done.stderr)
    if found is None:
        raise SystemExit(f"no docs/s in the summary (exit {done.returncode}):\n{done.stderr}")
    return float(found[1]), wall


def run_ray(
    source: Path, out: Path, blocks: int, udf: Any, actors: int, kwargs: dict[str, Any]
) -> float:
    """One Ray pipeline over ``source``; its wall seconds (actor start-up included)."""
    started = time.perf_counter()
    ray.data.read_json(str(source), override_num_blocks=blocks).map_batches(
        udf,
        fn_constructor_kwargs=kwargs or None,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=0.25,
        batch_size=None,  # one batch per block
        batch_format="pyarrow",
    ).write_parquet(str(out))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=16)
    args = parser.parse_args()
    capacity = args.slots / args.latency
    spec = ServerSpec(reply='{"n": 1}', slots=args.slots, latency=args.latency)
    print(f"server: {args.slots} slots x {args.latency * 1000:.0f} ms = {capacity:.0f} rows/s")
    print(f"rows: {args.rows}; ideal time {args.rows / capacity:.1f} s")
    with tempfile.TemporaryDirectory() as tmp, running(spec) as server:
        work = Path(tmp)
        schema = work / "n.json"
        schema.write_text(json.dumps(SCHEMA))
        source = work / "in.jsonl"
        source.write_text(
            "".join(json.dumps({"id": i, "text": f"Ticket {i}"}) + "\n" for i in range(args.rows))
        )
        rate, wall = run_label(server.url, source, work / "label.jsonl", schema, args.slots)
        print(
            f"extract label -c {args.slots}: {rate:.1f} rows/s ({rate / capacity:.0%} of "
            f"capacity); command wall {wall:.1f} s = {args.rows / wall:.1f} rows/s"
        )

        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        print(f"ray.init(num_cpus={args.cpus}): {time.perf_counter() - started:.1f} s (once)")
        base = run_ray(source, work / "noop", args.blocks, Passthrough, 1, {})
        print(f"ray, pass-through actor: {base:.1f} s (Ray's fixed cost per pipeline)")
        for actors in (1, 2):
            kwargs = {
                "schema": SCHEMA,
                "model": "tiny",
                "hosts": [server.url],
                "concurrency_per_host": args.slots // actors,
            }
            took = run_ray(source, work / f"ray-{actors}", args.blocks, Labeler, actors, kwargs)
            overhead = took - args.rows / rate
            print(
                f"ray, {actors} actor(s) x {args.slots // actors}: {took:.1f} s = "
                f"{args.rows / took:.1f} rows/s ({args.rows / took / capacity:.0%} of capacity); "
                f"{overhead:+.1f} s vs extract label's rate"
            )
        ray.shutdown()


if __name__ == "__main__":
    main()
