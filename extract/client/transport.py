"""The Ollama HTTP client: one sans-I/O core, a sync and an async edge over httpx.

Everything that does no I/O — building requests, splitting NDJSON, reading reply lines,
mapping statuses to errors — lives in module functions and ``ReplyReader``. ``Transport``
and ``AsyncTransport`` only send bytes and hand what comes back to that core.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any, TypeVar

import httpx

from ..core.wire import (
    GenerateRequest,
    GenerateResult,
    Metrics,
    TokenLogprob,
    parse_logprobs,
)
from ..errors import (
    BadRequest,
    ConnectError,
    DocumentTooLong,
    ExtractError,
    ModelNotFound,
    RequestRejected,
    RequestTimeout,
    RunawayOutput,
    ServerBusy,
    ServerError,
    StreamError,
    TransportError,
    TruncatedOutput,
)
from .config import Settings
from .urls import redact

R = TypeVar("R")
# A reply line past this size is not a reply: a broken or hostile server. Bounds memory.
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_ERROR_BODY = 4096
# A whole reply (and any small endpoint's body) past this is not a reply either.
MAX_REPLY_BYTES = 64 * 1024 * 1024
# Ollama sends a token per line; this many lines in a row without text is a stuck stream.
MAX_EMPTY_LINES = 1000
# What a server without /api/version is taken to run: older than schema formats (0.5.0).
LEGACY_VERSION = "0.1.0"
# /api/show, /api/version, /api/tags: a model's template and parameters fit well inside this.
MAX_SMALL_BODY = 16 * 1024 * 1024

USE_CLIENT: Any = httpx.USE_CLIENT_DEFAULT

Delta = tuple[str, str]
"""(response text, thinking text) of one streamed line."""

OnText = Callable[[str, str], None]
"""Called with (response_delta, thinking_delta) as a reply streams; may raise to abort."""

Flow = Generator[httpx.Request, httpx.Response, R]


class LineSplitter:
    """Split a byte stream into lines, refusing any line longer than ``max_bytes``.

    >>> s = LineSplitter()
    >>> s.feed(b'{"a":1}\\n{"b"'), s.feed(b':2}\\n'), s.flush()
    ([b'{"a":1}'], [b'{"b":2}'], None)
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES, max_total: int = MAX_REPLY_BYTES) -> None:
        self._pending: list[bytes] = []  # the start of an unfinished line
        self._pending_size = 0
        self._total = 0
        self._max, self._max_total = max_bytes, max_total

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines ``data`` finishes; raises RunawayOutput past either cap."""
        self._total += len(data)
        if self._total > self._max_total:
            raise RunawayOutput(f"the reply exceeded {self._max_total} bytes; it was cut off")
        lines: list[bytes] = []
        start = 0
        # Only the new bytes are searched, so a long line costs O(its length), not O(n²).
        while (end := data.find(b"\n", start)) != -1:
            line = data[start:end]
            if self._pending:
                line = b"".join([*self._pending, line])
                self._pending, self._pending_size = [], 0
            self._check(len(line))
            if line.strip():
                lines.append(line)
            start = end + 1
        if start < len(data):
            self._pending.append(data[start:])
            self._pending_size += len(data) - start
            self._check(self._pending_size)
        return lines

    def flush(self) -> bytes | None:
        rest = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        return rest if rest.strip() else None

    def _check(self, size: int) -> None:
        if size > self._max:
            raise RunawayOutput(f"a reply line exceeded {self._max} bytes; the stream was cut off")


class ReplyReader:
    """Reads /api/generate reply lines (streamed or not) into one ``GenerateResult``.

    Text is appended from every line, the done line included; an ``{"error"}`` line is a
    ``StreamError``; a reply that ends without ``done: true`` is ``TruncatedOutput``.
    ``logprobs`` are joined across lines the same way; malformed ones void them all, quietly.
    """

    def __init__(self, *, host: str, model: str) -> None:
        self._host, self._model = host, model
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._final: dict[str, Any] | None = None
        self._empty_lines = 0
        self._logprobs: list[TokenLogprob] | None = None  # None until a line carries some
        self._logprobs_void = False

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed_line(self, line: bytes) -> tuple[str, str]:
        """Read one line; return its (response, thinking) text."""
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            raise StreamError(
                f"the server sent a line that is not JSON: {line[:120]!r}",
                host=self._host,
                model=self._model,
            ) from None
        if not isinstance(obj, dict):
            raise StreamError(
                f"the server sent a non-object line: {line[:120]!r}",
                host=self._host,
                model=self._model,
            )
        if "error" in obj:
            raise StreamError(str(obj["error"]), host=self._host, model=self._model)
        delta, thinking = obj.get("response") or "", obj.get("thinking") or ""
        if not isinstance(delta, str) or not isinstance(thinking, str):
            raise StreamError("the server sent a non-text response field", host=self._host)
        if delta:
            self._text.append(delta)
        if thinking:
            self._thinking.append(thinking)
        if obj.get("logprobs") is not None:
            self._add_logprobs(obj["logprobs"])
        if obj.get("done") is True:
            self._final = obj
        elif delta or thinking:
            self._empty_lines = 0
        else:
            self._empty_lines += 1
            if self._empty_lines > MAX_EMPTY_LINES:
                raise RunawayOutput(
                    f"the server sent {MAX_EMPTY_LINES} lines in a row without text; cut off",
                    raw=self.text,
                )
        return delta, thinking

    def _add_logprobs(self, value: Any) -> None:
        entries = parse_logprobs(value)
        if entries is None:
            self._logprobs_void = True
        else:
            self._logprobs = self._logprobs if self._logprobs is not None else []
            self._logprobs.extend(entries)

    def result(self) -> GenerateResult:
        """The finished reply; raises TruncatedOutput when no done line arrived."""
        if self._final is None:
            raise TruncatedOutput(
                "the reply ended without a done line (the server stopped generating, "
                "often a repeated-token loop)",
                raw=self.text,
            )
        final = self._final
        context = final.get("context")
        return GenerateResult(
            text=self.text,
            thinking="".join(self._thinking),
            done=True,
            done_reason=final.get("done_reason"),
            metrics=Metrics.from_wire(final),
            context=context if isinstance(context, list) else None,
            logprobs=None if self._logprobs_void or self._logprobs is None else (*self._logprobs,),
        )


# Ollama's runner says the first; servers running llama-server (0.30+) pass on its own message.
_TOO_LONG = re.compile(
    r"input length exceeds the context length|\((?P<tokens>\d+) tokens\) exceeds the available "
    r"context size|exceeds the available context size"
)


def error_for_status(status: int, body: bytes, *, host: str, model: str | None) -> ExtractError:
    """Map an HTTP error status and Ollama's ``{"error": ...}`` body to the error tree."""
    message = _error_message(body) or httpx.codes.get_reason_phrase(status) or "error"
    if status == 404:
        return (
            ModelNotFound(host=host, model=model, detail=message)
            if model
            else (RequestRejected(message, status=status, host=host))
        )
    if status == 503:
        return ServerBusy(message, status=status, host=host, model=model)
    if status == 400 and (too_long := _TOO_LONG.search(message)):
        tokens = too_long.group("tokens")
        return DocumentTooLong(
            f"the prompt is longer than the model's context, and the server refused to cut it "
            f"({message}); split the document (chunk=), raise num_ctx, or shorten it [{host}]",
            tokens=int(tokens) if tokens else None,
        )
    # Ollama answers a wrong option type or an invalid `format` with 500; resending cannot help.
    if status == 500 and message.startswith(("option ", "invalid format", "invalid JSON schema")):
        return BadRequest(message, status=status, host=host, model=model)
    if status >= 500:
        return ServerError(message, status=status, host=host, model=model)
    if status == 400:
        return BadRequest(message, status=status, host=host, model=model)
    if status in (401, 403):
        hint = "check OLLAMA_API_KEY, or the Host header of a loopback-bound server"
        return RequestRejected(f"{message} ({hint})", status=status, host=host, model=model)
    return RequestRejected(message, status=status, host=host, model=model)


