"""Each model's engine in a child process of its own, so that a native crash cannot end ours.

llama.cpp is native code: a fault in it (a segfault in a CPU-specific kernel, an abort on an
assertion, the kernel's out-of-memory killer) ends the process it runs in. Ollama runs llama.cpp
in a "runner" child process for that reason, and so does :class:`IsolatedEngine`: it starts one
child per model on first use and talks to it over a socket pair. When a child dies, every request
waiting on it fails with :class:`EngineCrashed` — over HTTP a 500 ``{"error": "model runner has
unexpectedly stopped: ..."}``, as Ollama answers — and the next request starts a fresh child.

Messages are pickled tuples in multiprocessing's framing, each request tagged with an id::

    parent → child   (spec)                          once, first: what engine to build
                     ("load", id, keep_alive) | ("generate", id, job) | ("cancel", id)
    child → parent   (id, "event", str | Piece | Final) | (id, "fault", status, message)
                     (id, "disconnect") | (id, "done", result, n_ctx)

Every request ends with exactly one fault, disconnect or done message. The child serves its
requests one at a time, in order; a parent that stops listening sends ``cancel`` and the child
stops that generation at its next token. A child whose parent goes away exits at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import itertools
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from ._engine import Disconnect, Engine, EngineCrashed, Event, Fault, Final, Job, ModelEntry

_POLL_SECONDS = 0.05
_EXIT_WAIT_SECONDS = 5.0
_CHILD_MAIN = (
    "import sys; from extract.server._isolated import child_main; child_main(sys.argv[1:])"
)
_NATIVE_FAULTS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT, signal.SIGFPE}


@dataclasses.dataclass(frozen=True, slots=True)
class ChildSpec:
    """What a child builds: ``factory(model, **kwargs)``, importable as ``module:qualname``."""

    factory: str
    kwargs: Mapping[str, Any]
    path: tuple[str, ...]


def spec_for(factory: Callable[..., Engine], kwargs: Mapping[str, Any]) -> ChildSpec:
    """The spec of a module-level ``factory``, with this process's import path for the child."""
    name = f"{factory.__module__}:{factory.__qualname__}"
    if "<" in name:
        raise ValueError(f"the engine factory must be a module-level function, not {name}")
    return ChildSpec(name, dict(kwargs), tuple(p for p in sys.path if p))


