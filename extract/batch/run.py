"""The batch engine: a reader, a task per record in the window, and the reorder buffer.

``Labeling`` checks the arguments and builds the host pool; ``BatchRun`` does one stream's work.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any

import tenacity

from ..client.checks import check_text
from ..client.extractor import AsyncExtractor
from ..core.result import Extraction, format_fallback, total_usage
from ..core.schema import Schema
from ..errors import ExtractError, ExtractionFailed, OutputError, TransportError
from .cache import Cache
from .hosts import HostPool
from .records import Document, Record, to_document
from .scores import Report, distributions, salted_key

Records = Iterable[Any] | AsyncIterable[Any]

# Records read but not yet handed to the caller, per unit of host concurrency: room for the
# in-flight requests and for finished ones waiting behind a slow one (ordered output).
WINDOW_PER_SLOT = 2
MIN_WINDOW = 16
# Sync inputs are read in a worker thread (a slow pipe must not stall the event loop), in
# chunks so the thread hop is paid once per chunk.
READ_CHUNK = 256
# A warm-up (the session's in-domain prior) reads the words of the run's first documents.
WARM_UP_DOCUMENTS = 64

WarmUp = Callable[[list[str]], Awaitable[None]]
# How a run scores confidence (JSON data), asked for when a record's cache key is made: after
# the warm-up, so the in-domain prior it learned is part of it.
Scoring = Callable[[], Mapping[str, Any]]


def _failed(doc: Document, error: ExtractError) -> Record:
    if isinstance(error, ExtractionFailed):
        attempts = error.attempts
        usage = total_usage(attempts)
        return Record(
            doc.id,
            False,
            None,
            error,
            len(attempts),
            usage,
            doc.fields,
            line=doc.line,
            format_fallback=format_fallback(attempts),
        )
    return Record(doc.id, False, error=error, fields=doc.fields, line=doc.line)


class _Slots:
    """Counts records between being read and being handed to the caller. One taker."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._given = asyncio.Event()

    async def take(self, most: int) -> int:
        while not self.free:
            self._given.clear()
            await self._given.wait()
        taken = min(self.free, most)
        self.free -= taken
        return taken

    def give(self, count: int = 1) -> None:
        self.free += count
        self._given.set()


