"""Fuzzing the readers with hypothesis: whatever the bytes, only typed errors escape.

Covered: the NDJSON reply reader under arbitrary byte chunking (and on arbitrary bytes), its
line cap, the JSONL input reader on arbitrary bytes, and a whole extraction on arbitrary
replies. The decoder, the schema loader and host parsing are fuzzed in ``test_fuzz``; the
shared strategies are in ``fuzzing``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import N_SCHEMA
from fuzzing import EDITS, FEW, FUZZ, JSON_VALUES, mutate
from hypothesis import example, given
from hypothesis import strategies as st

from extract import ExtractionFailed, Extractor
from extract.batch.records import read_jsonl
from extract.client.backends.ollama.replies import LineSplitter, ReplyReader
from extract.client.backends.ollama.transport import Transport
from extract.client.config import Settings
from extract.errors import (
    InputError,
    OutputError,
    RunawayOutput,
    StreamError,
    TruncatedOutput,
)

# -- the NDJSON reader ------------------------------------------------------------------------


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def stream_of(deltas: list[str], final_text: str, done: bool) -> bytes:
    lines = [{"model": "tiny", "response": d, "done": False} for d in deltas]
    if done:
        lines.append(
            {"model": "tiny", "response": final_text, "done": True, "done_reason": "stop",
             "eval_count": len(deltas), "eval_duration": 1_000}
        )  # fmt: skip
    return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)


def read_stream(chunks: list[bytes]) -> str:
    """What the sans-I/O reader makes of a byte stream: the reply text, or a typed error."""
    reader, splitter = ReplyReader(host="h", model="tiny"), LineSplitter()
    for chunk in chunks:
        for line in splitter.feed(chunk):
            reader.feed_line(line)
    if (tail := splitter.flush()) is not None:
        reader.feed_line(tail)
    return reader.result().text


def mock_transport(chunks: Callable[[], Iterator[bytes]]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/version":
            return httpx.Response(200, json={"version": "0.33.0"})
        if request.url.path == "/api/show":
            return httpx.Response(200, json={"capabilities": ["completion"]})
        ndjson = {"content-type": "application/x-ndjson"}
        return httpx.Response(200, content=chunks(), headers=ndjson)

    return httpx.MockTransport(handler)


def generate(chunks: list[bytes]) -> str:
    settings_ = Settings.resolve("http://fuzz:1")
    with Transport(settings_, transport=mock_transport(lambda: iter(chunks))) as transport:
        return transport.generate({"model": "tiny", "prompt": "p", "stream": True}).text


@FUZZ
@given(
    st.lists(st.text(max_size=8), max_size=8),
    st.text(max_size=4),
    st.lists(st.integers(min_value=0), max_size=12),
)
def test_any_chunking_of_a_reply_reads_the_same_text(
    deltas: list[str], final_text: str, cuts: list[int]
) -> None:
    data = stream_of(deltas, final_text, done=True)
    expected = "".join(deltas) + final_text
    assert read_stream(chunked(data, cuts)) == expected
    assert generate(chunked(data, cuts)) == expected


@FUZZ
@given(st.lists(st.text(max_size=8), max_size=6), st.lists(st.integers(min_value=0), max_size=8))
def test_any_chunking_of_a_reply_without_done_line_is_truncated_output(
    deltas: list[str], cuts: list[int]
) -> None:
    chunks = chunked(stream_of(deltas, "", done=False), cuts)
    with pytest.raises(TruncatedOutput):
        generate(chunks)


NDJSON_BYTES = st.lists(
    st.sampled_from(
        [b'{"response": "a"}', b'{"response": "\\u00e9", "done": true}', b'{"error": "boom"}',
         b"\n", b"\r\n", b'{"response": 1}', b"[]", b"null", b"\xff\xfe", b'{"done": true',
         b'{"thinking": "t"}', b"{}", b'"x"']
    )
    | st.binary(max_size=12),
    max_size=10,
).map(b"".join)  # fmt: skip


@FUZZ
@given(NDJSON_BYTES, st.lists(st.integers(min_value=0), max_size=10))
def test_arbitrary_reply_bytes_raise_only_typed_errors(data: bytes, cuts: list[int]) -> None:
    with contextlib.suppress(StreamError, TruncatedOutput, RunawayOutput):
        generate(chunked(data, cuts))


@FEW
@given(st.binary(max_size=80), st.lists(st.integers(min_value=0), max_size=6))
@example(b"x" * 20 + b"\n", [])
def test_the_line_cap_does_not_depend_on_chunking(data: bytes, cuts: list[int]) -> None:
    cap = 16
    too_long = any(len(line) > cap for line in data.split(b"\n"))
    splitter, lines = LineSplitter(max_bytes=cap), []
    try:
        for chunk in chunked(data, cuts):
            lines += splitter.feed(chunk)
        tail = splitter.flush()
    except RunawayOutput:
        assert too_long
        return
    assert not too_long
    assert [*lines, *([tail] if tail else [])] == [x for x in data.split(b"\n") if x.strip()]


# -- the JSONL input reader -------------------------------------------------------------------


@FUZZ
@given(
    st.lists(
        st.sampled_from([b'{"id": 1, "text": "a"}', b'"plain"', b"{}", b"[1]", b"\xff", b"\x00",
                         b'{"text": 5}', b"\xef\xbb\xbf", b" ", b"\n", b"\r\n"])
        | st.binary(max_size=10),
        max_size=12,
    ).map(b"".join)
)  # fmt: skip
def test_the_jsonl_reader_gives_one_document_per_nonblank_line(data: bytes) -> None:
    docs = list(read_jsonl(io.BytesIO(data), id_field="id", text_field="text"))
    lines = data.split(b"\n")
    if lines:
        lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")
    assert len(docs) == sum(bool(line.strip()) for line in lines)
    for doc in docs:
        assert (doc.error is None) == isinstance(doc.text, str)
        assert doc.error is None or isinstance(doc.error, InputError)


# -- a whole extraction -----------------------------------------------------------------------


@FUZZ
@given(
    st.text() | JSON_VALUES.map(json.dumps) | st.builds(mutate, JSON_VALUES.map(json.dumps), EDITS),
    st.lists(st.integers(min_value=0), max_size=6),
)
def test_an_extraction_on_any_reply_gives_a_valid_value_or_extraction_failed(
    reply: str, cuts: list[int]
) -> None:
    data = stream_of([reply], "", done=True)
    transport = mock_transport(lambda: iter(chunked(data, cuts)))
    with Extractor("tiny", host="http://fuzz:1", transport=transport, retry=1) as extractor:
        outcome: Any
        try:
            outcome = extractor.extract("a document", N_SCHEMA, max_attempts=2)
        except ExtractionFailed as exc:
            outcome = exc
    if isinstance(outcome, ExtractionFailed):
        assert len(outcome.attempts) == 2
        assert isinstance(outcome.last_error, OutputError)
    else:
        assert isinstance(outcome.value["n"], int)
