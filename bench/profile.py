"""``python -m bench.profile [sequential|batch] [-n N]``: where extract spends its time.

Runs extract's side of P1 (sequential calls) or of P3/P4 (the batch engine, instant replies) under
pyinstrument against the scripted server in its own process, and prints the call tree, so a
missed goal can be traced to a function.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from pyinstrument import Profiler

from extract import Extractor, Labeling

from ._servers import ServerSpec, running
from .concurrency import records
from .docs import PERSON_REPLY, Person, person_text


def _sequential(url: str, n: int) -> Callable[[], None]:
    extractor = Extractor("tiny", host=url)
    texts = [person_text(i) for i in range(n)]
    extractor.extract(texts[0], schema=Person)

    def work() -> None:
        for text in texts:
            extractor.extract(text, schema=Person)

    return work


def _batch(url: str, n: int) -> Callable[[], None]:
    docs = records(n)

    async def label() -> None:
        # The async engine on this thread: the sync face would run it on a thread of its own,
        # out of the profiler's sight.
        async with Labeling(Person, model="tiny", hosts=url) as session:
            async for _ in session.aresults(docs):
                pass

    return lambda: asyncio.run(label())


WORKLOADS = {"sequential": _sequential, "batch": _batch}


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one workload and print pyinstrument's text report."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("workload", choices=sorted(WORKLOADS), nargs="?", default="sequential")
    parser.add_argument("-n", type=int, default=500, help="documents (default 500)")
    parser.add_argument("--html", help="also write an HTML report to this file")
    args = parser.parse_args(argv)
    spec = ServerSpec(reply=PERSON_REPLY, slots=16)
    with running(spec) as server:
        work = WORKLOADS[args.workload](server.url, args.n)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        work()
        profiler.stop()
    sys.stdout.write(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as out:
            out.write(profiler.output_html())
    return 0


if __name__ == "__main__":
    sys.exit(main())