class BatchRun:
    """One batch: the reader, a task per record in the window, and the reorder buffer."""

    def __init__(
        self,
        pool: HostPool,
        *,
        keys: AsyncExtractor,
        schema: Schema,
        retry: tenacity.BaseRetrying,
        cache: Cache | None,
        ordered: bool,
        id_field: str,
        text_field: str,
        warm_up: WarmUp | None = None,
        scoring: Scoring | None = None,
        scored: bool = False,
    ) -> None:
        """``warm_up``, when given, is awaited with the texts of the first documents (up to
        ``WARM_UP_DOCUMENTS``) before any of them is labeled; not at all for an empty input.
        ``scoring`` says how confidence is scored (part of each cache key); ``scored``, that
        records are meant to carry confidence: a cached value stored without its report is
        then computed again rather than served without one."""
        self.pool, self.keys, self.schema = pool, keys, schema
        self.retry, self.cache, self.ordered = retry, cache, ordered
        self.id_field, self.text_field = id_field, text_field
        # A record whose host fails is sent again (to another host when there is one).
        self.rounds = max(2, len(pool.hosts))
        window = sum(h.window.ceiling for h in pool.hosts) * WINDOW_PER_SLOT
        # A warm-up holds its documents until it is done: room for all of them.
        held = WARM_UP_DOCUMENTS if warm_up is not None else 0
        self.slots = _Slots(max(MIN_WINDOW, window, held))
        self.finished: asyncio.Queue[tuple[int, Record] | BaseException | None] = asyncio.Queue()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.total: int | None = None
        self.warm_up = warm_up
        self.held: list[tuple[int, Document]] = []
        self.scoring, self.scored = scoring, scored

    async def results(self, records: Records) -> AsyncIterator[Record]:
        self._spawn(self._read(records))
        emitted = 0
        waiting: dict[int, Record] = {}
        while self.total is None or emitted < self.total:
            item = await self.finished.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                continue
            if not self.ordered:
                yield item[1]
                emitted += 1
                self.slots.give()
                continue
            waiting[item[0]] = item[1]
            while emitted in waiting:
                yield waiting.pop(emitted)
                emitted += 1
                self.slots.give()

    async def _read(self, records: Records) -> None:
        seq = 0
        async for chunk in self._chunks(records):
            for item in chunk:
                doc = to_document(item, seq + 1, id_field=self.id_field, text_field=self.text_field)
                self._start(seq, doc)
                seq += 1
            if len(self.held) >= WARM_UP_DOCUMENTS:
                await self._warmed()
        if self.held:
            await self._warmed()
        self.total = seq
        self.finished.put_nowait(None)

    async def _chunks(self, records: Records) -> AsyncIterator[list[Any]]:
        """The input's items, each chunk as many as there were free slots for."""
        if isinstance(records, AsyncIterable):
            async for item in records:
                await self.slots.take(1)
                yield [item]
            return
        items = iter(records)
        while True:
            room = await self.slots.take(READ_CHUNK)
            chunk = await asyncio.to_thread(_take, items, room)
            self.slots.give(room - len(chunk))
            yield chunk
            if len(chunk) < room:
                return

    def _start(self, seq: int, doc: Document) -> None:
        if self.warm_up is not None:
            self.held.append((seq, doc))
            return
        task = self._spawn(self._label(doc))
        task.add_done_callback(functools.partial(self._landed, seq))

    async def _warmed(self) -> None:
        """Warm up on the held documents' texts, then start them."""
        assert self.warm_up is not None
        warm_up, self.warm_up = self.warm_up, None
        texts = [d.text for _, d in self.held if d.error is None and d.text]
        await warm_up(texts[:WARM_UP_DOCUMENTS])
        held, self.held = self.held, []
        for seq, doc in held:
            self._start(seq, doc)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(self._crashed)
        return task

    def _crashed(self, task: asyncio.Task[Any]) -> None:
        # Not a document's problem (the input iterator raised, or a bug): end the run with it.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.finished.put_nowait(exc)

    def _landed(self, seq: int, task: asyncio.Task[Record]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.finished.put_nowait((seq, task.result()))

    async def _label(self, doc: Document) -> Record:
        if doc.error is not None:
            return _failed(doc, doc.error)
        text = doc.text or ""
        key = ""
        try:
            # The text is checked (an empty one is an InputError) before a host is taken. The
            # key costs a whole prompt build, so it is made only when there is a cache to ask.
            if self.cache is None:
                check_text(text)
            else:
                key = self.keys.cache_key(text, self.schema)
                if self.scoring is not None:
                    key = salted_key(key, self.scoring())
        except ExtractError as exc:
            return _failed(doc, exc)
        if self.cache is not None and (hit := self._cached(key)) is not None:
            value, said = hit
            return Record(
                doc.id,
                True,
                value,
                fields=doc.fields,
                cached=True,
                line=doc.line,
                chunks=said.chunks,
                spans=tuple(self.schema.ground(value, text)[0]),
                confidence=said.confidence,
                samples=said.samples,
                scores=said.scores,
            )
        host = None
        for round_ in range(1, self.rounds + 1):
            host = await self.pool.acquire(avoid=host)
            started = asyncio.get_running_loop().time()
            try:
                retry = self.pool.policy(host, self.retry)
                result = await host.extractor.extract(text, self.schema, retry=retry)
            except TransportError as exc:
                self.pool.note(host, exc)
                if round_ == self.rounds:
                    return _failed(doc, exc)
                continue
            except ExtractError as exc:
                self.pool.answered(host, *_timing(exc, started))
                return _failed(doc, exc)
            else:
                self.pool.answered(host, *_timing(result, started))
            finally:
                self.pool.release(host)
            scores = distributions(result.choices, result.confidence)
            if self.cache is not None:
                said = Report(result.confidence, scores, result.samples, result.chunks)
                self.cache.put(key, result.data(), said.to_dict())
            attempts, usage = len(result.attempts), result.usage
            return Record(
                doc.id,
                True,
                result.value,
                None,
                attempts,
                usage,
                doc.fields,
                line=doc.line,
                chunks=result.chunks,
                spans=result.spans,
                confidence=result.confidence,
                samples=result.samples,
                scores=scores,
                format_fallback=format_fallback(result.attempts),
            )
        raise AssertionError("unreachable: the last round returns")  # pragma: no cover

    def _cached(self, key: str) -> tuple[Any, Report] | None:
        """The value and report cached under ``key``; None when there is none, the value no
        longer validates, or the run wants confidence and the entry kept no report (written
        by an older extract)."""
        assert self.cache is not None
        try:
            data, report = self.cache.entry(key)
            value = self.schema.validate(data)
        except (KeyError, OutputError):
            return None
        said = Report.from_dict(report)
        if said is None:
            if self.scored:
                return None
            said = Report()
        return value, said

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _take(items: Iterator[Any], count: int) -> list[Any]:
    return list(itertools.islice(items, count))


def _timing(outcome: Extraction[Any] | ExtractError, started: float) -> tuple[float | None, ...]:
    """Per model call: the latency, and the server's compute time when it reported one.

    Both None when there were no model calls or retry waits blur the latency.
    """
    attempts = outcome.attempts if isinstance(outcome, Extraction | ExtractionFailed) else ()
    if not attempts or any(a.transport_retries for a in attempts):
        return None, None
    calls = len(attempts)
    # The server's own total (it includes waiting for a slot, i.e. queueing) when it reports
    # one: the client's wall clock would also count this process's CPU starvation as queueing.
    totals = [a.metrics.total_duration or 0 for a in attempts]
    if all(totals):
        seconds = sum(totals) / 1e9 / calls
    else:
        seconds = (asyncio.get_running_loop().time() - started) / calls
    computed = [
        (a.metrics.prompt_eval_duration or 0) + (a.metrics.eval_duration or 0) for a in attempts
    ]
    return seconds, (sum(computed) / 1e9 / calls if all(computed) else None)
