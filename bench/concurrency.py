"""P3: batch throughput against a server of known capacity.

The scripted server has 4 slots and holds each for 50 ms: at most 80 documents per second.
extract's batch engine labels the documents with its defaults (it finds the server's
concurrency itself); the reference is what a careful user writes by hand — an asyncio loop
over ``ollama.AsyncClient`` with a semaphore of twice the slots, so the server's queue never
runs dry. Both are reported as a fraction of capacity.
"""

from __future__ import annotations

import asyncio
import time

import ollama

from extract import Labeling

from ._harness import Outcome, Scale, progress, rate
from ._servers import ServerSpec, running
from .docs import PERSON_REPLY, Person, person_text

SLOTS, LATENCY = 4, 0.05
CAPACITY = SLOTS / LATENCY
GOAL = 0.95
HAND_CONCURRENCY = 2 * SLOTS
SPEC = ServerSpec(reply=PERSON_REPLY, slots=SLOTS, latency=LATENCY)


def records(n: int) -> list[dict[str, str]]:
    """``n`` batch records: an id and a distinct text each."""
    return [{"id": f"doc-{i}", "text": person_text(i)} for i in range(n)]


def extract_batch(url: str, docs: list[dict[str, str]]) -> tuple[float, int]:
    """Label ``docs`` with extract's batch engine; (docs/s, records ok)."""
    with Labeling(Person, model="tiny", hosts=url) as session:
        start = time.perf_counter()
        ok = sum(1 for result in session.results(docs) if result.ok)
        return rate(len(docs), time.perf_counter() - start), ok


async def _hand_loop(url: str, docs: list[dict[str, str]]) -> int:
    client = ollama.AsyncClient(host=url)
    schema = Person.model_json_schema()
    semaphore = asyncio.Semaphore(HAND_CONCURRENCY)

    async def one(text: str) -> bool:
        async with semaphore:
            reply = await client.generate(model="tiny", prompt=text, format=schema)
        Person.model_validate_json(reply.response or "")
        return True

    try:
        done = await asyncio.gather(*(one(d["text"]) for d in docs))
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    return sum(done)


def hand_batch(url: str, docs: list[dict[str, str]]) -> tuple[float, int]:
    """The hand-written asyncio + semaphore loop; (docs/s, records ok)."""
    start = time.perf_counter()
    ok = asyncio.run(_hand_loop(url, docs))
    return rate(len(docs), time.perf_counter() - start), ok


def run(scale: Scale) -> list[Outcome]:
    """Measure P3."""
    docs = records(scale.batch_docs)
    with running(SPEC) as server:
        extract_rate, extract_ok = extract_batch(server.url, docs)
        progress(f"P3 extract: {extract_rate:.1f} docs/s ({extract_ok} ok)")
        hand_rate, hand_ok = hand_batch(server.url, docs)
        progress(f"P3 hand loop: {hand_rate:.1f} docs/s ({hand_ok} ok)")
        calls = server.model_calls
    fraction, hand_fraction = extract_rate / CAPACITY, hand_rate / CAPACITY
    details = (
        f"{len(docs)} documents, server {SLOTS} slots × {LATENCY * 1000:.0f} ms "
        f"= {CAPACITY:.0f} docs/s capacity; {calls} model calls in all",
        f"- extract batch engine (default concurrency): {extract_rate:.1f} docs/s = "
        f"{fraction:.3f} of capacity, {extract_ok}/{len(docs)} ok",
        f"- asyncio + Semaphore({HAND_CONCURRENCY}) over ollama.AsyncClient: {hand_rate:.1f} "
        f"docs/s = {hand_fraction:.3f} of capacity, {hand_ok}/{len(docs)} ok",
    )
    return [
        Outcome(
            "P3",
            f"batch docs/s, {SLOTS} slots × {LATENCY * 1000:.0f} ms (capacity {CAPACITY:.0f})",
            f"{fraction:.3f} of capacity ({extract_rate:.1f}/s; hand loop {hand_fraction:.3f})",
            f"≥ {GOAL}",
            fraction >= GOAL and extract_ok == len(docs),
            details,
        )
    ]
