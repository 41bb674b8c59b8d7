"""The seam between extract and a server kind: what a backend tells about the server and the
model (``ModelFacts``), and how it sends one generation (``Backend``, ``AsyncBackend``).

A request is ``core.wire.GenerateRequest`` (Ollama's /api/generate body, extract's own request
shape); a backend translates it for its server and reads the reply back into events: text
deltas as ``(response, thinking)`` pairs, then one ``GenerateResult`` carrying the whole text,
the log-probabilities, the metrics and the done reason.

Backends:

- ``ollama`` (``backends/ollama``): /api/generate, /api/version, /api/show, NDJSON;
- ``openai`` (``backends/openai``): /v1/chat/completions and /v1/models, server-sent events
  (vLLM, SGLang, llama.cpp's llama-server, llama-cpp-python, LM Studio).

Adding one: a folder here with a ``Transport`` and an ``AsyncTransport`` that meet the two
protocols, and its name in ``BACKENDS``, :func:`check_request`, :func:`open_backend` and
:func:`open_async_backend`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Generator
from typing import Literal, Protocol

import httpx

from ...core.wire import GenerateRequest, GenerateResult
from ...errors import ConfigError
from ..config import Settings

BackendName = Literal["ollama", "openai"]
BACKENDS: tuple[BackendName, ...] = ("ollama", "openai")

Delta = tuple[str, str]
"""(response text, thinking text) of one streamed piece of a reply."""


@dataclasses.dataclass(frozen=True, slots=True)
class ModelFacts:
    """What a server said about itself and one model, typed; asked once per extractor.

    ``context_length`` is what the model was trained for; ``default_context`` what a request
    runs with when it sets no ``num_ctx`` (a Modelfile's, or the server's fixed context).
    """

    version: str | None = None
    capabilities: tuple[str, ...] | None = None
    context_length: int | None = None
    default_context: int | None = None
    # The reply can carry per-token log-probabilities with alternatives (confidence).
    logprobs: bool = False
    # `format` may be a JSON Schema, and the server constrains decoding to it.
    schema_format: bool = False
    # The server takes `truncate: false` and refuses an over-long prompt instead of cutting it.
    refuses_overflow: bool = False
    # The server continues a reply begun for it (a final assistant message) and sends the
    # log-probabilities of what it adds: choice fields can be decided a token at a time.
    continues_reply: bool = False


class Backend(Protocol):
    """A synchronous connection to one server."""

    host: str

    def facts(self, model: str) -> ModelFacts:
        """The server's and ``model``'s facts; raises ModelNotFound, TransportError."""
        ...

    def model_digest(self, model: str) -> str | None:
        """What identifies the model's weights on the server (None where it lists none)."""
        ...

    def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> Generator[Delta | GenerateResult, None, None]:
        """Send one generation; yield text deltas as they arrive, then the result."""
        ...

    def generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """Send one generation and return the whole result."""
        ...

    def continue_reply(
        self, request: GenerateRequest, prefill: str, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """Send ``request`` with its reply begun as ``prefill``, for the server to continue;
        the result holds what it added. Raises as ``generate`` does, and ConfigError where the
        backend cannot begin a reply."""
        ...

    def close(self) -> None: ...


class AsyncBackend(Protocol):
    """The asyncio twin of ``Backend``."""

    host: str

    async def facts(self, model: str) -> ModelFacts: ...

    async def model_digest(self, model: str) -> str | None: ...

    def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> AsyncGenerator[Delta | GenerateResult, None]: ...

    async def generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult: ...

    async def continue_reply(
        self, request: GenerateRequest, prefill: str, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult: ...

    async def aclose(self) -> None: ...


def check_backend(name: object) -> BackendName:
    """``name`` as a backend name; raises ConfigError for one extract does not have."""
    if name not in BACKENDS:
        raise ConfigError(f"backend={name!r}: use one of {', '.join(map(repr, BACKENDS))}")
    return name


def check_request(name: BackendName, request: GenerateRequest) -> None:
    """Raise ConfigError naming the first field of ``request`` that backend ``name`` cannot
    send; called when a call is planned, before any request."""
    if name == "openai":
        from .openai.wire import check_request as check_openai

        check_openai(request)


def open_backend(
    name: BackendName, settings: Settings, transport: httpx.BaseTransport | None = None
) -> Backend:
    """A synchronous backend of kind ``name`` for ``settings``' host."""
    if name == "openai":
        from .openai.transport import Transport as OpenAITransport

        return OpenAITransport(settings, transport=transport)
    from .ollama.transport import Transport

    return Transport(settings, transport=transport)


def open_async_backend(
    name: BackendName, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncBackend:
    """An asyncio backend of kind ``name`` for ``settings``' host."""
    if name == "openai":
        from .openai.transport import AsyncTransport as AsyncOpenAITransport

        return AsyncOpenAITransport(settings, transport=transport)
    from .ollama.transport import AsyncTransport

    return AsyncTransport(settings, transport=transport)
