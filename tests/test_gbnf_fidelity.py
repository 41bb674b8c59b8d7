"""Our schema-to-grammar converter accepts and rejects what llama.cpp's accepts and rejects.

Each case is a schema with JSON texts its grammar must let a model write, and texts it must
not, run through llama.cpp's real grammar engine (``gbnf_engine``). The cases are derived by
reading ggml-org/llama.cpp@011c6c3c305634c65886cf7f32805907f667590c
``common/json-schema-to-grammar.cpp`` (the converter Ollama runs for ``format``) and the expected
grammars in ggml-org/llama.cpp@04c74c40bc2243e4b9c19bc15cb14e3edc881b13
``tests/test-json-schema-to-grammar.cpp``: list types with their sibling keywords kept per type,
integer bounds, control characters in strings, recursion through ``$defs`` names with ``_``,
properties named ``$ref``, and the other constructs it reads.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("llama_cpp")
from gbnf_engine import engine

from extract.core.gbnf import UnsupportedSchema, schema_to_gbnf

NODE = {
    "type": "object",
    "properties": {"next": {"anyOf": [{"$ref": "#/$defs/list_node"}, {"type": "null"}]}},
    "required": ["next"],
}

CASES: list[tuple[str, dict[str, Any], list[str], list[str]]] = [
    # A type list is a union of one copy of the node per type, every sibling kept in each.
    (
        "type list keeps string bounds",
        {"type": ["string", "null"], "minLength": 2, "maxLength": 3},
        ['"ab"', '"abc"', "null"],
        ['"a"', '"abcd"', "1"],
    ),
    (
        "type list keeps integer bounds and object keys",
        {
            "type": ["integer", "object"],
            "minimum": 1,
            "maximum": 5,
            "properties": {"a": {"type": "boolean"}},
            "required": ["a"],
        },
        ["1", "5", '{"a": true}'],
        ["0", "6", "{}", '{"a": 1}'],
    ),
    (
        "type list keeps items and enum",
        {"type": ["array", "null"], "items": {"enum": ["x", "y"]}, "maxItems": 2},
        ['["x"]', '["x", "y"]', "null"],
        ['["z"]', '["x", "x", "x"]'],
    ),
    # Integer bounds, inclusive and exclusive, across zero and unbounded on one side.
    (
        "integer between -12 and 207",
        {"type": "integer", "minimum": -12, "maximum": 207},
        ["-12", "-1", "0", "9", "10", "99", "100", "207"],
        ["-13", "208", "300", "012", "1.5", "1000"],
    ),
    (
        "integer from 125",
        {"type": "integer", "minimum": 125},
        ["125", "130", "999", "1000", "123456789012"],
        ["124", "12", "15", "0", "-5"],
    ),
    (
        "integer exclusive bounds",
        {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
        ["1", "9"],
        ["0", "10", "-1"],
    ),
    (
        "integer at most -5",
        {"type": "integer", "maximum": -5},
        ["-5", "-6", "-100"],
        ["-4", "0", "5"],
    ),
    ("number bounds are not read", {"type": "number", "minimum": 1}, ["0.5", "-3"], ['"1"']),
    # Strings: no raw control characters, JSON escapes only (not \/), \u with four hex digits.
    (
        "control characters in strings",
        {"type": "string"},
        ['"a b"', '"\\u0001"', '"tab\\there"', '"q\\"q"'],
        ['"a\x01b"', '"a\nb"', '"a\tb"', '"\x7f"', '"\\/"', '"\\u12"'],
    ),
    (
        "control characters in bounded strings",
        {"type": "string", "maxLength": 5},
        ['"ab"'],
        ['"a\x1fb"', '"abcdef"'],
    ),
    # Recursion through a $defs name the old converter left undefined.
    (
        "recursive $defs name with _",
        {"$defs": {"list_node": NODE}, "$ref": "#/$defs/list_node"},
        ['{"next": null}', '{"next": {"next": {"next": null}}}'],
        ["{}", '{"next": 1}', '{"next": {}}'],
    ),
    (
        "nested $defs are hoisted to the root",
        {
            "type": "object",
            "properties": {"a": {"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}},
            "required": ["a"],
        },
        ['{"a": 3}'],
        ['{"a": "3"}'],
    ),
    # Objects: listed keys only (absent additionalProperties), required first, order kept.
    (
        "properties without additionalProperties",
        {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "string"}}},
        ["{}", '{"x": 1}', '{"y": "a"}', '{"x": 1, "y": "a"}'],
        ['{"y": "a", "x": 1}', '{"z": 1}', '{"x": 1, "x": 2}'],
    ),
    (
        "required and additionalProperties schema",
        {
            "type": "object",
            "properties": {"and": {"type": "number"}, "also": {"type": "number"}},
            "required": ["and"],
            "additionalProperties": {"type": "string"},
        },
        ['{"and": 1}', '{"and": 1, "also": 2}', '{"and": 1, "other": "x"}', '{"and": 1, "b": ""}'],
        ['{"also": 2}', '{"and": 1, "other": 2}', '{"and": 1, "and": 2}', '{"and": 1, "al": "x"}'],
    ),
    ("empty schema is any object", {}, ["{}", '{"a": [1, null]}'], ["1", '"s"', "[]"]),
    ("description only is any value", {"description": "x"}, ["1", '"s"', "[]", "{}"], []),
    # Unions, constants, allOf.
    (
        "anyOf ignores its sibling type",
        {"type": "string", "anyOf": [{"type": "integer"}, {"type": "null"}]},
        ["1", "null"],
        ['"s"'],
    ),
    ("const", {"const": {"a": [1, "x"]}}, ['{"a":[1,"x"]}'], ['{"a": [1, "x"]}', "1"]),
    ("enum", {"enum": ["red", 42, None]}, ['"red"', "42", "null"], ['"blue"', "43"]),
    (
        "allOf merges properties, all required",
        {
            "allOf": [
                {"properties": {"a": {"type": "number"}}},
                {"properties": {"b": {"type": "string"}}},
            ]
        },
        ['{"a": 1, "b": "x"}'],
        ['{"a": 1}', '{"b": "x", "a": 1}'],
    ),
    (
        "allOf intersects enums",
        {"allOf": [{"enum": ["a", "b", "c"]}, {"enum": ["b", "c", "d"]}]},
        ['"b"', '"c"'],
        ['"a"', '"d"'],
    ),
    # Arrays, tuples, patterns, formats.
    (
        "items with min and max",
        {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2},
        ["[true]", "[true, false]"],
        ["[]", "[true, true, true]", "[1]"],
    ),
    (
        "tuple",
        {"prefixItems": [{"type": "string"}, {"type": "number"}]},
        ['["a", 1]'],
        ['["a"]', '["a", 1, 2]', '[1, "a"]'],
    ),
    (
        "pattern",
        {"type": "string", "pattern": "^(\\([0-9]{1,3}\\))?[0-9]{3}-[0-9]{4} a{3,5}nd...$"},
        ['"(12)555-1234 aaaand..."', '"555-1234 aaandxyz"'],
        ['"555-1234 aand..."', '"55-1234 aaand..."'],
    ),
    (
        "pattern with a non-capturing group",
        {"pattern": "^(?:foo|bar)baz$"},
        ['"foobaz"', '"barbaz"'],
        ['"baz"', '"foo"'],
    ),
    (
        "formats",
        {"prefixItems": [{"format": "date"}, {"format": "uuid"}, {"format": "date-time"}]},
        ['["2024-02-29", "0123abcd-0000-4000-8000-00000000abcd", "2024-01-01T10:00:00Z"]'],
        ['["2024-13-01", "0123abcd-0000-4000-8000-00000000abcd", "2024-01-01T10:00:00Z"]'],
    ),
    # Whitespace: at most two newlines and twenty spaces or tabs after a token.
    (
        "whitespace",
        {"type": "array", "items": {"type": "integer"}},
        ["[1, 2]", "[\n  1,\n\n 2]"],
        ["[1,\n\n\n2]", "[1," + " " * 22 + "2]"],
    ),
]


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_grammar_accepts_and_rejects(
    schema: dict[str, Any], good: list[str], bad: list[str]
) -> None:
    grammar = schema_to_gbnf(schema)
    run = engine()
    assert [text for text in good if not run.accepts(grammar, text)] == []
    assert [text for text in bad if run.accepts(grammar, text)] == []


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object", "properties": {"$ref": {"type": "string"}}}, "$.properties.$ref"),
        ({"type": "kaboom"}, "$"),
        ({"type": 123}, "$"),
        ({"type": "array", "items": True}, "$.items"),
        ({"type": "string", "pattern": "[a-z]+"}, "$.pattern"),
        ({"type": "string", "pattern": "^\\d+$"}, "$.pattern"),
        ({"$ref": "other.json#/x"}, "$"),
        ({"$ref": "#/$defs/missing"}, "$"),
    ],
)
def test_schemas_the_converter_rejects(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(UnsupportedSchema) as caught:
        schema_to_gbnf(schema)
    assert caught.value.path.startswith(where)


def test_every_grammar_parses_in_llama_cpp() -> None:
    for _, schema, _, _ in CASES:
        assert engine().parses(schema_to_gbnf(schema)), schema