class IsolatedEngine:
    """An :class:`~extract.server.Engine` whose models each run in a child process.

    ``entries`` are the models offered (listed without starting anything); the first request
    for one starts a child that builds its engine with ``spec``. Unloading a model
    (``keep_alive: 0``) ends its child. :meth:`close` ends them all.
    """

    def __init__(self, spec: ChildSpec, entries: Sequence[ModelEntry], version: str) -> None:
        self._spec = spec
        self._entries = {entry.name: entry for entry in entries}
        self._version = version
        self._lock = threading.Lock()
        self._children: dict[str, _Child] = {}
        self._ids = itertools.count(1)
        # Children also end when the engine is dropped without close(), not at interpreter exit.
        self._finalizer = weakref.finalize(self, _close_all, self._children)

    @property
    def version(self) -> str:
        """The version /api/version reports."""
        return self._version

    def models(self) -> Sequence[ModelEntry]:
        """Every model offered."""
        return tuple(self._entries.values())

    def loaded(self) -> Sequence[ModelEntry]:
        """The models whose child holds them in memory, with the context they were loaded with."""
        with self._lock:
            live = [(name, c.n_ctx) for name, c in self._children.items() if c.alive and c.n_ctx]
        return tuple(dataclasses.replace(self._entries[n], context_length=ctx) for n, ctx in live)

    def observe(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        """Requests are not recorded."""

    def load(self, model: str, keep_alive: float | None) -> str:
        """Load ``model`` in its child, or end the child when ``keep_alive`` is 0.

        Raises:
            Fault: the child's engine refused (e.g. 500, the model cannot load).
            EngineCrashed: the child died while loading.
        """
        if keep_alive == 0:
            with self._lock:
                child = self._children.pop(model, None)
            if child is not None:
                child.close()
            return "unload"
        reason = "load"
        for message in self._request(model, "load", keep_alive, threading.Event()):
            reason = str(message[1])
        return reason

    def generate(self, job: Job, stop: threading.Event) -> Generator[Event, None, None]:
        """The reply's events as the child produces them.

        Raises:
            Fault: as the child's engine raised it.
            EngineCrashed: the child died (a signal, an out-of-memory kill) mid-request.
            Disconnect: ``stop`` was set, or the child's engine dropped the connection.
        """
        final = None
        for message in self._request(job.model, "generate", job, stop):
            if message[0] != "event":
                continue
            if isinstance(message[1], Final):
                final = message[1]  # held until the child says it is done with the request
            else:
                yield message[1]
        if final is not None:
            yield final

    def close(self) -> None:
        """End every child (a generation in progress fails with :class:`EngineCrashed`)."""
        _close_all(self._children)

    def _request(
        self, model: str, kind: str, argument: Any, stop: threading.Event
    ) -> Generator[tuple[Any, ...], None, None]:
        """Send one request to ``model``'s child; yield its event and done messages.

        The child is given one request at a time, as it serves them: a crash then fails only
        the request it was running, and the others go to the next child.
        """
        child = self._acquire(model, stop)
        request_id = next(self._ids)
        replies = child.register(request_id)
        finished = False
        try:
            child.send((kind, request_id, argument))
            while True:
                try:
                    message = replies.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if stop.is_set():
                        raise Disconnect from None
                    continue
                tag = message[0]
                if tag == "event":
                    yield message
                    continue
                finished = True
                if tag == "done":
                    child.n_ctx = int(message[2])
                    yield message
                    return
                if tag == "fault":
                    raise Fault(int(message[1]), str(message[2]))
                if tag == "disconnect":
                    raise Disconnect
                raise EngineCrashed(model, str(message[1]), message[2])
        finally:
            if not finished:
                child.cancel(request_id)
            child.unregister(request_id)
            child.turn.release()

    def _acquire(self, model: str, stop: threading.Event) -> _Child:
        """A live child for ``model`` whose turn this caller now holds."""
        while True:
            child = self._child(model)
            while not child.turn.acquire(timeout=_POLL_SECONDS):
                if stop.is_set():
                    raise Disconnect
            if child.alive:
                return child
            child.turn.release()

    def _child(self, model: str) -> _Child:
        with self._lock:
            child = self._children.get(model)
            if child is None or not child.alive:
                child = self._children[model] = _Child(self._spec, model)
            return child


def _close_all(children: dict[str, _Child]) -> None:
    for child in list(children.values()):
        child.close()
    children.clear()


class _Child:
    """One child process: its connection, and a queue per request waiting on it."""

    def __init__(self, spec: ChildSpec, model: str) -> None:
        self.model = model
        self.n_ctx = 0
        self.alive = True
        self.turn = threading.Lock()
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD_MAIN, str(theirs.fileno()), model],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # Ctrl-C in a terminal signals the whole foreground group: the parent decides.
                start_new_session=True,
            )
        self._socket = ours
        self._conn = Connection(os.dup(ours.fileno()))
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.SimpleQueue[tuple[Any, ...]]] = {}
        self.send(spec)
        threading.Thread(target=self._dispatch, name=f"runner-{model}", daemon=True).start()

    def register(self, request_id: int) -> queue.SimpleQueue[tuple[Any, ...]]:
        replies: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        with self._lock:
            if not self.alive:
                replies.put(("crashed", *self._death()))
            self._waiting[request_id] = replies
        return replies

    def unregister(self, request_id: int) -> None:
        with self._lock:
            self._waiting.pop(request_id, None)

    def send(self, message: Any) -> None:
        """Send ``message``; a child already gone shows up as its death on the reply queues."""
        with self._send_lock, contextlib.suppress(OSError):
            self._conn.send(message)

    def cancel(self, request_id: int) -> None:
        if self.alive:
            self.send(("cancel", request_id))

    def close(self) -> None:
        """End the child: closing our end makes it exit; kill it if it does not."""
        self.alive = False
        # Shut the socket down first: a close alone would not wake our own blocked reader.
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._conn.close()
        self._socket.close()
        try:
            self._process.wait(_EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _dispatch(self) -> None:
        """Route the child's messages to their requests until it dies, then tell them all."""
        try:
            while True:
                message = self._conn.recv()
                with self._lock:
                    replies = self._waiting.get(message[0])
                if replies is not None:
                    replies.put(message[1:])
        except (EOFError, OSError):
            pass
        with self._lock:
            self.alive = False
            death = self._death()
            for replies in self._waiting.values():
                replies.put(("crashed", *death))

    def _death(self) -> tuple[str, int | None]:
        """Ollama's runner-crash message, naming the signal and the model, and the signal."""
        try:
            code = self._process.wait(_EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        return crash_message(self.model, code), (-code if code < 0 else None)


def crash_message(model: str, returncode: int) -> str:
    """What a request hears when the child running ``model`` ended with ``returncode``.

    >>> crash_message("m", -9).split(": ", 1)[1][:54]
    "the engine process for model 'm' was killed by SIGKILL"
    """
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        how = f"was killed by {name}"
        if number in _NATIVE_FAULTS:
            hint = (
                "a crash in native code (llama.cpp); on a CPU with AMX try "
                "EXTRACT_LLAMA_EXTRA_BUFFERS=0, and report it with the output of `lscpu`"
            )
        elif number == signal.SIGKILL:
            hint = "often the out-of-memory killer: try a smaller num_ctx or fewer models at once"
        else:
            hint = "something outside extract ended it"
    else:
        how, hint = f"exited with status {returncode}", "its error output says why"
    return (
        f"model runner has unexpectedly stopped: the engine process for model {model!r} {how} "
        f"({hint}); the next request starts a new one"
    )


# -- the child ------------------------------------------------------------------------------------


def _serve_child(conn: Connection, engine: Engine, model: str) -> None:
    """Answer the parent's requests one at a time until it goes away."""
    send_lock = threading.Lock()
    cancelled: set[int] = set()
    work: queue.SimpleQueue[tuple[str, int, Any]] = queue.SimpleQueue()

    def send(*message: Any) -> None:
        with send_lock:
            conn.send(message)

    def read() -> None:
        try:
            while True:
                message = conn.recv()
                if message[0] == "cancel":
                    cancelled.add(message[1])
                else:
                    work.put(message)
        except (EOFError, OSError):
            os._exit(0)  # the parent is gone: nobody is left to answer

    threading.Thread(target=read, name="runner-read", daemon=True).start()
    never = threading.Event()
    while True:
        kind, request_id, argument = work.get()
        if request_id in cancelled:  # the parent stopped waiting before it started
            cancelled.discard(request_id)
            send(request_id, "disconnect")
            continue
        try:
            result = None
            if kind == "load":
                result = engine.load(model, argument)
            else:
                events = engine.generate(argument, never)
                try:
                    for event in events:
                        if request_id in cancelled:
                            break
                        send(request_id, "event", event)
                finally:
                    events.close()
        except Fault as fault:
            send(request_id, "fault", fault.status, fault.message)
        except Disconnect:
            send(request_id, "disconnect")
        except Exception as exc:  # an engine's bug: the request fails, the child lives on
            send(request_id, "fault", 500, f"model runner has unexpectedly stopped: {exc}")
        else:
            loaded = engine.loaded()
            send(request_id, "done", result, loaded[0].context_length if loaded else 0)
        finally:
            cancelled.discard(request_id)


def child_main(argv: Sequence[str]) -> None:
    """A child's whole life: build the engine the parent's spec names, then serve it."""
    fd, model = int(argv[0]), argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    spec: ChildSpec = conn.recv()
    sys.path[:0] = [p for p in spec.path if p not in sys.path]
    module, _, qualname = spec.factory.partition(":")
    factory: Any = importlib.import_module(module)
    for part in qualname.split("."):
        factory = getattr(factory, part)
    _serve_child(conn, factory(model, **spec.kwargs), model)
