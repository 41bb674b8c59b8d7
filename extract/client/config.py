"""Settings resolved as argument → environment → default, at construction, never at import."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import httpx

from .._version import __version__
from ..errors import ConfigError
from .urls import parse_host

ENV_HOST = "OLLAMA_HOST"
ENV_API_KEY = "OLLAMA_API_KEY"
ENV_MODEL = "EXTRACT_MODEL"
# The openai backend reads the OpenAI SDK's own variables (a base URL with or without /v1).
ENV_OPENAI_HOST = "OPENAI_BASE_URL"
ENV_OPENAI_API_KEY = "OPENAI_API_KEY"
# vLLM's and llama-cpp-python's default port.
DEFAULT_OPENAI_HOST = "http://127.0.0.1:8000"

DEFAULT_CONNECT_TIMEOUT = 5.0
# Long enough for a cold model load plus a long reply on a CPU;
# the guards stop runaway output sooner.
DEFAULT_READ_TIMEOUT = 300.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_TRANSPORT_ATTEMPTS = 4
# Extraction replies are short; an uncapped JSON-mode generation can run for minutes.
DEFAULT_NUM_PREDICT = 1024
# Ollama's num_ctx when neither the call nor the model's Modelfile sets one (0.6+, on machines
# with less than 24 GiB of VRAM, this one included).
DEFAULT_NUM_CTX = 4096
# Streaming lets the guards cut a runaway reply short, at a client cost per token. It is worth
# it while a whole num_predict budget takes the server at least this long to generate; a server
# faster than that is sent `stream: false` and its one body is guarded as a whole.
STREAM_WORTH_SECONDS = 1.0
# Fewer generated tokens than this time the server too coarsely to judge its speed.
MIN_TIMED_TOKENS = 8

TimeoutArg = float | tuple[float, float] | httpx.Timeout | None


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Where and how to reach one Ollama host."""

    host: str
    api_key: str | None = dataclasses.field(default=None, repr=False)
    timeout: httpx.Timeout = dataclasses.field(
        default_factory=lambda: httpx.Timeout(DEFAULT_READ_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
    )

    @classmethod
    def resolve(
        cls,
        host: str | None = None,
        *,
        api_key: str | None = None,
        timeout: TimeoutArg = None,
        environ: Mapping[str, str] | None = None,
        backend: str = "ollama",
    ) -> Settings:
        """Build settings from arguments, then ``OLLAMA_HOST``/``OLLAMA_API_KEY`` (for the
        openai backend ``OPENAI_BASE_URL``/``OPENAI_API_KEY``, and port 8000), then defaults.

        Raises ConfigError for a host or timeout extract cannot use.
        """
        env = os.environ if environ is None else environ
        env_host, env_key = ENV_HOST, ENV_API_KEY
        if backend == "openai":
            env_host, env_key = ENV_OPENAI_HOST, ENV_OPENAI_API_KEY
            host = host or env.get(env_host) or DEFAULT_OPENAI_HOST
        return cls(
            host=parse_host(host if host else env.get(env_host)),
            api_key=api_key or env.get(env_key) or None,
            timeout=resolve_timeout(timeout),
        )

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"extract/{__version__}", "Accept": "application/x-ndjson"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def resolve_timeout(timeout: TimeoutArg) -> httpx.Timeout:
    """A number is the read timeout; a pair is (connect, read).

    >>> resolve_timeout((2, 30))
    Timeout(connect=2, read=30, write=30, pool=30)
    """
    if timeout is None:
        return httpx.Timeout(DEFAULT_READ_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, tuple):
        if len(timeout) != 2 or not all(_positive(t) for t in timeout):
            raise ConfigError(f"timeout {timeout!r}: give (connect, read) as two positive numbers")
        return httpx.Timeout(timeout[1], connect=timeout[0])
    if not _positive(timeout):
        raise ConfigError(f"timeout {timeout!r}: give a positive number of seconds")
    return httpx.Timeout(float(timeout), connect=min(float(timeout), DEFAULT_CONNECT_TIMEOUT))


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def resolve_model(model: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The model from the argument, else ``EXTRACT_MODEL``; ConfigError when neither is set."""
    env = os.environ if environ is None else environ
    chosen = model or env.get(ENV_MODEL)
    if not chosen:
        raise ConfigError(
            f"no model given: pass model=... (or --model), or set {ENV_MODEL}, e.g. llama3.2"
        )
    return chosen
