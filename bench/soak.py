"""The long soak, on demand: ``python -m bench.soak [--docs 10000] [--kills 20]``.

The two checks CI runs at small sizes (``tests/test_soak.py`` and
``tests/test_crash_resume.py``), at full size: a batch of 10k documents against a server
that fails ~20% of requests across every fault kind, then the ``extract label`` command
SIGKILLed 20 times and rerun. It prints the figures (documents, faults injected by kind,
retried to success, failed, lost) and exits 1 when any document was lost, duplicated or
failed without its explanation.

The tests' harness is imported as pytest imports it (``tests/`` on ``sys.path``), so the
soak that runs here is the one CI proves at 2k documents.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fault soak and the crash-resume run; print their figures; 0 when all is well."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--docs", type=int, default=10_000, help="documents in the fault soak")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the label command")
    parser.add_argument(
        "--crash-docs", type=int, default=1_000, help="documents in the crash-resume run"
    )
    parser.add_argument("--seed", type=int, default=None, help="fault plan seed (default: CI's)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(TESTS))
    import soak_harness
    import test_crash_resume

    seed = soak_harness.SEED if args.seed is None else args.seed
    config = soak_harness.SoakConfig(docs=args.docs, seed=seed)
    _progress(f"fault soak: {config.docs} documents, {config.fault_rate:.0%} faults")
    started = time.perf_counter()
    soak = soak_harness.run_soak(config)
    soak_seconds = time.perf_counter() - started
    print(f"\nfault soak, {config.docs} documents ({soak_seconds:.0f} s):\n{soak.table()}")

    _progress(f"crash-resume: {args.crash_docs} documents, {args.kills} SIGKILLs")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak-crash-") as tmp:
        crash = test_crash_resume.crash_resume(
            Path(tmp),
            docs=args.crash_docs,
            kills=args.kills,
            seed=test_crash_resume.SEED if args.seed is None else args.seed,
        )
    crash_seconds = time.perf_counter() - started
    print(f"\ncrash-resume, {args.crash_docs} documents ({crash_seconds:.0f} s):\n{crash.table()}")

    problems = [*soak.problems, *(crash.soak.problems if crash.soak else ["no crash figures"])]
    problems += [f"doc {doc} was sent again after its record was written" for doc in crash.resent]
    if soak.lost or (crash.soak is not None and crash.soak.lost):
        problems.append("documents were lost")
    for problem in problems[:50]:
        print(f"PROBLEM: {problem}")
    print("\nverdict:", "FAIL" if problems else "pass (nothing lost, every failure explained)")
    return 1 if problems else 0


def _progress(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
