"""Malformed requests over raw sockets: answered with a JSON error, never a traceback.

Every bad request gets its status and Ollama's ``{"error": ...}`` body, its connection closed,
nothing on stderr, and a well-formed request on another connection is served while the bad one
is open and after it. Bodies are read within a limit and without allocating what a header claims.
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import tracemalloc
from collections.abc import Iterator
from email.message import Message

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.server import RunningServer, ScriptedEngine, serve
from extract.server import _connection as connection
from extract.server._framing import MAX_BODY_BYTES, MAX_LINE_BYTES, BadFraming, read_body

MiB = 2**20
POST = b"POST /api/generate HTTP/1.1\r\nHost: x\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with serve(ScriptedEngine()) as srv:
        yield srv


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers (lower-case names) and body of the one reply before the server closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def served(server: RunningServer) -> bool:
    reply = httpx.post(
        f"{server.url}/api/generate",
        json={"model": "tiny", "prompt": "hi", "stream": False},
        timeout=10,
    )
    return reply.status_code == 200 and reply.json()["done"] is True


def stop_quietly(server: RunningServer, capfd: pytest.CaptureFixture[str]) -> None:
    server.stop()  # joins the request threads, so whatever they would print is printed
    assert "Traceback" not in capfd.readouterr().err


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


# (request bytes, status, words the error carries)
BAD = {
    "content length not a number": (POST + b"Content-Length: abc\r\n\r\n{}", 400, "abc"),
    "negative content length": (POST + b"Content-Length: -5\r\n\r\n{}", 400, "'-5'"),
    "content length with a sign": (POST + b"Content-Length: +2\r\n\r\n{}", 400, "'+2'"),
    "conflicting content lengths": (
        POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        400,
        "conflicting",
    ),
    "huge content length, tiny body": (
        POST + b"Content-Length: 99999999999\r\n\r\n{}",
        413,
        f"at most {MAX_BODY_BYTES} bytes",
    ),
    "thousands of digits": (POST + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", 413, "large"),
    "just above the limit": (
        POST + b"Content-Length: %d\r\n\r\n{}" % (MAX_BODY_BYTES + 1),
        413,
        "too large",
    ),
    "both framings": (
        POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"{}"),
        400,
        "not both",
    ),
    "unsupported transfer coding": (
        POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(b"{}"),
        501,
        "gzip",
    ),
    "chunked not last": (POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "end in chunked"),
    "chunk size not hex": (CHUNKED + b"zz\r\n{}\r\n0\r\n\r\n", 400, "invalid chunk size 'zz'"),
    "empty chunk size": (CHUNKED + b"\r\n", 400, "invalid chunk size"),
    "chunk size line too long": (
        CHUNKED + b"2;" + b"x" * (2 * MAX_LINE_BYTES) + b"\r\n{}\r\n0\r\n\r\n",
        400,
        "chunk size line longer",
    ),
    "chunk longer than its size": (CHUNKED + b"2\r\n{}}\r\n0\r\n\r\n", 400, "followed by CRLF"),
    "one chunk above the limit": (CHUNKED + b"%x\r\n{}" % (MAX_BODY_BYTES + 1), 413, "large"),
    "chunks adding up above the limit": (
        CHUNKED + b"10\r\n" + b"x" * 16 + b"\r\n%x\r\n" % (MAX_BODY_BYTES - 8),
        413,
        "too large",
    ),
    "request line too long": (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "URI"),
    "header line too long": (POST + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431, "too long"),
    "too many headers": (POST + b"X-Many: 1\r\n" * 101 + b"\r\n", 431, "headers"),
    "garbage request line": (b"GET / HTTP/1.1 extra\r\n\r\n", 400, "bad request version"),
}
# Bodies that end early: the client half-closes its side and waits for the answer.
CUT = {
    "content length body cut": (POST + b"Content-Length: 10\r\n\r\n{}", 400, "8 bytes before"),
    "chunked body cut mid-chunk": (CHUNKED + b"5\r\n{}", 400, "3 bytes before"),
    "chunked body cut before the last chunk": (CHUNKED + b"2\r\n{}\r\n", 400, "last chunk"),
    "chunked body cut in the trailers": (CHUNKED + b"0\r\nX-T: 1\r\n", 400, "last chunk"),
}


@pytest.mark.parametrize(
    ("request_bytes", "status", "words", "half_close"),
    [pytest.param(*case, False, id=name) for name, case in BAD.items()]
    + [pytest.param(*case, True, id=name) for name, case in CUT.items()],
)
def test_malformed_framing_gets_a_json_error_and_the_server_goes_on(
    server: RunningServer,
    capfd: pytest.CaptureFixture[str],
    request_bytes: bytes,
    status: int,
    words: str,
    half_close: bool,
) -> None:
    bad = connect(server)
    bad.sendall(request_bytes)
    if half_close:
        bad.shutdown(socket.SHUT_WR)
    assert served(server)
    got_status, headers, body = answer(bad)
    assert (got_status, headers["content-type"], headers["connection"]) == (
        status,
        "application/json; charset=utf-8",
        "close",
    )
    assert list(json.loads(body)) == ["error"]
    assert words.lower() in json.loads(body)["error"].lower()
    assert served(server)
    stop_quietly(server, capfd)


def test_openai_routes_get_openai_shaped_framing_errors(server: RunningServer) -> None:
    bad = connect(server)
    bad.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n")
    status, _, body = answer(bad)
    assert status == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def test_an_expected_body_above_the_limit_is_refused_before_it_is_sent(
    server: RunningServer,
) -> None:
    bad = connect(server)
    bad.sendall(POST + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1))
    status, _, body = answer(bad)  # a 413 straight away, not "100 Continue" first
    assert (status, "too large" in json.loads(body)["error"]) == (413, True)


def test_chunk_extensions_and_trailers_are_accepted_on_a_kept_alive_connection(
    server: RunningServer,
) -> None:
    body = json.dumps({"model": "tiny", "prompt": "hi", "stream": False}).encode()
    framed = b"%x;name=value\r\n%s\r\n%x ; other\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (
        5,
        body[:5],
        len(body) - 5,
        body[5:],
    )
    sock = connect(server)
    sock.sendall(CHUNKED + framed + b"GET /api/version HTTP/1.1\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert (first[:3], second[:3]) == (b"200", b"200")
    assert json.loads(first.partition(b"\r\n\r\n")[2])["done"] is True
    assert json.loads(second.partition(b"\r\n\r\n")[2]) == {"version": "0.33.0"}


# -- clients that stall --------------------------------------------------------------------


def test_a_stalled_client_holds_no_one_else_up(
    server: RunningServer, capfd: pytest.CaptureFixture[str]
) -> None:
    stalled_mid_body = connect(server)
    stalled_mid_body.sendall(POST + b"Content-Length: 100\r\n\r\n{")
    stalled_mid_headers = connect(server)
    stalled_mid_headers.sendall(POST + b"Content-Le")
    assert all(served(server) for _ in range(3))
    for sock in (stalled_mid_body, stalled_mid_headers):
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # still waited on: no answer, not closed
            sock.recv(1)
        sock.close()
    stop_quietly(server, capfd)


def test_a_client_stalled_past_the_timeout_is_answered_or_dropped(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(connection, "SOCKET_TIMEOUT_SECONDS", 0.3)
    with serve(ScriptedEngine()) as server:
        mid_body, mid_headers, idle = connect(server), connect(server), connect(server)
        mid_body.sendall(POST + b"Content-Length: 100\r\n\r\n{")
        mid_headers.sendall(POST + b"Content-Le")
        status, _, body = answer(mid_body)
        assert (status, "no more of the body came" in json.loads(body)["error"]) == (408, True)
        # Headers not yet whole, or no request at all: nothing to answer, the socket is closed.
        assert mid_headers.recv(1) == idle.recv(1) == b""
        assert served(server)
        stop_quietly(server, capfd)


# -- the body reader on its own ------------------------------------------------------------


def chunked_headers() -> Message:
    headers = Message()
    headers["Transfer-Encoding"] = "chunked"
    return headers


def length_headers(length: int) -> Message:
    headers = Message()
    headers["Content-Length"] = str(length)
    return headers


@given(
    body=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=1, max_value=2999), max_size=8),
    extension=st.sampled_from([b"", b";a=b", b" ; x"]),
)
def test_a_chunked_body_reads_back_however_it_was_cut(
    body: bytes, cuts: list[int], extension: bytes
) -> None:
    bounds = [0, *sorted({c for c in cuts if c < len(body)}), len(body)]
    pieces = [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    framed = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in pieces)
    stream = io.BytesIO(framed + b"0\r\n\r\nNEXT REQUEST")
    assert read_body(chunked_headers(), stream, limit=len(body)) == body
    assert stream.read() == b"NEXT REQUEST"  # not a byte of the next request consumed
    if body:
        with pytest.raises(BadFraming) as refused:
            read_body(chunked_headers(), io.BytesIO(framed), limit=len(body) - 1)
        assert refused.value.status == 413


@given(body=st.binary(max_size=3000), limit=st.integers(min_value=0, max_value=3000))
def test_a_content_length_body_reads_back_within_the_limit(body: bytes, limit: int) -> None:
    stream = io.BytesIO(body + b"NEXT REQUEST")
    if len(body) <= limit:
        assert read_body(length_headers(len(body)), stream, limit=limit) == body
        assert stream.read() == b"NEXT REQUEST"
    else:
        with pytest.raises(BadFraming) as refused:
            read_body(length_headers(len(body)), stream, limit=limit)
        assert (refused.value.status, stream.read()) == (413, body + b"NEXT REQUEST")


@pytest.mark.parametrize(
    ("headers", "wire"),
    [
        (length_headers(100 * MiB), b"{}"),
        (chunked_headers(), b"%x\r\n{}" % (100 * MiB)),
    ],
    ids=["content length", "chunk size"],
)
def test_what_a_header_claims_is_never_allocated_before_it_arrives(
    headers: Message, wire: bytes
) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BadFraming) as cut:
            read_body(headers, io.BytesIO(wire))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert cut.value.status == 400
    assert peak < 4 * MiB  # bytes that arrived, plus one bounded read; not the 100 MiB claimed
