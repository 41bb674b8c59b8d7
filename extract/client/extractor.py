"""``Extractor`` and ``AsyncExtractor``: two thin drivers of one attempt flow.

Everything both share lives in ``calls.Planner`` (argument merging, request planning from the
field table, format choice, server facts, priors, chunks and samples) and in
``core.flow.AttemptFlow`` (decode, validate, re-ask). The drivers differ only where they wait:
they send, feed streamed text to the flow, and on a transport failure ask ``Backoff`` for the
policy's pause.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar, Unpack, overload

import httpx
from pydantic import BaseModel

from ..core.result import Extraction, Partial
from ..core.wire import GenerateRequest, GenerateResult
from ..errors import ExtractionFailed, OutputError, TransportError
from .backoff import Backoff
from .calls import Call, CallOptions, Event, Planner
from .combine import calibrated, merged, pieces, sample_options, voted
from .transport import AsyncTransport, Transport

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class Extractor(Planner):
    """Extract validated JSON from documents with an Ollama model (synchronous).

    ``model`` falls back to ``EXTRACT_MODEL``; ``host`` to ``OLLAMA_HOST``, then
    ``http://127.0.0.1:11434``. Keyword options (``format``, ``max_attempts``, ``retry``,
    ``options``, ...) set defaults that each call can override. For many documents, see
    ``extract.Labeling``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        host: str | None = None,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[CallOptions],
    ) -> None:
        super().__init__(model, host, api_key, options)
        self.transport = Transport(self.settings, transport=transport)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @overload
    def extract(
        self, text: str, schema: type[M], **options: Unpack[CallOptions]
    ) -> Extraction[M]: ...
    @overload
    def extract(
        self, text: str, schema: Any, **options: Unpack[CallOptions]
    ) -> Extraction[Any]: ...
    def extract(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> Extraction[Any]:
        """Extract one value from ``text`` that validates against ``schema``.

        ``schema`` is a Pydantic model class, a JSON Schema dict, a bundled schema name or a
        path to a .json file. Raises ExtractionFailed when every attempt's reply was unusable,
        TransportError when the server stayed unreachable, RequestRejected (ModelNotFound,
        BadRequest) at once, and SchemaError, InputError or ConfigError before any request.
        """
        call = self._plan(text, schema, options)
        if call.chunk is not None:
            self._facts(call)
            if (
                parts_of := pieces(call, self.num_ctx(call.request.get("options", {})))
            ) is not None:
                each: CallOptions = {**options, "chunk": None}
                parts = [self.extract(piece.text, schema, **each) for piece in parts_of]
                return merged(call, parts, self.model, self.settings.host)
        if call.samples > 1:
            samples: list[Extraction[Any]] = []
            failure: ExtractionFailed | None = None
            for i in range(call.samples):
                try:
                    samples.append(self.extract(text, schema, **sample_options(call, options, i)))
                except ExtractionFailed as exc:
                    failure = exc
            return voted(call, samples, failure, self.model, self.settings.host)
        for event in self._events(call, partials=False):
            if isinstance(event, Extraction):
                return event
        raise AssertionError("the attempt flow ended without a result")  # pragma: no cover

    def preview(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> GenerateRequest:
        """The exact request the first attempt at ``text`` would send.

        The server is asked for its version and the model's facts, as a call does; nothing is
        generated. Raises as ``extract`` does before a request.
        """
        call = self._plan(text, schema, options)
        self._facts(call)
        return self._next_request(self._flow(call), call, partials=False)

    def stream(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> Iterator[Event]:
        """Like ``extract``, but yield ``Partial`` values as the reply streams, an
        ``AttemptFailed`` before each re-ask, and finally the ``Extraction``. Raises as
        ``extract`` does."""
        yield from self._events(self._plan(text, schema, options), partials=True)

    def _fetch(self, call: Call, fetch: Callable[[], R]) -> R:
        """``fetch()`` under the call's transport retries."""
        backoff = Backoff(call.retry)
        while True:
            try:
                return fetch()
            except TransportError as exc:
                backoff.wait(exc)

    def _facts(self, call: Call) -> None:
        for fact in self._missing(call):
            self._learn(
                fact, self._fetch(call, functools.partial(self.transport.fact, fact, self.model))
            )

    def _calibrate(self, call: Call, done: Extraction[Any]) -> Extraction[Any]:
        """``done`` calibrated; the content-free prior is asked for once, and only of a server
        whose reply carried log-probabilities."""
        key = self._prior_key(call)
        if key is None or not done.choices:
            return done
        if (prior := self.priors.get(key)) is None:
            request = self._content_free(call)
            try:
                reply = self._fetch(call, lambda: self.transport.generate(request))
            except OutputError:
                reply = None
            prior = self._learn_prior(key, call, reply)
        return calibrated(call, done, prior)

    def _events(self, call: Call, *, partials: bool) -> Iterator[Event]:
        self._facts(call)
        flow = self._flow(call)
        while True:
            request, backoff = self._next_request(flow, call, partials), Backoff(call.retry)
            reply: GenerateResult | OutputError | None = None
            while reply is None:
                flow.begin()
                items = self.transport.stream_generate(request, timeout=call.timeout)
                try:
                    for item in items:
                        if isinstance(item, GenerateResult):
                            reply = item
                        elif (value := flow.on_text(*item, partials)) is not None:
                            yield Partial(value, flow.number)
                except OutputError as exc:
                    reply = exc
                except TransportError as exc:
                    backoff.wait(exc)
                finally:
                    items.close()
            event = self._outcome(call, flow, reply, backoff.retries)
            if isinstance(event, Extraction):
                yield self._calibrate(call, event)
                return
            yield event


class AsyncExtractor(Planner):
    """The asyncio twin of ``Extractor``; use ``async with`` or ``await aclose()``."""

    def __init__(
        self,
        model: str | None = None,
        *,
        host: str | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[CallOptions],
    ) -> None:
        super().__init__(model, host, api_key, options)
        self.transport = AsyncTransport(self.settings, transport=transport)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> AsyncExtractor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @overload
    async def extract(
        self, text: str, schema: type[M], **options: Unpack[CallOptions]
    ) -> Extraction[M]: ...
    @overload
    async def extract(
        self, text: str, schema: Any, **options: Unpack[CallOptions]
    ) -> Extraction[Any]: ...
    async def extract(
        self, text: str, schema: Any, **options: Unpack[CallOptions]
    ) -> Extraction[Any]:
        """Extract one value from ``text``; see ``Extractor.extract``."""
        call = self._plan(text, schema, options)
        if call.chunk is not None:
            await self._facts(call)
            if (
                parts_of := pieces(call, self.num_ctx(call.request.get("options", {})))
            ) is not None:
                each: CallOptions = {**options, "chunk": None}
                parts = [await self.extract(piece.text, schema, **each) for piece in parts_of]
                return merged(call, parts, self.model, self.settings.host)
        if call.samples > 1:
            samples: list[Extraction[Any]] = []
            failure: ExtractionFailed | None = None
            for i in range(call.samples):
                try:
                    sample = sample_options(call, options, i)
                    samples.append(await self.extract(text, schema, **sample))
                except ExtractionFailed as exc:
                    failure = exc
            return voted(call, samples, failure, self.model, self.settings.host)
        async for event in self._events(call, partials=False):
            if isinstance(event, Extraction):
                return event
        raise AssertionError("the attempt flow ended without a result")  # pragma: no cover

    async def stream(
        self, text: str, schema: Any, **options: Unpack[CallOptions]
    ) -> AsyncIterator[Event]:
        """The asyncio twin of ``Extractor.stream``."""
        async for event in self._events(self._plan(text, schema, options), partials=True):
            yield event

    async def _fetch(self, call: Call, fetch: Callable[[], Awaitable[R]]) -> R:
        """``await fetch()`` under the call's transport retries."""
        backoff = Backoff(call.retry)
        while True:
            try:
                return await fetch()
            except TransportError as exc:
                await backoff.await_wait(exc)

    async def _facts(self, call: Call) -> None:
        for fact in self._missing(call):
            answer = await self._fetch(
                call, functools.partial(self.transport.fact, fact, self.model)
            )
            self._learn(fact, answer)

    async def _calibrate(self, call: Call, done: Extraction[Any]) -> Extraction[Any]:
        """The asyncio twin of ``Extractor._calibrate``."""
        key = self._prior_key(call)
        if key is None or not done.choices:
            return done
        if (prior := self.priors.get(key)) is None:
            request = self._content_free(call)
            try:
                reply = await self._fetch(call, lambda: self.transport.generate(request))
            except OutputError:
                reply = None
            prior = self._learn_prior(key, call, reply)
        return calibrated(call, done, prior)

    async def _events(self, call: Call, *, partials: bool) -> AsyncIterator[Event]:
        await self._facts(call)
        flow = self._flow(call)
        while True:
            request, backoff = self._next_request(flow, call, partials), Backoff(call.retry)
            reply: GenerateResult | OutputError | None = None
            while reply is None:
                flow.begin()
                items = self.transport.stream_generate(request, timeout=call.timeout)
                try:
                    async for item in items:
                        if isinstance(item, GenerateResult):
                            reply = item
                        elif (value := flow.on_text(*item, partials)) is not None:
                            yield Partial(value, flow.number)
                except OutputError as exc:
                    reply = exc
                except TransportError as exc:
                    await backoff.await_wait(exc)
                finally:
                    await items.aclose()
            event = self._outcome(call, flow, reply, backoff.retries)
            if isinstance(event, Extraction):
                yield await self._calibrate(call, event)
                return
            yield event
