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

import httpx

from ...core.wire import GenerateRequest
from ...errors import ConfigError
from ..config import Settings
from .base import BACKENDS, AsyncBackend, Backend, BackendName, Delta, ModelFacts

__all__ = [
    "BACKENDS",
    "AsyncBackend",
    "Backend",
    "BackendName",
    "Delta",
    "ModelFacts",
    "check_backend",
    "check_request",
    "open_async_backend",
    "open_backend",
]


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
