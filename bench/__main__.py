"""``python -m bench [--quick] [--only P1,P3]``: run the benchmarks, print the table, write
RESULTS.md (a full set only: a run limited with ``--only`` leaves the file alone).

The timed benchmarks run one after another, alone. P4 (memory) and P6 (the real model's
output) measure no speed, so they then run side by side, which halves the wall time of a full
run on a small machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import sys
import time
import traceback
from collections.abc import Sequence

from ._harness import FULL, QUICK, Outcome, Scale, progress
from .report import show, write

# Module per benchmark; P1 and P2 come from one interleaved run.
TIMED = {("P1", "P2"): "sequential", ("P3",): "concurrency", ("P5",): "rerun"}
UNTIMED = {("P4",): "memory", ("P6",): "quality"}
ALL_IDS = ("P1", "P2", "P3", "P4", "P5", "P6")


def _run(ids: tuple[str, ...], module_name: str, scale: Scale) -> list[Outcome]:
    """One benchmark module's outcomes; a crash becomes a failed row, so the rest still run."""
    progress(f"running {'/'.join(ids)} ({module_name})")
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
        outcomes: list[Outcome] = module.run(scale)
    except Exception as exc:
        trace = traceback.format_exc().rstrip().splitlines()
        progress(f"{'/'.join(ids)} crashed: {exc!r}")
        error = f"crashed: {type(exc).__name__}: {' '.join(str(exc).split())[:80]}"
        details = ("```", *trace[-25:], "```")
        return [Outcome(i, module_name, error, "runs", False, details) for i in ids]
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; exit 0 when every goal is met, 1 otherwise."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. P1,P3")
    args = parser.parse_args(args_list)
    wanted = {i.strip().upper() for i in args.only.split(",") if i.strip()} or set(ALL_IDS)
    if unknown := wanted - set(ALL_IDS):
        parser.error(f"unknown benchmark ids: {', '.join(sorted(unknown))}")
    scale = QUICK if args.quick else FULL
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    for ids, module_name in TIMED.items():
        if not wanted.isdisjoint(ids):
            outcomes += _run(ids, module_name, scale)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(UNTIMED)) as pool:
        futures = [
            pool.submit(_run, ids, module_name, scale)
            for ids, module_name in UNTIMED.items()
            if not wanted.isdisjoint(ids)
        ]
        for future in futures:
            outcomes += future.result()
    outcomes = sorted((o for o in outcomes if o.id in wanted), key=lambda o: ALL_IDS.index(o.id))
    show(outcomes)
    if wanted == set(ALL_IDS):
        path = write(outcomes, argv=args_list, seconds=time.perf_counter() - started)
        progress(f"wrote {path}")
    return 0 if all(o.passed is not False for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
