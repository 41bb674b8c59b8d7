"""Request bodies read off the wire within limits: ``Content-Length`` or chunked.

:func:`read_body` takes a request's headers and its byte stream and returns the body, or raises
:class:`BadFraming` carrying the status to answer: 400 for framing it cannot follow (a length
that is not a number, both lengths at once, a bad chunk, a body that ends early), 413 for a body
above the limit, 501 for a transfer coding other than chunked. Memory grows with the bytes that
arrive, never with what a header claims: a client announcing 90 GB and sending two bytes costs
two bytes. After a BadFraming the stream's position is unknown, so the caller closes the
connection once it has answered.

>>> import io
>>> from email.message import Message
>>> headers = Message()
>>> headers["Transfer-Encoding"] = "chunked"
>>> read_body(headers, io.BytesIO(b"3;ext=1\\r\\nabc\\r\\n2\\r\\nde\\r\\n0\\r\\n\\r\\n"))
b'abcde'
>>> read_body(headers, io.BytesIO(b"zz\\r\\n"))
Traceback (most recent call last):
...
extract.server._framing.BadFraming: invalid chunk size 'zz'
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Protocol

# Ollama requests carry images as base64 inside the JSON body (4/3 of each file's size), often
# several to a request; 128 MiB holds a handful of full-resolution scans, while one request
# still cannot make the server hold more than that.
MAX_BODY_BYTES = 128 * 2**20
# A chunk-size line is a few hex digits and perhaps an extension; a longer one is not a client
# sending a body but one probing the server. Trailer lines share the limit.
MAX_LINE_BYTES = 4096
MAX_TRAILERS = 100
# Bodies are read this much at a time, so what a header claims is never allocated up front
# (a buffered read of n bytes allocates n before waiting for them).
_PIECE_BYTES = 2**20
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class BadFraming(Exception):
    """A request body that cannot be read: ``status`` to answer and the ``message`` to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Reader(Protocol):
    """The part of a binary stream the reader uses (a connection's ``rfile``, ``io.BytesIO``)."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


def body_length(headers: Message, limit: int = MAX_BODY_BYTES) -> int | None:
    """The body's size from the headers (0 when none is announced), or None when chunked.

    Raises:
        BadFraming: 400 for an invalid or conflicting ``Content-Length``, both it and
            ``Transfer-Encoding``, or chunked not the last coding; 413 above ``limit``; 501 for
            a transfer coding other than chunked.
    """
    lengths = headers.get_all("Content-Length") or []
    encodings = headers.get_all("Transfer-Encoding") or []
    if lengths and encodings:
        # Two framings at once is how requests are smuggled past proxies: refuse both.
        raise BadFraming(400, "send Content-Length or Transfer-Encoding, not both")
    if encodings:
        codings = [c.strip().lower() for value in encodings for c in value.split(",")]
        if codings[-1] != "chunked":
            raise BadFraming(400, "Transfer-Encoding must end in chunked, or the body has no end")
        if len(codings) > 1:
            raise BadFraming(501, f"unsupported Transfer-Encoding {', '.join(codings)!r}")
        return None
    if not lengths:
        return 0
    values = {value.strip() for value in lengths}
    if len(values) > 1:
        raise BadFraming(400, f"conflicting Content-Length values {sorted(values)}")
    (value,) = values
    if not (value.isascii() and value.isdigit()):
        raise BadFraming(400, f"invalid Content-Length {value!r}: send the body's size in bytes")
    digits = value.lstrip("0") or "0"
    # Compare lengths first: int() refuses strings of thousands of digits.
    if len(digits) > len(str(limit)) or int(digits) > limit:
        raise _too_large(limit)
    return int(digits)


def read_body(headers: Message, stream: Reader, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read the body the headers announce from ``stream``, holding at most ``limit`` bytes.

    Raises:
        BadFraming: as :func:`body_length` does; 400 for a malformed chunk or a body that ends
            before its announced end; 413 when chunks add up to more than ``limit``.
        OSError: reading the stream failed (``TimeoutError`` for a client that stalls).
    """
    length = body_length(headers, limit)
    if length is None:
        return _read_chunked(stream, limit)
    return _read_exactly(stream, length)


def _read_exactly(stream: Reader, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left:
        piece = stream.read(min(left, _PIECE_BYTES))
        if not piece:
            raise BadFraming(400, f"the request body ended {left} bytes before its announced end")
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def _read_chunked(stream: Reader, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while size := _chunk_size(_line(stream, "chunk size")):
        total += size
        if total > limit:
            raise _too_large(limit)
        parts.append(_read_exactly(stream, size))
        if _line(stream, "chunk end").rstrip(b"\r\n"):
            raise BadFraming(400, "chunk data must be followed by CRLF: check the chunk sizes")
    for _ in range(MAX_TRAILERS + 1):
        if not _line(stream, "trailer").rstrip(b"\r\n"):
            return b"".join(parts)
    raise BadFraming(400, f"more than {MAX_TRAILERS} trailer fields")


def _line(stream: Reader, what: str) -> bytes:
    """One line of chunked framing, ``\\n`` included; raises BadFraming if too long or cut off."""
    line = stream.readline(MAX_LINE_BYTES + 1)
    if len(line) > MAX_LINE_BYTES:
        raise BadFraming(400, f"{what} line longer than {MAX_LINE_BYTES} bytes")
    if not line.endswith(b"\n"):
        raise BadFraming(400, "the request body ended before its last chunk")
    return line


def _chunk_size(line: bytes) -> int:
    # Extensions (";name=value") carry nothing this server uses.
    digits = line.split(b";", 1)[0].strip(b" \t\r\n")
    if not _HEX.fullmatch(digits):
        shown = line.rstrip(b"\r\n").decode("latin-1")
        raise BadFraming(400, f"invalid chunk size {shown!r}")
    return int(digits, 16)


def _too_large(limit: int) -> BadFraming:
    return BadFraming(413, f"request body too large: this server accepts at most {limit} bytes")
