"""The project's own server, run in a child process for each benchmark.

A separate process, as Ollama is: the server's threads then never compete with the client
under measurement for the interpreter lock. The scripted engine answers every generation with
one fixed reply and counts the generation requests in shared memory instead of recording them,
so a million-request run keeps the server's memory flat. A metered llama server logs what
every generation cost (:class:`~bench.labels_meter.MeteredEngine`) and hands the log to the
parent on request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
from collections.abc import Iterator, Mapping
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Literal

from extract.server import LlamaEngine, Reply, ScriptedEngine, default_model_path, serve

from .labels_meter import Generation, MeteredEngine

# Paths that run the model; the rest (version, show, tags) are not model calls.
GENERATION_PATHS = frozenset({"/api/generate", "/api/chat", "/v1/chat/completions"})
_START_TIMEOUT = 120.0
_STOP_TIMEOUT = 15.0


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSpec:
    """What to serve: a scripted engine with a fixed reply, or the real model."""

    kind: Literal["scripted", "llama"] = "scripted"
    reply: str = "{}"
    slots: int = 1
    latency: float = 0.0
    # llama only: the default model under each of these names, each its own llama.cpp instance
    # (so its own prompt cache), loaded before the server starts; empty: the default name.
    names: tuple[str, ...] = ()
    # llama only (ignored for scripted): log every generation's cost, read with
    # RunningServer.take_generations().
    metered: bool = False


class _CountingEngine(ScriptedEngine):
    """A scripted engine that counts generation requests and records nothing."""

    def __init__(self, calls: Synchronized[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._calls = calls

    def observe(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        if path in GENERATION_PATHS:
            with self._calls.get_lock():
                self._calls.value += 1


@dataclasses.dataclass(frozen=True, slots=True)
class RunningServer:
    """A server in a child process: its URL, its count of scripted model calls so far, and,
    when metered, the log of what its generations cost."""

    url: str
    pid: int
    _calls: Synchronized[int]
    _conn: Connection
    metered: bool = False

    @property
    def model_calls(self) -> int:
        return int(self._calls.value)

    def take_generations(self) -> list[Generation]:
        """Each generation the server finished since the last call, in order, with its cost.

        A generation is logged before its reply is sent, so once a request has been answered
        its cost is in the next take.

        Raises:
            RuntimeError: the server is not metered (``ServerSpec(metered=True)``).
        """
        if not self.metered:
            raise RuntimeError(
                "take_generations needs a server started with ServerSpec(metered=True)"
            )
        self._conn.send("take")
        generations: list[Generation] = self._conn.recv()
        return generations


def _llama_engine(spec: ServerSpec) -> Any:
    if not spec.names:
        inner = LlamaEngine()
    else:
        path = default_model_path()
        inner = LlamaEngine(dict.fromkeys(spec.names, path))
        for name in spec.names:
            inner.load(name, None)
    return MeteredEngine(inner) if spec.metered else inner


def _run(spec: ServerSpec, calls: Synchronized[int], conn: Connection) -> None:
    if spec.kind == "llama":
        engine: Any = _llama_engine(spec)
    else:
        reply = Reply.text(spec.reply)
        engine = _CountingEngine(
            calls,
            models=("tiny",),
            slots=spec.slots,
            latency=spec.latency,
            responder=lambda _body: reply,
        )
    with serve(engine) as server:
        conn.send(server.url)
        # Serve until the parent says stop or goes away; a metered server answers "take".
        with contextlib.suppress(EOFError):
            while conn.recv() == "take":
                conn.send(engine.take())


@contextlib.contextmanager
def running(spec: ServerSpec) -> Iterator[RunningServer]:
    """Start a server for ``spec`` in a child process; stop it on exit.

    Raises:
        RuntimeError: the server did not report its URL in time.
    """
    ctx = multiprocessing.get_context("spawn")
    calls: Synchronized[int] = ctx.Value("q", 0)
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_run, args=(spec, calls, child), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(_START_TIMEOUT):
            raise RuntimeError(f"the {spec.kind} server did not start")
        url = parent.recv()
        yield RunningServer(
            url, process.pid or 0, calls, parent, spec.metered and spec.kind == "llama"
        )
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(_STOP_TIMEOUT)
        if process.is_alive():
            process.terminate()
            process.join()
        parent.close()


def model_name(spec: ServerSpec) -> str:
    """The model name requests should use for ``spec``."""
    from extract.server import DEFAULT_LOCAL_MODEL

    return DEFAULT_LOCAL_MODEL if spec.kind == "llama" else "tiny"
