"""What the HTTP layer hands an engine, and what an engine hands back.

The HTTP layer parses and validates a request into a :class:`Job`, then iterates the engine's
``generate(job, stop)``. The engine yields ``str`` pieces of text (a :class:`Piece` when it has
the log-probabilities of the piece's tokens) and at most one :class:`Final` (the done line).
Running out without a ``Final`` means the reply ended without a done line.
Raising :class:`Fault` before any text becomes an HTTP error status; after text, an
``{"error": ...}`` line. Raising :class:`Disconnect` closes the connection without a proper end.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

Api = Literal["generate", "chat", "openai"]
Format = Literal["json"] | dict[str, Any] | None

DEFAULT_VERSION = "0.33.0"
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
INPUT_TOO_LONG = "the input length exceeds the context length"
DEFAULT_NUM_KEEP = 4

T = TypeVar("T")


class Fault(Exception):
    """A request the server answers with an error: ``status`` and Ollama's ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class EngineCrashed(Fault):
    """The process running a model died mid-request (a signal, an out-of-memory kill).

    Over HTTP it is a 500 ``{"error": "model runner has unexpectedly stopped: ..."}``, as Ollama
    answers when its runner dies; ``model`` names the model and ``signal`` the signal number that
    ended the process (None when it exited on its own). The next request starts a new process.
    """

    def __init__(self, model: str, message: str, signal: int | None = None) -> None:
        super().__init__(500, message)
        self.model = model
        self.signal = signal


class Disconnect(Exception):
    """Close the client's connection at once, without ending the reply properly."""


@dataclasses.dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model a server offers, with what /api/tags, /api/show and /api/ps report."""

    name: str
    size: int
    digest: str
    family: str
    parameter_size: str
    quantization_level: str
    capabilities: tuple[str, ...] = ("completion",)
    context_length: int = 2048
    template: str = "{{ .Prompt }}"
    parameters: str = ""
    modified_at: str = "2026-01-01T00:00:00Z"
    aliases: tuple[str, ...] = ()

    def answers_to(self, requested: str) -> bool:
        """Whether a request naming ``requested`` means this model (``x`` is ``x:latest``).

        >>> ModelEntry("tiny", 1, "d", "f", "1M", "F16").answers_to("tiny:latest")
        True
        >>> ModelEntry("smollm2:135m", 1, "d", "f", "1M", "F16").answers_to("smollm2")
        False
        """
        wanted = _with_tag(requested)
        return any(_with_tag(n) == wanted for n in (self.name, *self.aliases))

    @property
    def tag(self) -> str:
        """The name as Ollama lists it, always with a tag."""
        return _with_tag(self.name)


def _with_tag(name: str) -> str:
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"


LogprobEntry = Mapping[str, Any]
"""One token's ``logprobs`` entry exactly as it goes on the wire (see ``_logprobs``)."""


class Piece(str):
    """A piece of reply text that carries the ``logprobs`` entries of the tokens it shows."""

    logprobs: tuple[LogprobEntry, ...]

    def __new__(cls, text: str, logprobs: Sequence[LogprobEntry] = ()) -> Piece:
        piece = super().__new__(cls, text)
        piece.logprobs = tuple(logprobs)
        return piece


@dataclasses.dataclass(frozen=True, slots=True)
class Final:
    """The done line: why generation ended, text carried on it, and its counters.

    ``metrics`` holds any of :data:`extract.core.wire.METRIC_FIELDS` (nanoseconds and token
    counts); zero or absent values are left off the wire, as Ollama does. ``logprobs`` is
    every entry of the whole reply, in order, when they were asked for: a streamed done line
    carries those its pieces did not, a reply that is not streamed carries them all.
    """

    done_reason: str = "stop"
    text: str = ""
    metrics: Mapping[str, int] = dataclasses.field(default_factory=dict)
    context: Sequence[int] | None = None
    logprobs: Sequence[LogprobEntry] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One validated generation request, whichever route it came through.

    ``messages`` is empty for /api/generate, whose text is in ``prompt``/``system``; ``options``
    holds only known options, converted to their Ollama types.
    """

    api: Api
    model: str
    requested_model: str
    body: Mapping[str, Any]
    stream: bool
    prompt: str = ""
    system: str | None = None
    template: str | None = None
    suffix: str = ""
    context: tuple[int, ...] = ()
    messages: tuple[Mapping[str, Any], ...] = ()
    raw: bool = False
    format: Format = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    think: bool | str | None = None
    keep_alive: float | None = None
    truncate: bool = True
    logprobs: bool = False
    top_logprobs: int = 0


Event = str | Final


class Engine(Protocol):
    """What the HTTP layer needs from a model backend."""

    @property
    def version(self) -> str:
        """The Ollama version to report on /api/version."""
        ...

    def models(self) -> Sequence[ModelEntry]:
        """Every model offered, for /api/tags and name lookups."""
        ...

    def loaded(self) -> Sequence[ModelEntry]:
        """The models in memory now, for /api/ps."""
        ...

    def observe(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        """See every request as it arrives, before any validation."""
        ...

    def load(self, model: str, keep_alive: float | None) -> str:
        """Load (or with ``keep_alive == 0`` unload) a model; return the done reason."""
        ...

    def generate(self, job: Job, stop: threading.Event) -> Generator[Event, None, None]:
        """Yield the reply's text pieces, then its :class:`Final`; ``stop`` is set at shutdown.

        Raises:
            Fault: the request fails with this status and message.
            Disconnect: the connection must be dropped.
        """
        ...


def find_model(engine: Engine, requested: str) -> ModelEntry | None:
    """The engine's model a request names, or None."""
    return next((m for m in engine.models() if m.answers_to(requested)), None)


def fit_context(prompt: Sequence[T], n_ctx: int, num_keep: int, truncate: bool) -> list[T]:
    """The prompt as Ollama's runner feeds it to a context of ``n_ctx`` tokens.

    A prompt that fits is kept whole. A longer one keeps its first ``num_keep`` tokens (all of
    them when negative; at most ``n_ctx - 1``) and as much of its tail as fills the context
    exactly: nothing is left for the reply, which Ollama's context shift then makes room for.

    >>> fit_context(list(range(10)), 6, 2, truncate=True)
    [0, 1, 6, 7, 8, 9]
    >>> fit_context(list(range(6)), 6, 2, truncate=False)
    [0, 1, 2, 3, 4, 5]

    Raises:
        Fault: 400 ``the input length exceeds the context length`` when the prompt does not
            fit and ``truncate`` is false.
    """
    if len(prompt) <= n_ctx:
        return list(prompt)
    if not truncate:
        raise Fault(400, INPUT_TOO_LONG)
    keep = min(len(prompt) if num_keep < 0 else num_keep, n_ctx - 1)
    return [*prompt[:keep], *prompt[keep + len(prompt) - n_ctx :]]
