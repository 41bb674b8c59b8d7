"""``Extractor`` and ``AsyncExtractor``: two thin drivers of one attempt flow.

Everything both share lives in ``_Common`` (argument merging, request planning from the field
table, format choice, server facts, stream choice) and in ``core.flow.AttemptFlow`` (decode,
validate, re-ask). The drivers differ only where they wait: they send, feed streamed text to
the flow, and on a transport failure ask ``Backoff`` for the policy's pause.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypedDict, TypeVar, Unpack, overload

import httpx
import tenacity
from pydantic import BaseModel

from ..core import chunking
from ..core.flow import TRUNCATE_FLAG_SINCE, AttemptFlow, choose_format, server_at_least
from ..core.images import ImageInput, encode_images
from ..core.prompt import build_prompt
from ..core.result import AttemptFailed, Extraction, Partial
from ..core.schema import Schema
from ..core.wire import GIVEN_FIELDS, OPTION_KINDS, GenerateRequest, GenerateResult, Think
from ..errors import (
    BadRequest,
    ConfigError,
    DocumentTooLong,
    ExtractionFailed,
    InputError,
    OutputError,
    SchemaMismatch,
    TransportError,
)
from .backoff import Backoff, Retry, check_retry
from .config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_NUM_CTX,
    DEFAULT_NUM_PREDICT,
    DEFAULT_TRANSPORT_ATTEMPTS,
    MIN_TIMED_TOKENS,
    STREAM_WORTH_SECONDS,
    Settings,
    TimeoutArg,
    resolve_model,
    resolve_timeout,
)
from .transport import AsyncTransport, Transport

M = TypeVar("M", bound=BaseModel)
FormatMode = Literal["auto", "json", "schema"] | None
Event = Partial[Any] | AttemptFailed | Extraction[Any]
Fact = Literal["version", "show"]
Chunk = int | Literal["auto"] | None

# Chunking: characters per token assumed when sizing pieces (low, so pieces err on the small
# side), the share of each piece repeated in the next, and the share of the context kept for
# the reply.
CHARS_PER_TOKEN = 3
MIN_CHUNK = 100
CHUNK_OVERLAP = 0.1
REPLY_SHARE = 0.25
_PARAMETER_NUM_CTX = re.compile(r"^num_ctx\s+(\d+)\s*$", re.MULTILINE)

_OPTION_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "float32": (int, float),
    "boolean": (bool,),
}


class CallOptions(TypedDict, total=False):
    """What can be set per Extractor and overridden per call.

    Besides extract's own settings, every request field a caller sets as given (see
    ``core.wire.REQUEST_FIELDS``) is here under its Ollama name.
    """

    format: FormatMode
    max_attempts: int
    retry: Retry
    instructions: str | None
    rendering: Literal["shape", "schema"]
    stream: bool | None
    timeout: TimeoutArg
    options: Mapping[str, Any] | None
    chunk: Chunk
    merge: Callable[[list[Any]], Any] | None
    # Request fields copied as given:
    suffix: str | None
    images: Sequence[ImageInput] | None
    system: str | None
    template: str | None
    context: Sequence[int] | None
    raw: bool | None
    keep_alive: float | str | None
    think: Think | None
    truncate: bool | None
    shift: bool | None
    logprobs: bool | None
    top_logprobs: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    """One extract() call, planned: everything but what the server must tell us."""

    schema: Schema
    request: GenerateRequest
    format_mode: FormatMode
    max_attempts: int
    retry: tenacity.BaseRetrying
    stream: bool | None
    timeout: httpx.Timeout | None
    text: str
    chunk: Chunk = None
    merge: Callable[[list[Any]], Any] | None = None
    truncate_given: bool = False


class _Common:
    def __init__(
        self, model: str | None, host: str | None, api_key: str | None, options: CallOptions
    ) -> None:
        self.model = resolve_model(model)
        self.settings = Settings.resolve(host, api_key=api_key, timeout=options.get("timeout"))
        self.defaults: CallOptions = {"format": "auto", **options}
        # Check the defaults now rather than on the first document.
        if self.defaults.get("format") not in ("auto", "json", "schema", None):
            raise ConfigError(
                f"format={options.get('format')!r}: use 'auto', 'json', 'schema' or None"
            )
        _check_options(options.get("options") or {})
        if (keep_alive := options.get("keep_alive")) is not None:
            _check_keep_alive(keep_alive)
        check_retry(options.get("retry", DEFAULT_TRANSPORT_ATTEMPTS))
        self._version: str | None = None
        self._capabilities: list[str] | None = None
        self._shown = False
        # From /api/show: the context the model was trained for, and its Modelfile's num_ctx.
        self.context_length: int | None = None
        self._modelfile_num_ctx: int | None = None
        # Seconds the server took per generated token in its latest timed reply.
        self._token_seconds: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, host={self.settings.host!r})"

    def _plan(self, text: str, schema: Any, overrides: CallOptions) -> _Call:
        opts: CallOptions = {**self.defaults, **overrides}
        merged = {**(self.defaults.get("options") or {}), **(overrides.get("options") or {})}
        options = _check_options(merged)
        options.setdefault("num_predict", DEFAULT_NUM_PREDICT)
        loaded = Schema.load(schema)
        prompt = build_prompt(
            check_text(text),
            loaded,
            instructions=opts.get("instructions"),
            style=opts.get("rendering", "shape"),
        )
        request: GenerateRequest = {"model": self.model, "prompt": prompt, "options": options}
        given: dict[str, Any] = {}
        for name in GIVEN_FIELDS:
            value = opts.get(name)
            if value is not None:
                given[name] = _GIVEN_CHECKS.get(name, _as_is)(value)
        request.update(given)  # type: ignore[typeddict-item]
        if request.get("raw") and any(k in request for k in ("system", "template", "context")):
            raise ConfigError("raw=True cannot be combined with system, template or context")
        timeout = overrides.get("timeout")
        stream = opts.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise ConfigError(f"stream={stream!r}: use True, False or None (decide by speed)")
        chunk = opts.get("chunk")
        if chunk not in (None, "auto") and (
            isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < MIN_CHUNK
        ):
            raise ConfigError(f"chunk={chunk!r}: give 'auto' or at least {MIN_CHUNK} characters")
        return _Call(
            schema=loaded,
            request=request,
            format_mode=opts.get("format", "auto"),
            max_attempts=opts.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
            retry=check_retry(opts.get("retry", DEFAULT_TRANSPORT_ATTEMPTS)),
            stream=stream,
            timeout=resolve_timeout(timeout) if timeout is not None else None,
            text=text,
            chunk=chunk,
            merge=opts.get("merge"),
            truncate_given="truncate" in request,
        )

    def _missing(self, call: _Call) -> list[Fact]:
        """The server facts this call needs and this extractor has not asked for yet."""
        facts: list[Fact] = []
        if self._version is None:
            facts.append("version")
        if not self._shown:
            facts.append("show")
        return facts

    def _learn(self, fact: Fact, answer: Any) -> None:
        if fact == "version":
            self._version = str(answer)
        else:
            show = answer if isinstance(answer, dict) else {}
            caps = show.get("capabilities")
            self._capabilities = [str(c) for c in caps] if isinstance(caps, list) else None
            info = show.get("model_info")
            trained = [
                v
                for k, v in (info.items() if isinstance(info, dict) else ())
                if k.endswith(".context_length") and type(v) is int and v > 0
            ]
            self.context_length = trained[0] if trained else None
            params = show.get("parameters")
            found = _PARAMETER_NUM_CTX.search(params) if isinstance(params, str) else None
            self._modelfile_num_ctx = int(found.group(1)) if found else None
            self._shown = True

    def num_ctx(self, options: Mapping[str, Any]) -> int:
        """The context a request runs with, as Ollama works it out: the ``num_ctx`` option,
        else the model's Modelfile (``PARAMETER num_ctx``, seen in /api/show), else Ollama's
        default (``DEFAULT_NUM_CTX``); never more than the model was trained for."""
        wanted = options.get("num_ctx") or self._modelfile_num_ctx or DEFAULT_NUM_CTX
        return min(wanted, self.context_length) if self.context_length else int(wanted)

    def _flow(self, call: _Call) -> AttemptFlow:
        """Apply what the server said (version, model capabilities) and start the flow."""
        request = call.request.copy()
        fmt = choose_format(call.format_mode, call.schema, self._version or "")
        if fmt is not None:
            request["format"] = fmt
        if "truncate" not in request and server_at_least(self._version, TRUNCATE_FLAG_SINCE):
            # Ollama cuts an over-long prompt from the middle, instructions first; told not to,
            # it refuses instead, and the refusal is a DocumentTooLong.
            request["truncate"] = False
        caps = self._capabilities or []
        if "think" not in request and "thinking" in caps:
            # A schema constrains from the first token; with thinking on, the JSON would
            # land in `thinking` and `response` would be empty.
            request["think"] = False
        if "images" in request and self._capabilities is not None and "vision" not in caps:
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
            document=call.text,
        )

    def cache_key(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> str:
        """A content address for this call: model, final prompt, schema, format and options.

        Two calls with the same key send the same request, so a validated value can be reused.
        Raises as planning a call does (InputError, SchemaError, ConfigError).
        """
        call = self._plan(text, schema, options)
        request = {k: v for k, v in call.request.items() if k not in ("stream", "keep_alive")}
        material = {
            "request": request,
            "schema": call.schema.fingerprint,
            "format": call.format_mode,
            "chunk": call.chunk,
        }
        blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def _next_request(self, flow: AttemptFlow, call: _Call, partials: bool) -> GenerateRequest:
        """The next attempt's request, streamed always for partials or when told; otherwise only
        while a runaway reply could cost the server ``STREAM_WORTH_SECONDS`` or more."""
        if partials and call.stream is False:
            raise ConfigError("stream=False gives no partial values; call extract() instead")
        request = flow.request()
        if partials or call.stream is not None:
            request["stream"] = partials or bool(call.stream)
            return request
        budget = call.request.get("options", {}).get("num_predict")
        fast = self._token_seconds is not None and isinstance(budget, int) and budget >= 0
        request["stream"] = not fast or budget * self._token_seconds >= STREAM_WORTH_SECONDS  # type: ignore[operator]
        return request

    def _outcome(
        self, call: _Call, flow: AttemptFlow, reply: GenerateResult | OutputError, retries: int
    ) -> Extraction[Any] | AttemptFailed:
        """Record one attempt: the Extraction, or AttemptFailed before a re-ask.

        Raises ExtractionFailed after the last allowed attempt, and DocumentTooLong when the
        server cut the prompt.
        """
        if isinstance(reply, GenerateResult):
            tokens, nanos = reply.metrics.eval_count, reply.metrics.eval_duration
            if tokens and nanos and tokens >= MIN_TIMED_TOKENS:
                self._token_seconds = nanos / tokens / 1e9
            self._check_cut(call, flow.base, reply)
        done = flow.record(reply, transport_retries=retries)
        return done if done is not None else AttemptFailed(flow.attempts[-1])

    def _check_cut(self, call: _Call, request: GenerateRequest, reply: GenerateResult) -> None:
        """A server too old for ``truncate: false`` cuts an over-long prompt silently; the cut
        prompt fills the context exactly (``num_ctx`` tokens, or one less on llama-server), so
        a prompt that filled it was cut. Raises DocumentTooLong then."""
        if call.truncate_given or request.get("truncate") is False:
            return  # the caller chose, or the server refuses rather than cuts
        counted = reply.metrics.prompt_eval_count
        context = self.num_ctx(request.get("options", {}))
        if counted and counted >= context - 1:
            raise DocumentTooLong(
                f"the prompt filled the model's whole context ({counted} of {context} tokens): "
                "the server cut it, dropping part of the instructions or the document; split "
                "the document (chunk=), raise num_ctx, or shorten it",
                chars=len(call.text),
                tokens=counted,
                context=context,
            )

    def _pieces(self, call: _Call) -> list[chunking.Piece] | None:
        """The pieces to read a long document in, or None to read it whole (it fits)."""
        size = call.chunk
        if size == "auto":
            options = call.request.get("options", {})
            context = self.num_ctx(options)
            reply = min(
                int(options.get("num_predict") or DEFAULT_NUM_PREDICT), context * REPLY_SHARE
            )
            head = len(call.request.get("prompt", "")) - len(call.text)
            size = max(int((context - reply) * CHARS_PER_TOKEN) - head, 100)
        if size is None or len(call.text) <= size:
            return None
        return chunking.split(call.text, size, int(size * CHUNK_OVERLAP))

    def _merged(
        self, call: _Call, pieces: list[chunking.Piece], parts: list[Extraction[Any]]
    ) -> Extraction[Any]:
        """One Extraction from the pieces' (``call.merge``, else ``chunking.merge``).

        Raises ExtractionFailed when the merged value breaks the schema.
        """
        attempts = tuple(a for part in parts for a in part.attempts)
        merge = call.merge or chunking.merge
        try:
            value = call.schema.validate(merge([part.data() for part in parts]))
        except SchemaMismatch as exc:
            raise ExtractionFailed(
                f"the values of the {len(pieces)} pieces merge into one that breaks the "
                f"schema: {exc.message}",
                attempts=attempts,
                last_error=exc,
            ) from None
        spans = tuple(call.schema.ground(value, call.text)[0])
        return Extraction(
            value, parts[-1].raw, attempts, self.model, self.settings.host, len(pieces), spans
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
        kind = OPTION_KINDS.get(key)
        if kind == "strings":
            if not (isinstance(value, list | tuple) and all(isinstance(s, str) for s in value)):
                raise ConfigError(f"option {key!r} must be a list of strings, not {value!r}")
            continue
        expected = _OPTION_PYTHON_TYPES.get(kind or "")
        wrong_bool = isinstance(value, bool) and kind != "boolean"
        if expected and (wrong_bool or not isinstance(value, expected)):
            names = " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"option {key!r} must be {names}, not {value!r}")
    return dict(options)


def _check_keep_alive(value: float | str) -> float | str:
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        raise ConfigError(
            f"keep_alive={value!r}: a string needs a unit ('{value}s', '5m'); or pass a number"
        )
    return value


def _as_is(value: Any) -> Any:
    return value


def _images(value: Sequence[ImageInput]) -> list[str] | None:
    return encode_images(value) if value else None


# How a given field's value is checked or converted before it goes into the request.
_GIVEN_CHECKS: dict[str, Any] = {
    "keep_alive": _check_keep_alive,
    "context": list,
    "images": _images,
}


class Extractor(_Common):
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
            if (pieces := self._pieces(call)) is not None:
                each: CallOptions = {**options, "chunk": None}
                parts = [self.extract(piece.text, schema, **each) for piece in pieces]
                return self._merged(call, pieces, parts)
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

    def _facts(self, call: _Call) -> None:
        for fact in self._missing(call):
            backoff = Backoff(call.retry)
            while True:
                try:
                    self._learn(fact, self.transport.fact(fact, self.model))
                    break
                except TransportError as exc:
                    backoff.wait(exc)

    def _events(self, call: _Call, *, partials: bool) -> Iterator[Event]:
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
            yield (event := self._outcome(call, flow, reply, backoff.retries))
            if isinstance(event, Extraction):
                return


class AsyncExtractor(_Common):
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
            if (pieces := self._pieces(call)) is not None:
                each: CallOptions = {**options, "chunk": None}
                parts = [await self.extract(piece.text, schema, **each) for piece in pieces]
                return self._merged(call, pieces, parts)
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

    async def _facts(self, call: _Call) -> None:
        for fact in self._missing(call):
            backoff = Backoff(call.retry)
            while True:
                try:
                    self._learn(fact, await self.transport.fact(fact, self.model))
                    break
                except TransportError as exc:
                    await backoff.await_wait(exc)

    async def _events(self, call: _Call, *, partials: bool) -> AsyncIterator[Event]:
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
            yield (event := self._outcome(call, flow, reply, backoff.retries))
            if isinstance(event, Extraction):
                return
