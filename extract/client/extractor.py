"""``Extractor`` and ``AsyncExtractor``: two thin drivers of one extraction protocol.

Each holds a private ``calls.Planner``, where everything both share lives (argument merging,
request planning from the field table, format choice, server facts, priors), and runs
``protocol.steps`` (the steps of one extraction: facts, pieces, samples, the attempt loop,
calibration) and ``core.flow.AttemptFlow`` (decode, validate, re-ask) over a backend
(``backends``). The drivers differ only where they wait: they perform each step, and in the
attempt loop they send, feed streamed text to the flow, and on a transport failure ask
``Backoff`` for the policy's pause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import Any, TypeVar, Unpack, overload

import httpx
from pydantic import BaseModel

from ..core.calibration import LearnedPrior, PriorCache
from ..core.result import Extraction, Partial
from ..core.wire import GenerateRequest, GenerateResult
from ..errors import BadRequest, ExtractionFailed, OutputError, TransportError
from .backends import BackendName, open_async_backend, open_backend
from .backoff import Backoff
from .calls import Call, CallOptions, Event, Planner
from .config import Settings
from .protocol import Ask, Continue, Nested, Step, facts, learn_prior, settle, steps

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
# What a step may raise that the protocol handles (a failed sample, an unusable prior reply).
_THROWN_BACK = (OutputError, ExtractionFailed)


class _Driver:
    """What both drivers show of their planner: the model, the host, the priors."""

    _planner: Planner

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, host={self.host!r})"

    @property
    def model(self) -> str:
        """The model every call asks for."""
        return self._planner.model

    @property
    def host(self) -> str:
        """The server's base URL."""
        return self._planner.settings.host

    @property
    def settings(self) -> Settings:
        """Where and how the server is reached (host, API key, timeout)."""
        return self._planner.settings

    @property
    def priors(self) -> PriorCache:
        """The content-free priors learned per model, prompt head and schema (calibration)."""
        return self._planner.priors

    @priors.setter
    def priors(self, cache: PriorCache) -> None:
        self._planner.priors = cache

    def cache_key(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> str:
        """A content address for this call: model, final prompt, schema, format and options.

        Two calls with the same key send the same request, so a validated value can be reused.
        Raises as planning a call does (InputError, SchemaError, ConfigError).
        """
        return self._planner.cache_key(text, schema, **options)


class Extractor(_Driver):
    """Extract validated JSON from documents with a served model (synchronous).

    ``backend`` is the server's kind: ``"ollama"`` (/api/generate) or ``"openai"``
    (/v1/chat/completions: vLLM, SGLang, llama.cpp's server, LM Studio). ``model`` falls back
    to ``EXTRACT_MODEL``; ``host`` to ``OLLAMA_HOST``, then ``http://127.0.0.1:11434`` (for
    openai: ``OPENAI_BASE_URL``, then ``http://127.0.0.1:8000``); ``api_key`` to
    ``OLLAMA_API_KEY`` (``OPENAI_API_KEY``), sent as a Bearer token. Keyword options
    (``format``, ``max_attempts``, ``retry``, ``options``, ...) set defaults that each call
    can override. For many documents, see ``extract.Labeling``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        host: str | None = None,
        api_key: str | None = None,
        backend: BackendName = "ollama",
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[CallOptions],
    ) -> None:
        self._planner = Planner(model, host, api_key, options, backend)
        self._backend = open_backend(self._planner.backend, self._planner.settings, transport)

    def close(self) -> None:
        """Close the connections to the server."""
        self._backend.close()

    def model_digest(self) -> str | None:
        """What identifies the model's weights on the server (Ollama's digest), for telling
        whether a labeling config was tuned on this model; None where the server lists none.
        Raises ModelNotFound or TransportError as ``check_model`` does."""
        return self._backend.model_digest(self.model)

    def check_model(self) -> None:
        """Ask the server for what calls need to know of it and the model (version,
        capabilities, context), once: later calls reuse it. Raises ModelNotFound when the
        server does not have the model, ConnectError when nothing answers (no retries)."""
        if self._planner.facts is None:
            self._planner.facts = self._backend.facts(self.model)

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
        BadRequest) at once, DocumentTooLong for a prompt the context cannot hold, and
        SchemaError, InputError or ConfigError before any request.
        """
        return self._drive(steps(self._planner, text, schema, options))

    def preview(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> GenerateRequest:
        """The exact request the first attempt at ``text`` would send.

        The server is asked for its version and the model's facts, as a call does; nothing is
        generated. Raises as ``extract`` does before a request.
        """
        call = self._planner.plan(text, schema, options)
        self._drive(facts(self._planner, call))
        call = self._planner.fit(call)
        return self._planner.next_request(self._planner.flow(call), call, partials=False)

    def learn_prior(
        self, texts: Sequence[str], schema: Any, **options: Unpack[CallOptions]
    ) -> LearnedPrior | None:
        """Measure the model's lean on documents like ``texts`` and calibrate later calls with
        it: ``schema``'s choice fields, under the same options, are then decided against this
        in-domain prior instead of the ``N/A`` one (see ``core.calibration``).

        Sends one request per document of random words drawn from ``texts`` (one per four
        texts, 4 to 16: ``core.calibration.domain_documents``). Returns what was learned and
        what it cost; None when these calls are not calibrated (no choice field,
        ``calibrate=False``, a server without log-probabilities). Raises as ``extract`` does
        before a request, and TransportError or RequestRejected when the server fails.
        """
        return self._drive(learn_prior(self._planner, texts, schema, options))

    def stream(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> Iterator[Event]:
        """Like ``extract`` (of a document read whole, without samples), but yield
        ``Partial`` values as the reply streams, an ``AttemptFailed`` before each re-ask, and
        finally the ``Extraction``. Raises as ``extract`` does."""
        call = self._planner.plan(text, schema, options)
        self._drive(facts(self._planner, call))
        call = self._planner.fit(call)
        for event in self._attempts(call, partials=True):
            if isinstance(event, Extraction):
                event = self._drive(settle(self._planner, call, event))
            yield event

    def _drive(self, protocol: Generator[Step, Any, R]) -> R:
        answer: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                step = protocol.throw(thrown) if thrown else protocol.send(answer)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                answer, thrown = self._perform(step), None
            except _THROWN_BACK as exc:
                answer, thrown = None, exc

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Continue):
            backoff = Backoff(step.call.retry)
            while True:
                try:
                    return self._backend.continue_reply(
                        step.request, step.prefill, timeout=step.call.timeout
                    )
                except TransportError as exc:
                    backoff.wait(exc)
                except BadRequest:
                    return None  # the server refuses a begun reply: generate it whole
        if isinstance(step, Ask):
            backoff = Backoff(step.call.retry)
            while True:
                try:
                    if step.facts:
                        return self._backend.facts(self.model)
                    return self._backend.generate(step.request or {})
                except TransportError as exc:
                    backoff.wait(exc)
                except BadRequest as exc:
                    if step.request is None or not self._planner.fall_back(
                        step.call, step.request, exc
                    ):
                        raise
                    step = Ask(step.call, request={**step.request, "format": "json"})
        if isinstance(step, Nested):
            return self.extract(step.text, step.schema, **step.options)
        return next(e for e in self._attempts(step.call, False) if isinstance(e, Extraction))

    def _attempts(self, call: Call, partials: bool) -> Iterator[Event]:
        flow = self._planner.flow(call)
        while True:
            request, backoff = self._planner.next_request(flow, call, partials), Backoff(call.retry)
            reply: GenerateResult | OutputError | None = None
            while reply is None:
                flow.begin()
                items = self._backend.stream_generate(request, timeout=call.timeout)
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
                except BadRequest as exc:
                    if flow.format_fallback is not None or not self._planner.fall_back(
                        call, request, exc
                    ):
                        raise
                    flow.fall_back(exc.message)
                    request = self._planner.next_request(flow, call, partials)
                finally:
                    items.close()
            yield (event := self._planner.outcome(call, flow, reply, backoff.retries))
            if isinstance(event, Extraction):
                return


class AsyncExtractor(_Driver):
    """The asyncio twin of ``Extractor``; use ``async with`` or ``await aclose()``."""

    def __init__(
        self,
        model: str | None = None,
        *,
        host: str | None = None,
        api_key: str | None = None,
        backend: BackendName = "ollama",
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[CallOptions],
    ) -> None:
        self._planner = Planner(model, host, api_key, options, backend)
        self._backend = open_async_backend(self._planner.backend, self._planner.settings, transport)

    async def aclose(self) -> None:
        """Close the connections to the server."""
        await self._backend.aclose()

    async def model_digest(self) -> str | None:
        """The asyncio twin of ``Extractor.model_digest``."""
        return await self._backend.model_digest(self.model)

    async def check_model(self) -> None:
        """The asyncio twin of ``Extractor.check_model``."""
        if self._planner.facts is None:
            self._planner.facts = await self._backend.facts(self.model)

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
        return await self._drive(steps(self._planner, text, schema, options))

    async def learn_prior(
        self, texts: Sequence[str], schema: Any, **options: Unpack[CallOptions]
    ) -> LearnedPrior | None:
        """The asyncio twin of ``Extractor.learn_prior``."""
        return await self._drive(learn_prior(self._planner, texts, schema, options))

    async def stream(
        self, text: str, schema: Any, **options: Unpack[CallOptions]
    ) -> AsyncIterator[Event]:
        """The asyncio twin of ``Extractor.stream``."""
        call = self._planner.plan(text, schema, options)
        await self._drive(facts(self._planner, call))
        call = self._planner.fit(call)
        async for event in self._attempts(call, partials=True):
            if isinstance(event, Extraction):
                event = await self._drive(settle(self._planner, call, event))
            yield event

    async def _drive(self, protocol: Generator[Step, Any, R]) -> R:
        answer: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                step = protocol.throw(thrown) if thrown else protocol.send(answer)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                answer, thrown = await self._perform(step), None
            except _THROWN_BACK as exc:
                answer, thrown = None, exc

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Continue):
            backoff = Backoff(step.call.retry)
            while True:
                try:
                    return await self._backend.continue_reply(
                        step.request, step.prefill, timeout=step.call.timeout
                    )
                except TransportError as exc:
                    await backoff.await_wait(exc)
                except BadRequest:
                    return None  # the server refuses a begun reply: generate it whole
        if isinstance(step, Ask):
            backoff = Backoff(step.call.retry)
            while True:
                try:
                    if step.facts:
                        return await self._backend.facts(self.model)
                    return await self._backend.generate(step.request or {})
                except TransportError as exc:
                    await backoff.await_wait(exc)
                except BadRequest as exc:
                    if step.request is None or not self._planner.fall_back(
                        step.call, step.request, exc
                    ):
                        raise
                    step = Ask(step.call, request={**step.request, "format": "json"})
        if isinstance(step, Nested):
            return await self.extract(step.text, step.schema, **step.options)
        async for event in self._attempts(step.call, False):
            if isinstance(event, Extraction):
                return event
        raise AssertionError("the attempt loop ended without a result")  # pragma: no cover

    async def _attempts(self, call: Call, partials: bool) -> AsyncIterator[Event]:
        flow = self._planner.flow(call)
        while True:
            request, backoff = self._planner.next_request(flow, call, partials), Backoff(call.retry)
            reply: GenerateResult | OutputError | None = None
            while reply is None:
                flow.begin()
                items = self._backend.stream_generate(request, timeout=call.timeout)
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
                except BadRequest as exc:
                    if flow.format_fallback is not None or not self._planner.fall_back(
                        call, request, exc
                    ):
                        raise
                    flow.fall_back(exc.message)
                    request = self._planner.next_request(flow, call, partials)
                finally:
                    await items.aclose()
            yield (event := self._planner.outcome(call, flow, reply, backoff.retries))
            if isinstance(event, Extraction):
                return
