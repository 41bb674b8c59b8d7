"""What every backend shares: the server facts it reports and the two protocols it meets.

Kept apart from the package's ``__init__``, which opens backends by name, so that a backend's
own modules import this and never the module that imports them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Generator
from typing import Literal, Protocol

import httpx

from ...core.wire import GenerateRequest, GenerateResult

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
