"""One client's HTTP/1.1 connection, whatever the routes: timeouts, bodies, answers, closing.

A client's mistakes never reach stderr. A request the server cannot frame is answered with
Ollama's ``{"error": ...}`` (400, 413 or 501 from ``_framing``; 408 for a body that stops
coming; 414 and 431 for a request line or headers too long, which the base class refuses
itself) and its connection closed, since the stream's position is then unknown. A client that
stalls is dropped after :data:`SOCKET_TIMEOUT_SECONDS`. Other connections have their own
threads and go on being served throughout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

from . import _framing, _replies
from ._engine import Api

log = logging.getLogger("extract.server")

# How long one read or write on a client's socket may wait: for the next request on a kept-alive
# connection, for more of a request's headers or body, for the client to take more of a reply.
# A client stalled longer is dropped, so it cannot hold a thread forever. A minute, as common
# web servers allow; generating a reply does not count, since the socket is not waited on then.
SOCKET_TIMEOUT_SECONDS = 60.0
# After an error answer, how long unread request bytes are drained before closing: closing with
# bytes unread makes the kernel reset the connection, and a reset can destroy the answer before
# the client has read it.
_LINGER_SECONDS = 1.0
_JSON = "application/json; charset=utf-8"


class ConnectionHandler(BaseHTTPRequestHandler):
    """The connection-level half of the server's handler; the routes live in a subclass."""

    protocol_version = "HTTP/1.1"
    server_version = "extract-server"
    sys_version = ""
    # A request line without a readable version still gets a status line and headers: the
    # base's default, HTTP/0.9, has neither, and no client speaks it.
    default_request_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm on, the second
        # waits for the client's delayed ACK (~40 ms a request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.settimeout(SOCKET_TIMEOUT_SECONDS)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("%s - %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer ``code`` with Ollama's ``{"error": message}``, then close the connection.

        The base class answers what it refuses itself (a malformed request line, a header line
        too long, too many headers) through this too, so those get JSON, not its HTML page.
        """
        if message is None:
            message = self.responses.get(code, ("error",))[0]
        self.log_error("code %d, message %s", code, message)
        # The request line may not have been read, so there may be no path yet.
        path = urllib.parse.urlsplit(getattr(self, "path", "")).path
        api: Api = "openai" if path.startswith("/v1/") else "generate"
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send_json(code, _replies.error_body(api, code, message))
            self._linger()

    def handle_expect_100(self) -> bool:
        # Refuse a body the server would refuse before the client sends it, not after.
        try:
            _framing.body_length(self.headers)
        except _framing.BadFraming as bad:
            self.send_error(bad.status, bad.message)
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes | None:
        """The request's body, or None once the request has been answered or abandoned."""
        try:
            return _framing.read_body(self.headers, self.rfile)
        except _framing.BadFraming as bad:
            self.send_error(bad.status, bad.message)
        except TimeoutError:
            self.send_error(408, f"no more of the body came for {SOCKET_TIMEOUT_SECONDS:g} s")
        except OSError:
            # The client went away mid-body; there is no one to answer.
            self.close_connection = True
        return None

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode(), _JSON)

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _linger(self) -> None:
        """Send what is buffered, then drain what the client still sends, for a short while."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            self.connection.settimeout(left)
            if not self.connection.recv(65536):
                return

    def _drop(self) -> None:
        """End the connection at once: no status line, or no chunk terminator after one."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
