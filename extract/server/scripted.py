"""A scripted engine: exact replies and faults on the wire, and a record of every request.

Tests queue :class:`Reply` values; each generate, chat or OpenAI request that passes validation
takes the next one (FIFO). With nothing queued the ``responder`` decides, and without one the
reply is ``{}`` — valid JSON that fits any schema without required properties.

``slots`` and ``latency`` give a known capacity (``slots / latency`` requests per second): each
request holds a slot for ``latency`` seconds plus its own delays. With ``max_queue`` set, a request
arriving while ``slots + max_queue`` are already in flight is refused at once with Ollama's 503.

Prompts are counted in words (``prompt_eval_count``) against a context of ``context_length``
words (or the request's smaller ``num_ctx``). A longer prompt is cut as Ollama's runner cuts it
(see :func:`~extract.server._engine.fit_context`) and reports the cut count; with
``truncate: false`` it is refused with Ollama's 400 instead, before it takes a scripted reply.
The engine behaves like the version it reports: before 0.12.6 it ignores ``truncate`` (and
always cuts), before 0.12.11 it sends no ``logprobs``; from then on it sends a reply's scripted
logprobs only when the request asks for them, as Ollama does.
"""

from __future__ import annotations

import collections
import dataclasses
import http
import itertools
import re
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Literal

from ._engine import (
    BUSY_MESSAGE,
    DEFAULT_NUM_KEEP,
    DEFAULT_VERSION,
    Disconnect,
    Event,
    Fault,
    Final,
    Job,
    LogprobEntry,
    ModelEntry,
    Piece,
    fit_context,
)

_TOKENISH = re.compile(r"\s*(?:\w+|[^\w\s]+)|\s+")
DEFAULT_CONTEXT_LENGTH = 131_072
# The first Ollama versions that read `truncate` and that send `logprobs`.
_TRUNCATE_SINCE, _LOGPROBS_SINCE = (0, 12, 6), (0, 12, 11)