def _error_message(body: bytes) -> str:
    text = body[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):  # the OpenAI dialect nests it
            err = err.get("message")
        if err is not None:
            return str(err)
    return text


@contextlib.contextmanager
def _mapped_errors(host: str, model: str | None, secret: str | None = None) -> Iterator[None]:
    """Turn httpx's exceptions into the project's, naming the host and model.

    A server or proxy may echo the Authorization header in its error text: the key is
    blanked out of any error raised here.
    """
    try:
        yield
    except ExtractError as exc:
        if secret and secret in str(exc):
            _blank(exc, secret)
        raise
    except httpx.TimeoutException as exc:
        raise RequestTimeout(f"timed out ({type(exc).__name__})", host=host, model=model) from None
    except (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ConnectError(f"connection failed: {reason}", host=host, model=model) from None
    except httpx.HTTPError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}", host=host, model=model) from None


class _Base:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = redact(settings.host)
        # Parsed once: httpx re-parses and re-joins a path against base_url on every request,
        # which costs more than the rest of building the request.
        self._generate_url = httpx.URL(settings.host + "/api/generate")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r})"

    def _check(self, response: httpx.Response, body: bytes, model: str | None) -> None:
        if response.status_code >= 400:
            raise error_for_status(response.status_code, body, host=self.host, model=model)

    def _json(self, response: httpx.Response, model: str | None = None) -> Any:
        self._check(response, response.content, model)
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise ServerError(
                "the reply is not JSON", status=response.status_code, host=self.host
            ) from None

    def _build(self, method: str, path: str, body: Any = None) -> httpx.Request:
        return httpx.Request(
            method,
            self.settings.host + path,
            json=body,
            headers=self.settings.headers(),
            extensions={"timeout": self.settings.timeout.as_dict()},
        )

    # Sans-I/O flows for the small endpoints: each yields its request and reads the response.

    def _version_flow(self) -> Flow[str]:
        response = yield self._build("GET", "/api/version")
        if response.status_code == 404:
            return LEGACY_VERSION  # servers before /api/version existed predate schema formats
        reply = self._json(response)
        return str(reply.get("version", "")) if isinstance(reply, dict) else ""

    def _fact_flow(self, fact: str, model: str) -> Flow[Any]:
        """A server fact an extractor needs once: ``"version"`` or ``"show"`` (the model)."""
        if fact == "version":
            return (yield from self._version_flow())
        return (yield from self._show_flow(model))

    def _show_flow(self, model: str) -> Flow[dict[str, Any]]:
        request = self._build("POST", "/api/show", {"model": model})
        reply = self._json((yield request), model)
        return reply if isinstance(reply, dict) else {}

    def _tags_flow(self) -> Flow[list[dict[str, Any]]]:
        reply = self._json((yield self._build("GET", "/api/tags")))
        models = reply.get("models") if isinstance(reply, dict) else None
        return [m for m in models or [] if isinstance(m, dict)]

    def _ping_flow(self) -> Flow[str]:
        response = yield self._build("GET", "/")
        self._check(response, response.content, None)
        return response.text

    def _client_args(self) -> dict[str, Any]:
        return {
            "base_url": self.settings.host,
            "headers": self.settings.headers(),
            "timeout": self.settings.timeout,
        }


