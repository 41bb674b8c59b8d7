"""The Ollama backend's HTTP client: a sync and an async edge over httpx around one sans-I/O core.

Building requests, splitting NDJSON, reading reply lines and mapping statuses to errors do no
I/O (``replies.py``, and the request flows here); ``Transport`` and ``AsyncTransport`` only
send bytes and hand what comes back to that core.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any, TypeVar

import httpx

from ....core.wire import GenerateRequest, GenerateResult
from ....errors import (
    ConnectError,
    ExtractError,
    RequestTimeout,
    ServerError,
    TransportError,
)
from ...config import Settings
from ...urls import redact
from ..base import Delta, ModelFacts
from .chat import continuation_body, continuation_result
from .direct import JSON_BODY, Direct, encoded, proxied
from .facts import listed_digest, model_facts
from .replies import MAX_ERROR_BODY, LineSplitter, ReplyReader, error_for_status

R = TypeVar("R")
# What a server without /api/version is taken to run: older than schema formats (0.5.0).
LEGACY_VERSION = "0.1.0"
# What an unreachable host's error adds: how to start a server there.
START_SERVER_HINT = (
    "is a server running there? Start Ollama with `ollama serve`, or the embedded model with "
    "`extract serve` (the CLI's --local runs it for one command)"
)
# /api/show, /api/version, /api/tags: a model's template and parameters fit well inside this.
MAX_SMALL_BODY = 16 * 1024 * 1024

USE_CLIENT: Any = httpx.USE_CLIENT_DEFAULT

OnText = Callable[[str, str], None]
"""Called with (response_delta, thinking_delta) as a reply streams; may raise to abort."""

Flow = Generator[httpx.Request, httpx.Response, R]


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
    except httpx.ConnectError as exc:
        # Nothing answered at all: most often no server was started, so say how to start one.
        reason = str(exc) or type(exc).__name__
        message = f"connection failed: {reason}; {START_SERVER_HINT}"
        raise ConnectError(message, host=host, model=model) from None
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
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
        self._version: str | None = None

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

    def _through_client(
        self, client: httpx.Client | httpx.AsyncClient, body: bytes, timeout: httpx.Timeout | None
    ) -> httpx.Request:
        """The generation POST of ``body`` as ``client`` builds it, for when it may not skip
        the client (see ``direct``)."""
        return client.build_request(
            "POST",
            self._generate_url,
            content=body,
            headers=JSON_BODY,
            timeout=timeout or USE_CLIENT,
        )

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

    def _facts_flow(self, model: str) -> Flow[ModelFacts]:
        """What an extractor needs to know once: the server's version and the model's show.

        A version that answered is kept, so that a retry after /api/show failed asks only that.
        """
        if self._version is None:
            self._version = yield from self._version_flow()
        return model_facts(self._version, (yield from self._show_flow(model)))

    def _show_flow(self, model: str) -> Flow[dict[str, Any]]:
        request = self._build("POST", "/api/show", {"model": model})
        reply = self._json((yield request), model)
        return reply if isinstance(reply, dict) else {}

    def _tags_flow(self) -> Flow[list[dict[str, Any]]]:
        reply = self._json((yield self._build("GET", "/api/tags")))
        models = reply.get("models") if isinstance(reply, dict) else None
        return [m for m in models or [] if isinstance(m, dict)]

    def _continue_flow(self, request: GenerateRequest, prefill: str) -> Flow[GenerateResult]:
        model = request.get("model", "")
        request_ = self._build("POST", "/api/chat", continuation_body(request, prefill))
        reply = self._json((yield request_), model)
        return continuation_result(reply, host=self.host, model=model)

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
        if transport is None and not proxied():  # the client's own pool, made here (see .direct)
            transport = httpx.HTTPTransport(limits=limits)
        self._http = httpx.Client(**self._client_args(), transport=transport, limits=limits)
        self._pool, self._direct = transport, Direct(self._http, self._generate_url)

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

    def facts(self, model: str) -> ModelFacts:
        """The server's version and ``model``'s facts (/api/version, /api/show)."""
        return self._run(self._facts_flow(model), model)

    def model_digest(self, model: str) -> str | None:
        """The digest of the model the server has under ``model`` (/api/show, /api/tags)."""
        return listed_digest(self.show(model), self.tags(), model)

    def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> Generator[Delta | GenerateResult, None, None]:
        """POST /api/generate: yield (response, thinking) text as it streams, then the result.

        Raises TransportError subclasses (retryable), RequestRejected subclasses (fatal), and
        TruncatedOutput or RunawayOutput for a reply that cannot be complete.
        """
        model = request.get("model", "")
        reader, splitter = ReplyReader(host=self.host, model=model), LineSplitter()
        with _mapped_errors(self.host, model, self.settings.api_key):
            response = self._send_generate(encoded(request), timeout)
            try:
                if response.status_code >= 400:
                    self._check(response, _read_capped(response.iter_bytes()), model)
                for data in response.iter_bytes():
                    for line in splitter.feed(data):
                        if any(delta := reader.feed_line(line)):
                            yield delta
            finally:
                response.close()
        if (tail := splitter.flush()) is not None and any(delta := reader.feed_line(tail)):
            yield delta
        yield reader.result()

    def continue_reply(
        self, request: GenerateRequest, prefill: str, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """POST /api/chat with the reply begun as ``prefill`` (see ``chat``); not streamed.
        Raises as ``stream_generate`` does."""
        return self._run(self._continue_flow(request, prefill), request.get("model"))

    def _send_generate(self, body: bytes, timeout: httpx.Timeout | None) -> httpx.Response:
        """POST ``body`` to /api/generate, straight to the pool when it may (see ``direct``);
        the response's body is left to read."""
        if self._pool is not None and (request := self._direct.request(body, timeout)):
            return self._direct.received(self._pool.handle_request(request), request)
        built = self._through_client(self._http, body, timeout)
        return self._http.send(built, stream=True)

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
        if transport is None and not proxied():
            transport = httpx.AsyncHTTPTransport(limits=limits)
        self._http = httpx.AsyncClient(**self._client_args(), transport=transport, limits=limits)
        self._pool, self._direct = transport, Direct(self._http, self._generate_url)

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

    async def facts(self, model: str) -> ModelFacts:
        """The server's version and ``model``'s facts (/api/version, /api/show)."""
        return await self._run(self._facts_flow(model), model)

    async def model_digest(self, model: str) -> str | None:
        """The asyncio twin of ``Transport.model_digest``."""
        return listed_digest(await self.show(model), await self.tags(), model)

    async def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> AsyncGenerator[Delta | GenerateResult, None]:
        """POST /api/generate; see ``Transport.stream_generate``."""
        model = request.get("model", "")
        reader, splitter = ReplyReader(host=self.host, model=model), LineSplitter()
        with _mapped_errors(self.host, model, self.settings.api_key):
            response = await self._send_generate(encoded(request), timeout)
            try:
                if response.status_code >= 400:
                    self._check(response, await _aread_capped(response.aiter_bytes()), model)
                async for data in response.aiter_bytes():
                    for line in splitter.feed(data):
                        if any(delta := reader.feed_line(line)):
                            yield delta
            finally:
                await response.aclose()
        if (tail := splitter.flush()) is not None and any(delta := reader.feed_line(tail)):
            yield delta
        yield reader.result()

    async def continue_reply(
        self, request: GenerateRequest, prefill: str, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """POST /api/chat with the reply begun; see ``Transport.continue_reply``."""
        return await self._run(self._continue_flow(request, prefill), request.get("model"))

    async def _send_generate(self, body: bytes, timeout: httpx.Timeout | None) -> httpx.Response:
        """The asyncio twin of ``Transport._send_generate``."""
        if self._pool is not None and (request := self._direct.request(body, timeout)):
            return self._direct.received(await self._pool.handle_async_request(request), request)
        built = self._through_client(self._http, body, timeout)
        return await self._http.send(built, stream=True)

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
