"""``Extractor`` and ``AsyncExtractor``: the only sync/async twins.

Everything both share — argument merging, request building, format choice, the attempt
flow — lives in ``_Common`` and ``_flow``; the two classes differ only where they wait.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, Unpack, cast, overload

import httpx
import tenacity
from pydantic import BaseModel

from ._config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_NUM_PREDICT,
    DEFAULT_TRANSPORT_ATTEMPTS,
    MIN_TIMED_TOKENS,
    STREAM_WORTH_SECONDS,
    Settings,
    TimeoutArg,
    resolve_model,
    resolve_timeout,
)
from ._flow import AttemptFlow, choose_format
from ._images import ImageInput, encode_images
from ._prompt import build_prompt
from ._result import AttemptFailed, Extraction, Partial
from ._transport import AsyncTransport, Transport
from ._wire import GenerateRequest, GenerateResult, Think
from .errors import (
    BadRequest,
    ConfigError,
    InputError,
    OutputError,
    RequestRejected,
    TransportError,
)
from .schema import Schema

if TYPE_CHECKING:
    from .batch import Record

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
FormatMode = Literal["auto", "json", "schema"] | None
Retry = int | tenacity.Retrying | tenacity.AsyncRetrying
Event = Partial[Any] | AttemptFailed | Extraction[Any]

# A server without /api/version predates schema formats.
LEGACY_VERSION = "0.1.0"

_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        (
            "num_keep",
            "seed",
            "num_predict",
            "top_k",
            "repeat_last_n",
            "num_ctx",
            "num_batch",
            "num_gpu",
            "main_gpu",
            "num_thread",
        ),
        (int,),
    ),
    **dict.fromkeys(
        (
            "top_p",
            "min_p",
            "typical_p",
            "temperature",
            "repeat_penalty",
            "presence_penalty",
            "frequency_penalty",
        ),
        (int, float),
    ),
}


class CallOptions(TypedDict, total=False):
    """What can be set per Extractor and overridden per call."""

    format: FormatMode
    max_attempts: int
    retry: Retry
    instructions: str | None
    system: str | None
    images: Sequence[ImageInput] | None
    options: Mapping[str, Any] | None
    keep_alive: float | str | None
    think: Think | None
    template: str | None
    raw: bool | None
    context: Sequence[int] | None
    truncate: bool | None
    stream: bool | None
    timeout: TimeoutArg


@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    """One extract() call, planned: everything but what the server must tell us."""

    schema: Schema
    request: GenerateRequest
    format_mode: FormatMode
    think_given: bool
    has_images: bool
    max_attempts: int
    retry: Retry
    stream: bool | None
    timeout: httpx.Timeout | None


class _Common:
    _is_async = False

    def __init__(
        self, model: str | None, host: str | None, api_key: str | None, options: CallOptions
    ) -> None:
        self.model = resolve_model(model)
        self.settings = Settings.resolve(host, api_key=api_key, timeout=options.get("timeout"))
        self._defaults: CallOptions = {"format": "auto", **options}
        # Check the defaults now rather than on the first document.
        if self._defaults.get("format") not in ("auto", "json", "schema", None):
            raise ConfigError(
                f"format={options.get('format')!r}: use 'auto', 'json', 'schema' or None"
            )
        _check_options(options.get("options") or {})
        if (keep_alive := options.get("keep_alive")) is not None:
            _check_keep_alive(keep_alive)
        _retrying(options.get("retry", DEFAULT_TRANSPORT_ATTEMPTS), is_async=self._is_async)
        self._versions: dict[str, str] = {}
        self._capabilities: dict[str, list[str] | None] = {}
        # Seconds the server took per generated token in its latest timed reply.
        self._token_seconds: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, host={self.settings.host!r})"

    def _plan(self, text: str, schema: Any, overrides: CallOptions) -> _Call:
        opts: CallOptions = {**self._defaults, **overrides}
        merged = {**(self._defaults.get("options") or {}), **(overrides.get("options") or {})}
        options = _check_options(merged)
        options.setdefault("num_predict", DEFAULT_NUM_PREDICT)
        loaded = Schema.load(schema)
        prompt = build_prompt(check_text(text), loaded, instructions=opts.get("instructions"))
        request: GenerateRequest = {
            "model": self.model,
            "prompt": prompt,
            "options": options,
        }
        if (system := opts.get("system")) is not None:
            request["system"] = system
        if (template := opts.get("template")) is not None:
            request["template"] = template
        if (raw := opts.get("raw")) is not None:
            request["raw"] = raw
        if (truncate := opts.get("truncate")) is not None:
            request["truncate"] = truncate
        if (keep_alive := opts.get("keep_alive")) is not None:
            request["keep_alive"] = _check_keep_alive(keep_alive)
        if (think := opts.get("think")) is not None:
            request["think"] = think
        if (context := opts.get("context")) is not None:
            request["context"] = list(context)
        if images := opts.get("images"):
            request["images"] = encode_images(images)
        if request.get("raw") and any(k in request for k in ("system", "template", "context")):
            raise ConfigError("raw=True cannot be combined with system, template or context")
        timeout = overrides.get("timeout")
        stream = opts.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise ConfigError(f"stream={stream!r}: use True, False or None (decide by speed)")
        return _Call(
            schema=loaded,
            request=request,
            format_mode=opts.get("format", "auto"),
            think_given="think" in request,
            has_images="images" in request,
            max_attempts=opts.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
            retry=opts.get("retry", DEFAULT_TRANSPORT_ATTEMPTS),
            stream=stream,
            timeout=resolve_timeout(timeout) if timeout is not None else None,
        )

    def _finish(self, call: _Call, version: str, capabilities: list[str] | None) -> AttemptFlow:
        """Apply what the server said (version, model capabilities) and start the flow."""
        request = call.request.copy()
        fmt = choose_format(call.format_mode, call.schema, version)
        if fmt is not None:
            request["format"] = fmt
        caps = capabilities or []
        if not call.think_given and "thinking" in caps:
            # A schema constrains from the first token; with thinking on, the JSON would
            # land in `thinking` and `response` would be empty.
            request["think"] = False
        if call.has_images and capabilities is not None and "vision" not in caps:
            raise BadRequest(
                f"model {self.model!r} cannot read images (no 'vision' capability); "
                "use a vision model such as llava or llama3.2-vision",
                status=400,
                host=self.settings.host,
                model=self.model,
            )
        return AttemptFlow(
            schema=call.schema,
            request=request,
            max_attempts=call.max_attempts,
            host=self.settings.host,
        )

    def cache_key(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> str:
        """A content address for this call: model, final prompt, schema, format and options.

        Two calls with the same key send the same request, so a validated value can be reused.
        """
        call = self._plan(text, schema, options)
        request = {k: v for k, v in call.request.items() if k not in ("stream", "keep_alive")}
        material = {
            "request": request,
            "schema": call.schema.fingerprint,
            "format": call.format_mode,
        }
        blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def _streams(self, call: _Call, *, partials: bool) -> bool:
        """Whether to stream this attempt: always for partials or when told; otherwise only
        while a runaway reply could cost the server ``STREAM_WORTH_SECONDS`` or more."""
        if partials and call.stream is False:
            raise ConfigError("stream=False gives no partial values; call extract() instead")
        if partials or call.stream is not None:
            return partials or bool(call.stream)
        budget = call.request.get("options", {}).get("num_predict")
        if self._token_seconds is None or not isinstance(budget, int) or budget < 0:
            return True
        return budget * self._token_seconds >= STREAM_WORTH_SECONDS

    def _timed(self, reply: GenerateResult | OutputError) -> None:
        """Learn the server's speed from a reply's counters."""
        if isinstance(reply, GenerateResult):
            tokens, nanos = reply.metrics.eval_count, reply.metrics.eval_duration
            if tokens and nanos and tokens >= MIN_TIMED_TOKENS:
                self._token_seconds = nanos / tokens / 1e9

    def _needs_info(self) -> tuple[bool, bool]:
        return self.settings.host not in self._versions, self.model not in self._capabilities

    @staticmethod
    def _capabilities_of(show: dict[str, Any]) -> list[str] | None:
        caps = show.get("capabilities")
        return [str(c) for c in caps] if isinstance(caps, list) else None


def _retrying(retry: Retry, *, is_async: bool) -> tenacity.BaseRetrying:
    if isinstance(retry, tenacity.BaseRetrying):
        if is_async != isinstance(retry, tenacity.AsyncRetrying):
            kind = "tenacity.AsyncRetrying" if is_async else "tenacity.Retrying"
            raise ConfigError(f"retry: this extractor needs a {kind}")
        return retry.copy()
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
        raise ConfigError(f"retry={retry!r}: give a number of tries (≥ 1) or a tenacity Retrying")
    # A Retrying holds the state of one loop, so each call gets a copy of the shared policy.
    return _policy(retry, is_async).copy()


@functools.lru_cache(maxsize=16)
def _policy(tries: int, is_async: bool) -> tenacity.BaseRetrying:
    cls = tenacity.AsyncRetrying if is_async else tenacity.Retrying
    return cls(
        stop=tenacity.stop_after_attempt(tries),
        wait=tenacity.wait_exponential(multiplier=0.5, max=20) + tenacity.wait_random(0, 0.5),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )


def check_text(text: object) -> str:
    """The document as str (UTF-8 bytes are decoded); InputError when it cannot be sent."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"the document is not UTF-8 (byte {exc.start}); decode it before extracting"
            ) from None
    if not isinstance(text, str):
        raise InputError(f"the document must be text, not {type(text).__name__}")
    if not text.strip():
        raise InputError("the document is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"the document holds a character that is not valid Unicode at {exc.start} "
            "(a lone surrogate); decode the source with errors='replace'"
        ) from None
    return text


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Catch wrong option types here: Ollama answers them with a 500 that looks retryable."""
    for key, value in options.items():
        expected = _OPTION_TYPES.get(key)
        if expected and (isinstance(value, bool) or not isinstance(value, expected)):
            names = " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"option {key!r} must be {names}, not {value!r}")
        if key == "stop" and not (
            isinstance(value, list | tuple) and all(isinstance(s, str) for s in value)
        ):
            raise ConfigError(f"option 'stop' must be a list of strings, not {value!r}")
    return dict(options)


def _check_keep_alive(value: float | str) -> float | str:
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        raise ConfigError(
            f"keep_alive={value!r}: a string needs a unit ('{value}s', '5m'); or pass a number"
        )
    return value


class Extractor(_Common):
    """Extract validated JSON from documents with an Ollama model (synchronous).

    ``model`` falls back to ``EXTRACT_MODEL``; ``host`` to ``OLLAMA_HOST``, then
    ``http://127.0.0.1:11434``. Keyword options (``format``, ``max_attempts``, ``retry``,
    ``options``, ...) set defaults that each call can override.
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
        self._transport = Transport(self.settings, transport=transport)

    def close(self) -> None:
        self._transport.close()

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
        for event in self._events(self._plan(text, schema, options), partials=False):
            if isinstance(event, Extraction):
                return event
        raise AssertionError("the attempt flow ended without a result")  # pragma: no cover

    def extract_many(self, records: Iterable[Any], schema: Any, **options: Any) -> Iterator[Record]:
        """Extract from every record, one ``Record`` per input, in input order by default.

        Arguments as ``extract.batch.extract_many`` (hosts, concurrency, ordered, id_field,
        text_field, cache, and call options); per-document failures become records.
        """
        from .batch import extract_many

        return extract_many(self, records, schema, **options)

    def stream(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> Iterator[Event]:
        """Like ``extract``, but yield ``Partial`` values as the reply streams, an
        ``AttemptFailed`` before each re-ask, and finally the ``Extraction``. Raises as
        ``extract`` does."""
        yield from self._events(self._plan(text, schema, options), partials=True)

    def _start(self, call: _Call) -> AttemptFlow:
        need_version, need_show = self._needs_info()
        if need_version and call.format_mode == "auto":
            self._versions[self.settings.host] = self._retried(call, self._version)
        if need_show:
            show = self._retried(call, lambda: self._transport.show(self.model))
            self._capabilities[self.model] = self._capabilities_of(show)
        return self._finish(
            call, self._versions.get(self.settings.host, ""), self._capabilities[self.model]
        )

    def _version(self) -> str:
        try:
            return self._transport.version()
        except RequestRejected:
            return LEGACY_VERSION

    @staticmethod
    def _retried(call: _Call, fn: Callable[[], R]) -> R:
        """``fn()`` under the call's transport retries (the server facts, asked once)."""
        for attempt in cast(tenacity.Retrying, _retrying(call.retry, is_async=False)):
            with attempt:
                return fn()
        raise AssertionError("tenacity stopped without raising")  # pragma: no cover

    def _events(self, call: _Call, *, partials: bool) -> Iterator[Event]:
        flow = self._start(call)
        while True:
            request = flow.request()
            request["stream"] = self._streams(call, partials=partials)
            reply: GenerateResult | OutputError | None = None
            for attempt in cast(tenacity.Retrying, _retrying(call.retry, is_async=False)):
                with attempt:
                    flow.begin()
                    items = self._transport.stream_generate(request, timeout=call.timeout)
                    try:
                        for item in items:
                            if isinstance(item, GenerateResult):
                                reply = item
                                break
                            flow.on_text(*item)
                            if partials and (value := flow.partial()) is not None:
                                yield Partial(value, flow.number)
                    except OutputError as exc:
                        reply = exc
                    finally:
                        items.close()
            retries = attempt.retry_state.attempt_number - 1
            assert reply is not None
            self._timed(reply)
            if (done := flow.record(reply, transport_retries=retries)) is not None:
                yield done
                return
            yield AttemptFailed(flow.attempts[-1])


class AsyncExtractor(_Common):
    """The asyncio twin of ``Extractor``; use ``async with`` or ``await aclose()``."""

    _is_async = True

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
        self._transport = AsyncTransport(self.settings, transport=transport)

    async def aclose(self) -> None:
        await self._transport.aclose()

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
        async for event in self._events(self._plan(text, schema, options), partials=False):
            if isinstance(event, Extraction):
                return event
        raise AssertionError("the attempt flow ended without a result")  # pragma: no cover

    async def extract_many(
        self, records: Iterable[Any] | AsyncIterable[Any], schema: Any, **options: Any
    ) -> AsyncIterator[Record]:
        """The asyncio twin of ``Extractor.extract_many``; see ``extract.batch.aextract_many``."""
        from .batch import aextract_many

        async for record in aextract_many(self, records, schema, **options):
            yield record

    async def stream(
        self, text: str, schema: Any, **options: Unpack[CallOptions]
    ) -> AsyncIterator[Event]:
        """The asyncio twin of ``Extractor.stream``."""
        async for event in self._events(self._plan(text, schema, options), partials=True):
            yield event

    async def _start(self, call: _Call) -> AttemptFlow:
        need_version, need_show = self._needs_info()
        if need_version and call.format_mode == "auto":
            self._versions[self.settings.host] = await self._retried(call, self._version)
        if need_show:
            show = await self._retried(call, lambda: self._transport.show(self.model))
            self._capabilities[self.model] = self._capabilities_of(show)
        return self._finish(
            call, self._versions.get(self.settings.host, ""), self._capabilities[self.model]
        )

    async def _version(self) -> str:
        try:
            return await self._transport.version()
        except RequestRejected:
            return LEGACY_VERSION

    @staticmethod
    async def _retried(call: _Call, fn: Callable[[], Awaitable[R]]) -> R:
        """``await fn()`` under the call's transport retries (the server facts, asked once)."""
        async for attempt in cast(tenacity.AsyncRetrying, _retrying(call.retry, is_async=True)):
            with attempt:
                return await fn()
        raise AssertionError("tenacity stopped without raising")  # pragma: no cover

    async def _events(self, call: _Call, *, partials: bool) -> AsyncIterator[Event]:
        flow = await self._start(call)
        while True:
            request = flow.request()
            request["stream"] = self._streams(call, partials=partials)
            reply: GenerateResult | OutputError | None = None
            async for attempt in cast(tenacity.AsyncRetrying, _retrying(call.retry, is_async=True)):
                with attempt:
                    flow.begin()
                    items = self._transport.stream_generate(request, timeout=call.timeout)
                    try:
                        async for item in items:
                            if isinstance(item, GenerateResult):
                                reply = item
                                break
                            flow.on_text(*item)
                            if partials and (value := flow.partial()) is not None:
                                yield Partial(value, flow.number)
                    except OutputError as exc:
                        reply = exc
                    finally:
                        await items.aclose()
            retries = attempt.retry_state.attempt_number - 1
            assert reply is not None
            self._timed(reply)
            if (done := flow.record(reply, transport_retries=retries)) is not None:
                yield done
                return
            yield AttemptFailed(flow.attempts[-1])
