"""Hostile servers and documents: replies and inputs that try to break the promise.

- A server that streams forever, or sends one endless line, or an endless error or /api/show
  body, is cut off with a typed error while memory stays bounded.
- Huge, empty, binary and non-UTF-8 documents get clear errors (or are labelled) and never
  stop a batch; a reply with ``NaN`` never reaches an output file as non-standard JSON.
"""

from __future__ import annotations

import asyncio
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
from click.testing import CliRunner
from conftest import Scripted, rss

from extract import (
    AsyncExtractor,
    ConnectError,
    ExtractError,
    ExtractionFailed,
    Extractor,
    InputError,
    RequestRejected,
    RunawayOutput,
    ServerError,
    TransportError,
)
from extract._config import Settings
from extract._records import OutputFile, read_jsonl
from extract._transport import Transport
from extract.batch import aextract_many, extract_many
from extract.cli import main
from extract.errors import ConfigError, StreamError
from extract.server import Reply

N_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
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


# -- bad documents ----------------------------------------------------------------------------


def n_replies(scripted: Callable[..., Scripted]) -> Scripted:
    return scripted(slots=4, responder=lambda body: Reply.text('{"n": 1}'))


def test_bad_documents_get_clear_errors_and_never_stop_a_batch(
    scripted: Callable[..., Scripted],
) -> None:
    server = n_replies(scripted)
    huge = "lorem ipsum " * (MiB // 6)  # 2 MiB of text
    inputs: list[Any] = [
        {"id": "empty", "text": ""},
        {"id": "blank", "text": " \n\t "},
        b"\xff\xfe\x00binary",
        {"id": "bytes", "text": b"\x89PNG\r\n"},
        {"id": "number", "text": 42},
        None,
        {"id": "controls", "text": "a\x00b\x1b[31m\u202eevil\ufeff"},
        {"id": "huge", "text": huge},
        {"id": "fine", "text": "a document"},
    ]
    with Extractor("tiny", host=server.url, retry=1) as extractor:
        records = list(extract_many(extractor, inputs, N_SCHEMA, concurrency=2))
    outcome = {r.id or r.line: (r.ok, type(r.error).__name__) for r in records}
    assert len(records) == len(inputs)
    assert outcome == {
        "empty": (False, "InputError"),
        "blank": (False, "InputError"),
        3: (False, "InputError"),
        "bytes": (False, "InputError"),
        "number": (False, "InputError"),
        6: (False, "InputError"),
        "controls": (True, "NoneType"),
        "huge": (True, "NoneType"),
        "fine": (True, "NoneType"),
    }
    for record in records:
        if record.error is not None:
            assert record.error.message  # says what is wrong


def label_file(server: Scripted, source: Path, tmp_path: Path) -> tuple[Any, Path]:
    """``extract label`` of ``source`` with N_SCHEMA: the CLI result and the output path."""
    out = tmp_path / "out.jsonl"
    schema = tmp_path / "n.json"
    schema.write_text(json.dumps(N_SCHEMA))
    args = ["label", str(source), "-o", str(out), "-s", str(schema)]
    return CliRunner().invoke(main, [*args, "-m", "tiny", "--host", server.url]), out


def test_bad_lines_in_a_file_get_clear_errors_and_never_stop_the_command(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = n_replies(scripted)
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": "empty", "text": ""}\n'
        b"\xff\xfe\x00\x01 binary garbage\n"
        b'{"id": "latin1", "text": "caf\xe9"}\n'
        b'{"id": "nul", "text": "a\\u0000b"}\n'
        b"\x00\x00\x00\n"
        b'{"id": "huge", "text": "' + b"x" * (4 * MiB) + b'"}\n'
        b'{"id": "fine", "text": "a document"}\n'
    )
    result, out = label_file(server, source, tmp_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["ok"]) for r in lines] == [
        ("empty", False), (None, False), (None, False), ("nul", True), (None, False),
        ("huge", True), ("fine", True),
    ]  # fmt: skip
    assert [r["line"] for r in lines] == [1, 2, 3, 4, 5, 6, 7]
    for line in lines:
        assert line["ok"] or line["error"]["type"] == "InputError"


LONE_SURROGATE = "caf\udce9 au lait"


def test_a_document_with_a_lone_surrogate_gets_a_clear_error(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = n_replies(scripted)
    with Extractor("tiny", host=server.url, retry=1) as extractor:
        with pytest.raises(InputError):
            extractor.extract(LONE_SURROGATE, N_SCHEMA)
        records = list(extract_many(extractor, [LONE_SURROGATE, "fine"], N_SCHEMA))
    assert [(r.ok, type(r.error).__name__) for r in records] == [
        (False, "InputError"),
        (True, "NoneType"),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "s", "text": "caf\\udce9"}\n{"id": "fine", "text": "ok"}\n')
    result, out = label_file(server, source, tmp_path)
    assert result.exit_code == 1, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["s", "fine"]


def test_non_utf8_bytes_and_empty_text_are_input_errors(
    scripted: Callable[..., Scripted],
) -> None:
    server = n_replies(scripted)
    with Extractor("tiny", host=server.url) as extractor:
        for text in (b"caf\xe9", "", "   ", 42):
            with pytest.raises(InputError):
                extractor.extract(text, N_SCHEMA)  # type: ignore[arg-type]
        assert extractor.extract("caf\xe9".encode(), N_SCHEMA).value == {"n": 1}  # type: ignore[call-overload]
    assert len(server.generates()) == 1


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def test_a_reply_with_nan_never_reaches_the_output_as_invalid_json(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = scripted(responder=lambda body: Reply.text('{"x": NaN, "y": Infinity}'))
    schema = tmp_path / "xy.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"x": {"type": "number"}}}))
    source = tmp_path / "in.jsonl"
    source.write_text('"a document"\n')
    out = tmp_path / "out.jsonl"
    args = ["label", str(source), "-o", str(out), "-s", str(schema)]
    CliRunner().invoke(main, [*args, "-m", "tiny", "--host", server.url])
    [line] = out.read_text().splitlines()
    json.loads(line, parse_constant=reject_constant)


@pytest.mark.anyio
async def test_hostile_documents_in_an_async_batch_never_end_it(
    scripted: Callable[..., Scripted],
) -> None:
    server = n_replies(scripted)

    async def inputs() -> Any:
        for item in ("", b"\xff", {"text": None}, {"id": 1}, "fine"):
            await asyncio.sleep(0)
            yield item

    async with AsyncExtractor("tiny", host=server.url, retry=1) as extractor:
        records = [r async for r in aextract_many(extractor, inputs(), N_SCHEMA)]
    assert [r.ok for r in records] == [False, False, False, False, True]
    assert all(isinstance(r.error, InputError) for r in records[:4])
    assert not any(isinstance(r.error, RequestRejected | ConnectError) for r in records)
