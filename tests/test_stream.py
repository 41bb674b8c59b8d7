"""Streaming partial objects: values as they form, failed attempts announced, same result."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import Person

from extract import AsyncExtractor, Extraction, Extractor
from extract.core.result import AttemptFailed, Partial
from extract.server import Reply, ScriptedEngine

CHUNKS = ['{"name": "A', 'nn", ', '"age": 3', "4}"]


def test_partials_grow_and_end_with_the_extraction(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text("", chunks=CHUNKS))
    with Extractor("tiny", host=url) as ex:
        events = list(ex.stream("Ann is 34.", schema=Person))
    partials = [e for e in events if isinstance(e, Partial)]
    assert isinstance(events[-1], Extraction)
    assert events[-1].value == Person(name="Ann", age=34)
    assert partials[0].value.name == "A"
    assert all(p.attempt == 1 for p in partials)
    assert not hasattr(partials[0].value, "age") or partials[0].value.age is None


def test_failed_attempt_is_announced_before_the_next_partials(
    engine: ScriptedEngine, url: str
) -> None:
    engine.script(Reply.text('{"name": "Ann", "age": "old"}'), Reply.text("", chunks=CHUNKS))
    with Extractor("tiny", host=url) as ex:
        events = list(ex.stream("Ann is 34.", schema=Person))
    kinds = [type(e).__name__ for e in events]
    failed_at = kinds.index("AttemptFailed")
    assert all(isinstance(e, Partial) and e.attempt == 1 for e in events[:failed_at])
    assert all(isinstance(e, Partial) and e.attempt == 2 for e in events[failed_at + 1 : -1])
    failure = events[failed_at]
    assert isinstance(failure, AttemptFailed)
    assert failure.attempt.error is not None
    final = events[-1]
    assert isinstance(final, Extraction)
    assert len(final.attempts) == 2


def test_async_stream_matches_sync(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text("", chunks=CHUNKS), Reply.text("", chunks=CHUNKS))
    with Extractor("tiny", host=url) as ex:
        sync_events = list(ex.stream("Ann is 34.", schema=Person))

    async def run() -> list[Any]:
        async with AsyncExtractor("tiny", host=url) as aex:
            return [e async for e in aex.stream("Ann is 34.", schema=Person)]

    async_events = asyncio.run(run())
    assert [type(e) for e in sync_events] == [type(e) for e in async_events]
    assert sync_events[-1].value == async_events[-1].value
