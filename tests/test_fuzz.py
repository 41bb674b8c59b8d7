"""Fuzzing with hypothesis: whatever the input, only the library's typed errors escape.

Covered: the reply decoder on arbitrary text and on mutated JSON, the schema loader on
generated schemas and on arbitrary strings, host parsing on arbitrary strings. The readers and
a whole extraction are fuzzed in ``test_fuzz_readers``; the shared strategies are in
``fuzzing``. Examples are derandomized, so a run is repeatable; sizes stay small so the whole
module runs in seconds.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from typing import Any

import httpx
import pytest
from fuzzing import EDITS, FEW, FUZZ, JSON_VALUES, JSONISH, SCALARS, is_json_data, mutate
from hypothesis import example, given
from hypothesis import strategies as st

from extract import Extractor, Schema
from extract.client.urls import parse_host
from extract.core.decode import decode, decode_with_stage
from extract.core.prompt import build_prompt
from extract.errors import (
    ConfigError,
    EmptyOutput,
    InvalidJSON,
    OutputError,
    SchemaError,
    SchemaMismatch,
)

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