def split_chunks(text: str) -> tuple[str, ...]:
    """Cut text into token-sized pieces that join back to it.

    >>> split_chunks('{"a": 1}')
    ('{"', 'a', '":', ' 1', '}')
    """
    return tuple(_TOKENISH.findall(text))


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """One scripted reply. Build it with the class methods; each chunk is one NDJSON line."""

    kind: Literal["text", "status", "error", "cut", "reset"] = "text"
    chunks: tuple[str, ...] = ()
    code: int = 200
    message: str = ""
    chunk_delay: float = 0.0
    first_byte_delay: float = 0.0
    done_reason: str = "stop"
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    final_text: str = ""
    logprobs: tuple[tuple[LogprobEntry, ...], ...] | None = None

    @classmethod
    def text(
        cls,
        text: str,
        *,
        chunks: Sequence[str] | None = None,
        chunk_delay: float = 0.0,
        first_byte_delay: float = 0.0,
        done_reason: str = "stop",
        eval_count: int | None = None,
        prompt_eval_count: int | None = None,
        final_text: str = "",
        logprobs: Sequence[Sequence[LogprobEntry]] | None = None,
    ) -> Reply:
        """A normal reply: ``text`` in ``chunks`` (token-sized by default), then a done line.

        With ``chunks`` given, ``text`` may be ``""``. ``final_text`` rides on the done line
        itself, as Ollama 0.30+ can send. ``chunk_delay`` is slept before every chunk after the
        first, ``first_byte_delay`` before anything. ``logprobs`` holds the wire entries
        (``{"token", "logprob", "bytes", "top_logprobs"}``, sent exactly as given) of each
        chunk, one list per chunk and optionally one more for the done line.

        Raises:
            ValueError: ``text`` is given and ``chunks`` do not join to it, or ``logprobs``
                does not have a list per chunk.
        """
        pieces = split_chunks(text) if chunks is None else tuple(chunks)
        if text and "".join(pieces) != text:
            raise ValueError("chunks must join to text")
        if logprobs is not None and len(logprobs) not in (len(pieces), len(pieces) + 1):
            raise ValueError(
                "logprobs needs one list per chunk (and may add one for the done line)"
            )
        return cls(
            chunks=pieces,
            chunk_delay=chunk_delay,
            first_byte_delay=first_byte_delay,
            done_reason=done_reason,
            eval_count=eval_count,
            prompt_eval_count=prompt_eval_count,
            final_text=final_text,
            logprobs=None if logprobs is None else tuple(tuple(e) for e in logprobs),
        )

    @classmethod
    def status(cls, code: int, message: str | None = None) -> Reply:
        """An HTTP error with Ollama's body ``{"error": message}``."""
        if message is None:
            message = BUSY_MESSAGE if code == 503 else http.HTTPStatus(code).phrase.lower()
        return cls(kind="status", code=code, message=message)

    @classmethod
    def mid_stream_error(cls, chunks: Iterable[str], message: str) -> Reply:
        """Status 200, some chunks, then a line ``{"error": message}`` and the end.

        Not streamed, the request fails with 500 and the message, as Ollama answers.
        """
        return cls(kind="error", chunks=tuple(chunks), code=500, message=message)

    @classmethod
    def cut(cls, chunks: Iterable[str]) -> Reply:
        """The stream ends cleanly without a done line; not streamed, 200 with ``done: false``."""
        return cls(kind="cut", chunks=tuple(chunks))

    @classmethod
    def reset(cls, after_chunks: Iterable[str] = ()) -> Reply:
        """Close the connection after the chunks, with no chunked terminator (or no response)."""
        return cls(kind="reset", chunks=tuple(after_chunks))

    @classmethod
    def whitespace(cls, n_chunks: int, chunk: str = " \n") -> Reply:
        """The ``format: "json"`` runaway: ``{`` then ``n_chunks`` whitespace chunks, ``length``."""
        return cls(chunks=("{", *(chunk,) * n_chunks), done_reason="length")

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Send nothing, not even headers, for ``seconds``; then reply ``{}``."""
        return cls(chunks=split_chunks("{}"), first_byte_delay=seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as it arrived: path, JSON body (``{}`` if none), headers (lower-case names)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


Responder = Callable[[Mapping[str, Any]], Reply]


class ScriptedEngine:
    """An engine that plays scripted replies and faults; see the module docstring."""

    def __init__(
        self,
        models: Sequence[str] = ("tiny",),
        version: str = DEFAULT_VERSION,
        capabilities: Mapping[str, Sequence[str]] | None = None,
        slots: int = 1,
        latency: float = 0.0,
        max_queue: int | None = None,
        responder: Responder | None = None,
        context_length: int = DEFAULT_CONTEXT_LENGTH,
    ) -> None:
        if slots < 1 or context_length < 1:
            raise ValueError("slots and context_length must be at least 1")
        self._version = version
        self._reads_truncate = _version_tuple(version) >= _TRUNCATE_SINCE
        self._sends_logprobs = _version_tuple(version) >= _LOGPROBS_SINCE
        caps = capabilities or {}
        self._entries = tuple(
            _entry(name, caps.get(name, ("completion",)), context_length) for name in models
        )
        self._slots = slots
        self._slot = threading.Semaphore(slots)
        self._latency = latency
        self._max_queue = max_queue
        self._responder = responder
        self._lock = threading.Lock()
        self._script: collections.deque[Reply] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._loaded: dict[str, ModelEntry] = {}
        self._in_flight = 0

    @property
    def version(self) -> str:
        """The version /api/version reports."""
        return self._version

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def script(self, *replies: Reply) -> None:
        """Queue replies; each generation request takes the next one."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        """Forget the queued replies and the recorded requests."""
        with self._lock:
            self._script.clear()
            self._requests.clear()

    def models(self) -> Sequence[ModelEntry]:
        """The scripted models."""
        return self._entries

    def loaded(self) -> Sequence[ModelEntry]:
        """Models used or loaded since start and not unloaded."""
        with self._lock:
            return tuple(self._loaded.values())

    def observe(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        """Record a request."""
        with self._lock:
            self._requests.append(RecordedRequest(path, dict(body), dict(headers)))

    def load(self, model: str, keep_alive: float | None, num_ctx: int | None = None) -> str:
        """Mark the model loaded (with ``num_ctx``, by default its whole context), or
        unloaded when ``keep_alive`` is 0."""
        with self._lock:
            if keep_alive == 0:
                self._loaded.pop(model, None)
                return "unload"
            entry = next(e for e in self._entries if e.name == model)
            n_ctx = _context_for(entry, num_ctx)
            self._loaded[model] = dataclasses.replace(entry, context_length=n_ctx)
            return "load"

    def generate(self, job: Job, stop: threading.Event) -> Generator[Event, None, None]:
        """Play the next reply for ``job``.

        Raises:
            Fault: 503 when the queue is full; 400 for a prompt longer than the context with
                ``truncate: false``; a scripted status or mid-stream error.
            Disconnect: a scripted reset, or the server is stopping.
        """
        entry = next(e for e in self._entries if e.name == job.model)
        n_ctx = _context_for(entry, job.options.get("num_ctx"))
        num_keep = int(job.options.get("num_keep", DEFAULT_NUM_KEEP))
        truncate = job.truncate or not self._reads_truncate
        words = fit_context(_prompt_text(job).split(), n_ctx, num_keep, truncate)
        with self._lock:
            if self._max_queue is not None and self._in_flight >= self._slots + self._max_queue:
                raise Fault(503, BUSY_MESSAGE)
            self._in_flight += 1
            reply = self._script.popleft() if self._script else None
        try:
            if reply is None:
                reply = self._responder(job.body) if self._responder else Reply.text("{}")
            yield from self._play(job, reply, len(words), stop)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _play(
        self, job: Job, reply: Reply, prompt_words: int, stop: threading.Event
    ) -> Generator[Event, None, None]:
        started = time.perf_counter_ns()
        while not self._slot.acquire(timeout=0.05):
            if stop.is_set():
                raise Disconnect
        logprobs = self._logprobs(job, reply)
        try:
            self.load(job.model, None, job.options.get("num_ctx"))
            slotted = time.perf_counter_ns()
            _pause(stop, self._latency + reply.first_byte_delay)
            first = time.perf_counter_ns()
            if reply.kind == "status":
                raise Fault(reply.code, reply.message)
            for i, chunk in enumerate(reply.chunks):
                if i:
                    _pause(stop, reply.chunk_delay)
                yield chunk if logprobs is None else Piece(chunk, logprobs[i])
            if reply.kind == "error":
                raise Fault(reply.code, reply.message)
            if reply.kind == "reset":
                raise Disconnect
            if reply.kind == "cut":
                return
            ended = time.perf_counter_ns()
        finally:
            self._slot.release()
        words = _prompt_text(job).split()
        prompt_count = prompt_words if reply.prompt_eval_count is None else reply.prompt_eval_count
        eval_count = len(reply.chunks) if reply.eval_count is None else reply.eval_count
        metrics = {
            "total_duration": max(1, ended - started),
            "load_duration": max(1, slotted - started),
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": max(1, first - slotted),
            "eval_count": eval_count,
            "eval_duration": max(1, ended - first),
        }
        context = [zlib.crc32(p.encode()) % 49152 for p in (*words, *reply.chunks)]
        joined = None if logprobs is None else list(itertools.chain.from_iterable(logprobs))
        yield Final(reply.done_reason, reply.final_text, metrics, context, joined)

    def _logprobs(self, job: Job, reply: Reply) -> tuple[tuple[LogprobEntry, ...], ...] | None:
        """The reply's entries per chunk (and done line) when this server would send them."""
        if not (job.logprobs and self._sends_logprobs) or reply.logprobs is None:
            return None
        return reply.logprobs


def _pause(stop: threading.Event, seconds: float) -> None:
    # An Event wait, not time.sleep, so stopping the server ends a hang at once.
    if seconds > 0 and stop.wait(seconds):
        raise Disconnect


def _prompt_text(job: Job) -> str:
    if job.messages:
        return " ".join(str(m.get("content") or "") for m in job.messages)
    return job.prompt


def _context_for(entry: ModelEntry, num_ctx: int | None) -> int:
    """The context a model runs with: ``num_ctx`` when asked for, capped at the model's own
    (Ollama caps it at the context the model was trained with)."""
    return min(num_ctx, entry.context_length) if num_ctx else entry.context_length


def _version_tuple(version: str) -> tuple[int, ...]:
    """
    >>> _version_tuple("0.12.6-rc1") >= (0, 12, 6)
    True
    """
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _entry(name: str, capabilities: Sequence[str], context_length: int) -> ModelEntry:
    return ModelEntry(
        name=name,
        size=1_048_576,
        digest=f"{zlib.crc32(name.encode()):08x}" * 8,
        family="scripted",
        parameter_size="1M",
        quantization_level="F16",
        capabilities=tuple(capabilities),
        context_length=context_length,
    )