class Transport(_Base):
    """Synchronous Ollama client for the endpoints extract needs."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(settings)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self._http = httpx.Client(**self._client_args(), transport=transport, limits=limits)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, flow: Flow[R], model: str | None = None) -> R:
        request = next(flow)
        while True:
            with _mapped_errors(self.host, model, self.settings.api_key):
                response = self._http.send(request, stream=True)
                try:
                    body = _read_capped(response.iter_bytes(), MAX_SMALL_BODY)
                finally:
                    response.close()
            response = _with_body(response, body, self.host)
            try:
                request = flow.send(response)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    def version(self) -> str:
        return self._run(self._version_flow())

    def show(self, model: str) -> dict[str, Any]:
        return self._run(self._show_flow(model), model)

    def tags(self) -> list[dict[str, Any]]:
        return self._run(self._tags_flow())

    def ping(self) -> str:
        return self._run(self._ping_flow())

    def fact(self, fact: str, model: str) -> Any:
        """``version()`` or ``show(model)``, by name."""
        return self._run(self._fact_flow(fact, model), model)

    def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> Generator[Delta | GenerateResult, None, None]:
        """POST /api/generate: yield (response, thinking) text as it streams, then the result.

        Raises TransportError subclasses (retryable), RequestRejected subclasses (fatal), and
        TruncatedOutput or RunawayOutput for a reply that cannot be complete.
        """
        model = request.get("model", "")
        reader, splitter = ReplyReader(host=self.host, model=model), LineSplitter()
        with (
            _mapped_errors(self.host, model, self.settings.api_key),
            self._http.stream(
                "POST", self._generate_url, json=_body(request), timeout=timeout or USE_CLIENT
            ) as response,
        ):
            if response.status_code >= 400:
                self._check(response, _read_capped(response.iter_bytes()), model)
            for data in response.iter_bytes():
                for line in splitter.feed(data):
                    if any(delta := reader.feed_line(line)):
                        yield delta
        if (tail := splitter.flush()) is not None and any(delta := reader.feed_line(tail)):
            yield delta
        yield reader.result()

    def generate(
        self,
        request: GenerateRequest,
        *,
        on_text: OnText | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> GenerateResult:
        """POST /api/generate and return the whole reply; ``on_text`` sees each delta and
        may raise to abort. Raises as ``stream_generate`` does."""
        with contextlib.closing(self.stream_generate(request, timeout=timeout)) as items:
            for item in items:
                if isinstance(item, GenerateResult):
                    return item
                if on_text is not None:
                    on_text(*item)
        raise AssertionError("stream_generate ended without a result")  # pragma: no cover


class AsyncTransport(_Base):
    """The asyncio twin of ``Transport``; only the I/O differs."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings)
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self._http = httpx.AsyncClient(**self._client_args(), transport=transport, limits=limits)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, flow: Flow[R], model: str | None = None) -> R:
        request = next(flow)
        while True:
            with _mapped_errors(self.host, model, self.settings.api_key):
                response = await self._http.send(request, stream=True)
                try:
                    body = await _aread_capped(response.aiter_bytes(), MAX_SMALL_BODY)
                finally:
                    await response.aclose()
            response = _with_body(response, body, self.host)
            try:
                request = flow.send(response)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    async def version(self) -> str:
        return await self._run(self._version_flow())

    async def show(self, model: str) -> dict[str, Any]:
        return await self._run(self._show_flow(model), model)

    async def tags(self) -> list[dict[str, Any]]:
        return await self._run(self._tags_flow())

    async def ping(self) -> str:
        return await self._run(self._ping_flow())

    async def fact(self, fact: str, model: str) -> Any:
        """``version()`` or ``show(model)``, by name."""
        return await self._run(self._fact_flow(fact, model), model)

    async def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> AsyncGenerator[Delta | GenerateResult, None]:
        """POST /api/generate; see ``Transport.stream_generate``."""
        model = request.get("model", "")
        reader, splitter = ReplyReader(host=self.host, model=model), LineSplitter()
        with _mapped_errors(self.host, model, self.settings.api_key):
            async with self._http.stream(
                "POST", self._generate_url, json=_body(request), timeout=timeout or USE_CLIENT
            ) as response:
                if response.status_code >= 400:
                    self._check(response, await _aread_capped(response.aiter_bytes()), model)
                async for data in response.aiter_bytes():
                    for line in splitter.feed(data):
                        if any(delta := reader.feed_line(line)):
                            yield delta
        if (tail := splitter.flush()) is not None and any(delta := reader.feed_line(tail)):
            yield delta
        yield reader.result()

    async def generate(
        self,
        request: GenerateRequest,
        *,
        on_text: OnText | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> GenerateResult:
        """POST /api/generate and return the whole reply; see ``Transport.generate``."""
        items = self.stream_generate(request, timeout=timeout)
        try:
            async for item in items:
                if isinstance(item, GenerateResult):
                    return item
                if on_text is not None:
                    on_text(*item)
        finally:
            await items.aclose()
        raise AssertionError("stream_generate ended without a result")  # pragma: no cover


def _blank(error: ExtractError, secret: str) -> None:
    for name in ("message", "reason", "raw"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, value.replace(secret, "***"))
    error.args = tuple(a.replace(secret, "***") if isinstance(a, str) else a for a in error.args)


def _body(request: GenerateRequest) -> dict[str, Any]:
    # Unset fields are left out rather than sent as null: Ollama reads `"think": null` and an
    # absent `think` differently on thinking models.
    return {k: v for k, v in request.items() if v is not None}


def _read_capped(chunks: Iterator[bytes], cap: int = MAX_ERROR_BODY) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > cap:
            break
    return bytes(body)


async def _aread_capped(chunks: AsyncIterator[bytes], cap: int = MAX_ERROR_BODY) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > cap:
            break
    return bytes(body)


def _with_body(response: httpx.Response, body: bytes, host: str) -> httpx.Response:
    """The response with its (capped) body read; a body past the cap is refused."""
    if len(body) > MAX_SMALL_BODY:
        raise ServerError(
            f"the reply body exceeded {MAX_SMALL_BODY} bytes",
            status=response.status_code,
            host=host,
        )
    # The body is already decoded: drop what would make httpx decode or size it again.
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    }
    return httpx.Response(response.status_code, headers=headers, content=body)
