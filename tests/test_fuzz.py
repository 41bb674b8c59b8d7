"""Fuzzing with hypothesis: whatever the input, only the library's typed errors escape.

Covered: the reply decoder on arbitrary text and on mutated JSON, the schema loader on
generated schemas and on arbitrary strings, host parsing on arbitrary strings, the NDJSON
reader under arbitrary byte chunking (and on arbitrary bytes), the JSONL input reader on
arbitrary bytes, and a whole extraction on arbitrary replies. Examples are derandomized, so a
run is repeatable; sizes stay small so the whole module runs in seconds.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import N_SCHEMA
from hypothesis import example, given, settings
from hypothesis import strategies as st

from extract import ExtractionFailed, Extractor, Schema
from extract.batch.records import read_jsonl
from extract.client.config import Settings
from extract.client.transport import LineSplitter, ReplyReader, Transport
from extract.core.decode import decode, decode_with_stage
from extract.core.prompt import build_prompt
from extract.core.wire import parse_host
from extract.errors import (
    ConfigError,
    EmptyOutput,
    InputError,
    InvalidJSON,
    OutputError,
    RunawayOutput,
    SchemaError,
    SchemaMismatch,
    StreamError,
    TruncatedOutput,
)

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None)
FEW = settings(max_examples=50, deadline=None, derandomize=True, database=None)

# -- strategies -------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
JSONISH = st.text(alphabet=st.sampled_from(list("{}[]\",:\\ \n\t-.0123456789eEtrufalsn`'abc")))
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "replace", "truncate", "double"]),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from([*"{}[]\",:\\ \n0a-.eE'", "```", "```json\n", "NaN", "null", "//"]),
    ),
    max_size=4,
)


def mutate(text: str, edits: list[tuple[str, int, str]]) -> str:
    """Apply edits (at positions taken modulo the text's length) to ``text``."""
    for op, at, piece in edits:
        i = at % (len(text) + 1)
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "replace":
            text = text[:i] + piece + text[i + len(piece) :]
        elif op == "truncate":
            text = text[:i]
        else:
            text = text[:i] + text[i:] + text[i:]
    return text


def is_json_data(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# -- the decoder ------------------------------------------------------------------------------


def check_decode(text: str) -> None:
    outcome: Any
    try:
        outcome = decode(text)
    except (EmptyOutput, InvalidJSON) as exc:
        outcome = exc
    if isinstance(outcome, OutputError):
        assert outcome.raw == text
    else:
        assert is_json_data(outcome)


@FUZZ
@given(st.text() | JSONISH)
@example("[" * 50_000)
@example('{"a": ' * 5_000)
@example("```json\n```")
def test_decode_of_arbitrary_text_raises_only_output_errors(text: str) -> None:
    check_decode(text)


@FUZZ
@given(JSON_VALUES, st.sampled_from([None, 2]), EDITS)
def test_decode_of_mutated_json_raises_only_output_errors(
    value: Any, indent: int | None, edits: list[tuple[str, int, str]]
) -> None:
    check_decode(mutate(json.dumps(value, indent=indent), edits))


PROSE = st.text(alphabet=st.characters(exclude_characters="{}[]`\"'\\"), max_size=30)


@FUZZ
@given(
    st.lists(JSON_VALUES, min_size=1, max_size=3)
    | st.dictionaries(st.text(max_size=5), JSON_VALUES, min_size=1, max_size=3),
    PROSE,
    PROSE,
    st.booleans(),
)
def test_decode_finds_the_value_inside_chatter_and_fences(
    value: Any, before: str, after: str, fenced: bool
) -> None:
    body = json.dumps(value)
    text = f"{before}```json\n{body}\n```{after}" if fenced else f"{before}{body}{after}"
    found, stage = decode_with_stage(text)
    assert found == value
    assert stage in ("strict", "lenient")


# -- the schema loader ------------------------------------------------------------------------

TYPE_NAMES = st.sampled_from(
    ["string", "number", "integer", "boolean", "object", "array", "null", "bogus"]
)
NAMES = st.sampled_from(["a", "b", "first name", "$x", "0"])
DIALECTS = st.sampled_from(
    [
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-03/schema#",
        "http://127.0.0.1:9/remote-metaschema",
        "bogus",
    ]
)
REFS = st.sampled_from(
    ["#", "#/$defs/a", "#/$defs/b", "#/properties/a", "#/nowhere", "#a", "other.json",
     "http://127.0.0.1:9/remote.json", "urn:x"]
)  # fmt: skip
PATTERNS = st.sampled_from(["^[a-z]+$", "[0-9]", "^a|b$", "(", "^$", r"^\d{2,3}$", "a{2}"])


def schema_objects(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    numbers = st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False)
    counts = st.integers(-1, 4)
    keywords = {
        "type": TYPE_NAMES | st.lists(TYPE_NAMES, max_size=3),
        "properties": st.dictionaries(NAMES, inner, max_size=3),
        "required": st.lists(NAMES, max_size=3) | NAMES,
        "additionalProperties": st.booleans() | inner,
        "items": inner | st.lists(inner, max_size=2),
        "prefixItems": st.lists(inner, max_size=2),
        "enum": st.lists(SCALARS, max_size=3),
        "const": SCALARS,
        "anyOf": st.lists(inner, max_size=3),
        "oneOf": st.lists(inner, max_size=3),
        "allOf": st.lists(inner, max_size=3),
        "not": inner,
        "if": inner,
        "then": inner,
        "$ref": REFS,
        "$dynamicRef": REFS,
        "$defs": st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
        "$id": st.sampled_from(["http://example.com/root", "urn:example:x", "sub", "#a"]),
        "$anchor": st.sampled_from(["a", "1bad"]),
        "pattern": PATTERNS | st.text(max_size=4),
        "minLength": counts,
        "maxLength": counts,
        "minItems": counts,
        "maxItems": counts,
        "minimum": numbers,
        "maximum": numbers,
        "exclusiveMinimum": numbers | st.booleans(),
        "multipleOf": st.sampled_from([0, 0.5, 2, -1]),
        "uniqueItems": st.booleans(),
        "format": st.sampled_from(["date", "date-time", "uuid", "email", "regex", "bogus"]),
        "title": st.text(max_size=10),
        "description": st.text(max_size=20),
        "default": SCALARS,
    }
    # A few keywords per subschema, drawn as pairs: far cheaper than many optional keys.
    pairs = st.one_of([st.tuples(st.just(k), v) for k, v in keywords.items()])
    return st.lists(pairs, max_size=5).map(dict)


SUBSCHEMAS = st.recursive(st.booleans() | st.just({}), schema_objects, max_leaves=8)
SCHEMAS = st.builds(
    lambda body, dialect: {**body, "$schema": dialect} if dialect else body,
    schema_objects(SUBSCHEMAS),
    st.none() | DIALECTS,
)


@FUZZ
@given(SCHEMAS, st.lists(JSON_VALUES, max_size=3))
def test_generated_schemas_load_or_raise_schema_error_and_then_work(
    schema: dict[str, Any], values: list[Any]
) -> None:
    try:
        loaded = Schema.load(schema)
    except SchemaError:
        with pytest.raises(SchemaError):
            Schema.load(json.dumps(schema))
        return
    assert Schema.load(json.dumps(schema)) == loaded
    assert isinstance(loaded.render("shape"), str)
    assert isinstance(loaded.render("schema"), str)
    assert loaded.grammar is None or is_json_data(loaded.grammar)
    assert all(isinstance(note, str) for note in loaded.unenforced())
    assert isinstance(build_prompt("a document", loaded), str)
    for value in values:
        try:
            loaded.validate(value)
        except SchemaMismatch as exc:
            mismatch = exc
        else:
            continue
        assert mismatch.path.startswith("$")


@FEW
@given(st.text(max_size=40))
def test_any_string_as_a_schema_source_loads_or_raises_schema_error(source: str) -> None:
    with contextlib.suppress(SchemaError):
        Schema.load(source)


def test_a_very_long_schema_name_is_a_schema_error() -> None:
    with pytest.raises(SchemaError):
        Schema.load("a" * 300)


# -- host parsing -----------------------------------------------------------------------------

HOST_PARTS = st.tuples(
    st.sampled_from(["", "http://", "https://", "HTTP://", "ftp://", "://"]),
    st.sampled_from(
        ["localhost", "1.2.3.4", "::1", "[::1]", "0.0.0.0", "::", "[::", "a[b", "例え.jp",
         "", "user@h", "u:p@h", "h h", "h%20", "h<x>"]
    ),
    st.sampled_from(["", ":", ":0", ":80", ":65536", ":-1", ":abc", ":１２", ":²", ":8_0"]),
    st.sampled_from(["", "/", "/x/", "/a b", "?q=1", "#f"]),
).map("".join)  # fmt: skip
HOSTS = HOST_PARTS | st.text(max_size=30)


def check_base_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme in ("http", "https")
    assert isinstance(parts.port, int)
    httpx.URL(url)


@FUZZ
@given(HOSTS)
@example("h:²")
@example("h?q=1")
def test_parse_host_returns_a_usable_url_or_raises_config_error(host: str) -> None:
    try:
        url = parse_host(host)
    except ConfigError:
        return
    check_base_url(url)


@FUZZ
@given(HOSTS)
@example("a[b")
@example("ø\x80")
def test_an_extractor_accepts_any_host_or_raises_config_error(host: str) -> None:
    try:
        extractor = Extractor("tiny", host=host)
    except ConfigError:
        return
    with extractor:
        check_base_url(extractor.settings.host)


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
