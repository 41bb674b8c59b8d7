"""The HTTP side of the server, shared by every engine: routes, NDJSON and SSE streams.

Standard library only: ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, a thread per
connection, chunked transfer encoding for streams. What concerns one connection whatever the
route (timeouts, bounded bodies, error answers to malformed requests) is in ``_connection``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import sys
import threading
import urllib.parse
from collections.abc import Callable, Generator
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from . import _replies
from ._connection import ConnectionHandler
from ._engine import Api, Disconnect, Engine, Event, Fault, Final, Job, find_model
from ._requests import chat_job, check_format, generate_job, openai_job, parse_body

log = logging.getLogger("extract.server")

DEFAULT_HOST = "127.0.0.1"
# How long stop() waits for request threads still finishing a reply.
_HANDLER_JOIN_SECONDS = 5.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open dozens of connections at once; the default backlog of 5 refuses some.
    request_queue_size = 256

    def __init__(self, host: str, port: int, engine: Engine) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.engine = engine
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._handlers: dict[threading.Thread, socket.socket] = {}
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that can stall for
        # seconds on machines without a resolver; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a reset keep-alive connection, a cut-off stream) is routine.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._lock:
            self._handlers[threading.current_thread()] = connection

    def untrack(self) -> None:
        with self._lock:
            self._handlers.pop(threading.current_thread(), None)

    def close_connections(self) -> None:
        """Wake every handler thread (idle keep-alive reads included) by shutting its socket."""
        with self._lock:
            connections = list(self._handlers.values())
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        with self._lock:
            threads = list(self._handlers)
        for thread in threads:
            thread.join(timeout)


class _Handler(ConnectionHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack()

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        raw = self._read_body()
        if raw is None:
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.engine.observe(path, _object_or_empty(raw), headers)
        route = _ROUTES.get((self.command, path))
        api: Api = "openai" if path.startswith("/v1/") else "generate"
        try:
            if route is None:
                self._send(404, b"404 page not found", "text/plain")
            else:
                route(self, raw)
        except Fault as fault:
            self._send_json(fault.status, _replies.error_body(api, fault.status, fault.message))
        except OSError:
            # The client went away mid-reply; nothing more can be sent on this connection.
            self.close_connection = True

    # -- routes -------------------------------------------------------------------------------

    def _root(self, raw: bytes) -> None:
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def _version(self, raw: bytes) -> None:
        self._send_json(200, {"version": self.server.engine.version})

    def _tags(self, raw: bytes) -> None:
        self._send_json(200, _replies.tags_body(self.server.engine.models()))

    def _ps(self, raw: bytes) -> None:
        self._send_json(200, _replies.ps_body(self.server.engine.loaded()))

    def _openai_models(self, raw: bytes) -> None:
        self._send_json(200, _replies.openai_models_body(self.server.engine.models()))

    def _show(self, raw: bytes) -> None:
        body = parse_body(raw)
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise Fault(400, "model is required")
        entry = find_model(self.server.engine, name)
        if entry is None:
            raise Fault(404, f"model '{name}' not found")
        self._send_json(200, _replies.show_body(entry))

    def _generate(self, raw: bytes) -> None:
        self._run(generate_job(parse_body(raw), self.server.engine))

    def _chat(self, raw: bytes) -> None:
        self._run(chat_job(parse_body(raw), self.server.engine))

    def _openai(self, raw: bytes) -> None:
        self._run(openai_job(parse_body(raw), self.server.engine))

    # -- generation ---------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        shaper = _replies.Shaper(job)
        if job.api != "openai" and not job.prompt and not job.messages:
            reason = self.server.engine.load(job.model, job.keep_alive)
            self._send_json(200, shaper.load(reason))
            return
        check_format(job)
        events = _guarded(self.server.engine.generate(job, self.server.stopping))
        try:
            try:
                first = next(events, None)
            except Disconnect:
                self._drop()
                return
            if job.stream:
                self._stream(shaper, first, events)
            else:
                self._collect(shaper, first, events)
        finally:
            events.close()

    def _stream(
        self, shaper: _replies.Shaper, event: Event | None, events: Generator[Event, None, None]
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", shaper.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while event is not None:
                if isinstance(event, Final):
                    self._write_line(shaper, shaper.final(event))
                    if shaper.job.api == "openai":
                        self._write_chunk(b"data: [DONE]\n\n")
                    break
                self._write_line(shaper, shaper.chunk(event))
                event = next(events, None)
        except Fault as fault:
            self._write_line(shaper, _replies.error_body(shaper.job.api, 200, fault.message))
        except Disconnect:
            self._drop()
            return
        self._write_chunk(b"")

    def _collect(
        self, shaper: _replies.Shaper, event: Event | None, events: Generator[Event, None, None]
    ) -> None:
        texts: list[str] = []
        try:
            while event is not None and not isinstance(event, Final):
                texts.append(event)
                event = next(events, None)
        except Disconnect:
            self._drop()
            return
        self._send_json(200, shaper.whole("".join(texts), event))

    # -- writing ------------------------------------------------------------------------------

    def _write_line(self, shaper: _replies.Shaper, line: dict[str, Any]) -> None:
        data = json.dumps(line, ensure_ascii=False)
        framed = f"data: {data}\n\n" if shaper.job.api == "openai" else f"{data}\n"
        self._write_chunk(framed.encode())

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _guarded(events: Generator[Event, None, None]) -> Generator[Event, None, None]:
    """The engine's events, any unexpected failure turned into Ollama's runner-crash 500."""
    try:
        yield from events
    except (Fault, Disconnect):
        raise
    except Exception as exc:
        log.exception("engine failed")
        raise Fault(500, f"model runner has unexpectedly stopped: {exc}") from exc


def _object_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


_ROUTES: dict[tuple[str, str], Callable[[_Handler, bytes], None]] = {
    ("GET", "/"): _Handler._root,
    ("HEAD", "/"): _Handler._root,
    ("GET", "/api/version"): _Handler._version,
    ("GET", "/api/tags"): _Handler._tags,
    ("GET", "/api/ps"): _Handler._ps,
    ("POST", "/api/show"): _Handler._show,
    ("POST", "/api/generate"): _Handler._generate,
    ("POST", "/api/chat"): _Handler._chat,
    ("POST", "/v1/chat/completions"): _Handler._openai,
    ("GET", "/v1/models"): _Handler._openai_models,
}


class RunningServer:
    """A server answering on a background thread; a context manager that stops it on exit."""

    def __init__(self, engine: Engine, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.engine = engine
        self._httpd = _Server(host, port, engine)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"extract-server-{self.port}",
            daemon=True,
        )
        self._stopped = False

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:43121``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Start answering on the background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end replies in progress, close connections and join the threads."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._httpd.join_handlers(_HANDLER_JOIN_SECONDS)

    def wait(self) -> None:
        """Block until the server stops (interruptible by Ctrl-C)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(engine: Engine, host: str = DEFAULT_HOST, port: int = 0) -> RunningServer:
    """Start an Ollama-compatible server for ``engine`` on a background thread.

    ``port=0`` picks a free port; read it from ``.url``. Use as a context manager, or call
    ``.stop()``.

    Raises:
        OSError: the address cannot be bound.
    """
    return RunningServer(engine, host, port).start()


def run_forever(
    engine: Engine,
    host: str = DEFAULT_HOST,
    port: int = 11435,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``engine`` until Ctrl-C, then stop cleanly. ``on_ready`` gets the URL once bound.

    Raises:
        OSError: the address cannot be bound.
    """
    with serve(engine, host, port) as server:
        if on_ready is not None:
            on_ready(server.url)
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()
