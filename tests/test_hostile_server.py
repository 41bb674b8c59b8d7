"""Hostile servers: replies that try to break the promise.

- A server that streams forever, or sends one endless line, or an endless error or /api/show
  body, is cut off with a typed error while memory stays bounded.
- JSON nested past the decoder's recursion limit, wherever it comes from (a reply line, an
  error body, a /api/show body, an input or output line), gets a typed error.

Hostile documents are in ``test_hostile_documents``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import N_SCHEMA, rss

from extract import (
    ExtractError,
    ExtractionFailed,
    Extractor,
    RunawayOutput,
    ServerError,
    TransportError,
)
from extract.batch.records import OutputFile, read_jsonl
from extract.client.backends.ollama.transport import Transport
from extract.client.config import Settings
from extract.errors import ConfigError, StreamError

MiB = 2**20

# -- servers that never stop ------------------------------------------------------------------

Stream = Callable[[], Iterator[bytes]]


@dataclasses.dataclass
class Sent:
    """One endless reply: how many bytes went out, and what ended it."""

    bytes: int = 0
    ended_by: str = ""  # "client": it hung up; "cap": the server's own safety limit


class _Endless(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _EndlessServer

    def do_GET(self) -> None:
        self._json({"version": "0.33.0"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        owner = self.server.owner
        if self.path == "/api/show" and owner.show is None:
            self._json({"capabilities": ["completion"]})
        elif self.path == "/api/show" and owner.show is not None:
            self._stream(200, "application/json", owner.show)
        elif owner.generate is not None:
            self._stream(owner.status, "application/x-ndjson", owner.generate)

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, status: int, content_type: str, stream: Stream) -> None:
        owner = self.server.owner
        sent = Sent()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + owner.time_cap
        try:
            for piece in stream():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent.bytes += len(piece)
                if sent.bytes >= owner.byte_cap or time.monotonic() >= deadline:
                    sent.ended_by = "cap"
                    break
        except OSError:
            sent.ended_by = "client"
        finally:
            # Ended without the last chunk either way: the client must not take it as whole.
            self.close_connection = True
            owner.sent.append(sent)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return None


class _EndlessServer(ThreadingHTTPServer):
    # Closing the server waits for its handlers, so every reply is accounted for.
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: EndlessServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Endless)


@dataclasses.dataclass
class EndlessServer:
    """Just enough of Ollama's API; /api/generate (or /api/show) streams ``generate`` (or
    ``show``) until the client hangs up, or a safety cap (bytes or seconds) is reached."""

    generate: Stream | None = None
    show: Stream | None = None
    status: int = 200
    byte_cap: int = 1024 * MiB
    time_cap: float = 20.0
    sent: list[Sent] = dataclasses.field(default_factory=list)

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        httpd = _EndlessServer(self)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            thread.join()
            httpd.server_close()


def lines_of(make: Callable[[int], dict[str, Any]]) -> Stream:
    """An endless NDJSON stream: 256 KiB of ``make(i)`` lines, built once, sent over and over
    (the text repeats far too rarely to look like a token loop)."""
    block = bytearray()
    while len(block) < 256 * 1024:
        block += json.dumps(make(len(block))).encode() + b"\n"
    data = bytes(block)

    def stream() -> Iterator[bytes]:
        while True:
            yield data

    return stream


def endless_line() -> Iterator[bytes]:
    yield b'{"response": "'
    piece = b"a" * 65536
    while True:
        yield piece


def endless_bytes() -> Iterator[bytes]:
    piece = b"x" * 65536
    while True:
        yield piece


@contextlib.contextmanager
def rss_growth() -> Iterator[list[int]]:
    """How far resident memory rose above its level at the start of the block, sampled every
    few milliseconds (in the list, afterwards). Unlike tracemalloc, it slows nothing down."""
    start, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], rss() - start)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    growth: list[int] = []
    try:
        yield growth
    finally:
        done.set()
        sampler.join()
        growth.append(max(peak[0], rss() - start))


def extract_from(url: str, timeout: float = 2.0, **options: Any) -> ExtractError:
    """Run one extraction that must fail; return its error."""
    with (
        Extractor("tiny", host=url, retry=1, timeout=timeout, **options) as extractor,
        pytest.raises(ExtractError) as failure,
    ):
        extractor.extract("a document", N_SCHEMA)
    return failure.value


@pytest.mark.parametrize(
    "stream",
    [
        lines_of(lambda i: {"response": f"w{i} "}),
        lines_of(lambda i: {"thinking": f"t{i} "}),
        lines_of(lambda i: {"response": " \n"}),
        endless_line,
    ],
    ids=["words", "thinking", "whitespace", "one endless line"],
)
def test_an_endless_reply_is_cut_off_with_bounded_memory(stream: Stream) -> None:
    server = EndlessServer(generate=stream)
    with server.running() as url, rss_growth() as peak:
        error = extract_from(url, max_attempts=1)
    assert isinstance(error, ExtractionFailed)
    assert isinstance(error.last_error, RunawayOutput)
    assert [s.ended_by for s in server.sent] == ["client"]
    assert peak[0] < 64 * MiB


def test_an_endless_reply_without_text_is_cut_off() -> None:
    server = EndlessServer(generate=lines_of(lambda i: {"response": ""}), time_cap=3.0)
    with server.running() as url, rss_growth() as peak:
        error = extract_from(url, timeout=0.5, max_attempts=1)
    assert [s.ended_by for s in server.sent] == ["client"]
    assert isinstance(error, ExtractionFailed | TransportError)
    assert peak[0] < 64 * MiB


def test_an_endless_error_body_is_read_only_in_part() -> None:
    server = EndlessServer(generate=endless_bytes, status=500)
    with server.running() as url, rss_growth() as peak:
        error = extract_from(url)
    assert isinstance(error, ServerError)
    assert [s.ended_by for s in server.sent] == ["client"]
    assert peak[0] < 16 * MiB


def test_an_endless_show_body_is_cut_off_with_bounded_memory() -> None:
    server = EndlessServer(show=endless_bytes, byte_cap=96 * MiB)
    with server.running() as url, rss_growth() as peak:
        error = extract_from(url)
    assert isinstance(error, ExtractError)
    assert [s.ended_by for s in server.sent] == ["client"]
    assert peak[0] < 64 * MiB


# -- deep nesting -----------------------------------------------------------------------------

DEEP = b"[" * 100_000  # past the recursion limit of Python's JSON decoder


def transport_answering(status: int, body: bytes) -> Transport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return Transport(Settings.resolve("http://deep:1"), transport=httpx.MockTransport(handler))


def deep_reply_line() -> None:
    with pytest.raises(StreamError), transport_answering(200, DEEP + b"\n") as transport:
        transport.generate({"model": "tiny", "prompt": "p"})


def deep_error_body() -> None:
    with pytest.raises(ServerError), transport_answering(500, DEEP) as transport:
        transport.generate({"model": "tiny", "prompt": "p"})


def deep_show_body() -> None:
    with pytest.raises(ServerError), transport_answering(200, DEEP) as transport:
        transport.show("tiny")


def deep_input_line() -> None:
    docs = list(read_jsonl(io.BytesIO(DEEP + b'\n"fine"\n'), id_field="id", text_field="text"))
    assert [(d.line, type(d.error).__name__) for d in docs] == [(1, "InputError"), (2, "NoneType")]


def deep_output_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    record = b'{"id": "a", "ok": true}\n'
    path.write_bytes(record + DEEP)
    written = OutputFile(path).resume()  # a last line that is not a record: torn, cut off
    assert written.records == 1
    assert path.read_bytes() == record
    path.write_bytes(record + DEEP + b"\n" + record)
    with pytest.raises(ConfigError):  # not the last line: refused, as any other non-record
        OutputFile(path).resume()


@pytest.mark.parametrize(
    "check",
    [
        deep_reply_line,
        deep_error_body,
        deep_show_body,
        deep_input_line,
        deep_output_line,
    ],
    ids=["reply line", "error body", "show body", "input line", "output line"],
)
def test_deeply_nested_json_anywhere_gets_a_typed_error(
    check: Callable[..., None], tmp_path: Path
) -> None:
    if check is deep_output_line:
        check(tmp_path)
    else:
        check()
