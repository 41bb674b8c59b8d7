"""Grammar forms that stay looser than their schema, one case per way a form was once tighter.

Each form here admits every value its schema accepts, read the way llama.cpp reads a form
(tests/test_grammar_loosens.py checks that property on generated schemas and the official test
suite); these cases pin the forms down.
"""

from __future__ import annotations

from typing import Any

import pytest

from extract.core.schema import Schema

_ANY = {"type": ["string", "number", "boolean", "object", "array", "null"]}


def _any_but(kind: str, **constraints: Any) -> dict[str, Any]:
    """Any JSON value, ``constraints`` applying to values of type ``kind``: one branch a type."""
    return {"anyOf": [{"type": t, **(constraints if t == kind else {})} for t in _ANY["type"]]}


_STRING, _INTEGER = {"type": "string"}, {"type": "integer"}
_DRAFT7 = "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize(
    ("schema", "form"),
    [
        (  # keys patternProperties admits are "other" keys; a required one is named
            {
                "patternProperties": {"^x-": _INTEGER},
                "additionalProperties": False,
                "required": ["x-id"],
            },
            _any_but(
                "object",
                required=["x-id"],
                properties={"x-id": _INTEGER},
                additionalProperties=_INTEGER,
            ),
        ),
        (
            {"type": "object", "properties": {"a": _STRING}, "required": ["b"]},
            {"type": "object", "properties": {"a": _STRING, "b": _ANY}, "required": ["b"]},
        ),
        ({"properties": {"a": _STRING}}, _any_but("object", properties={"a": _STRING})),  # 5 too
        ({"type": "array", "prefixItems": [_STRING, _INTEGER]}, {"type": "array"}),  # [] is valid
        (
            {"type": "array", "prefixItems": [_STRING, _INTEGER], "items": False},
            {"type": "array", "items": {"anyOf": [_STRING, _INTEGER]}, "maxItems": 2},
        ),
        (
            {"type": "array", "prefixItems": [_STRING, False]},
            {"type": "array", "items": _STRING, "maxItems": 1},
        ),
        (
            {
                "$schema": _DRAFT7,
                "type": "array",
                "items": [_STRING],
                "additionalItems": False,
                "minItems": 1,
            },
            {"type": "array", "prefixItems": [_STRING]},
        ),
        (  # before 2019-09, the keywords beside a $ref are ignored
            {
                "$schema": _DRAFT7,
                "definitions": {"s": _STRING},
                "$ref": "#/definitions/s",
                "maxLength": 1,
            },
            _STRING,
        ),
        ({"$schema": "http://json-schema.org/draft-04/schema#", "const": 1}, _ANY),
        # extract checks "date" in every draft, so the grammar may keep it in every draft too.
        (
            {"$schema": "http://json-schema.org/draft-06/schema#", "format": "date"},
            _any_but("string", format="date"),
        ),
        ({"type": "string", "format": "uuid"}, _STRING),
        ({"type": "string", "format": "time"}, _STRING),
        ({"allOf": [{"enum": [1, 2]}, {"enum": [1.0]}]}, {"enum": [1]}),
        ({"anyOf": [{"const": True}, {"const": 1}]}, {"anyOf": [{"enum": [True]}, {"enum": [1]}]}),
        (
            {"allOf": [{"properties": {"a": _STRING}}, {"properties": {"a": _INTEGER}}]},
            _any_but("object", properties={}),
        ),
        (
            {"type": "array", "allOf": [{"items": _STRING}, {"items": _INTEGER}]},
            {"type": "array", "items": _ANY, "maxItems": 0},
        ),
        (
            {"type": ["integer", "string"], "minimum": 3, "maximum": 1},
            {"type": ["integer", "string"]},
        ),
    ],
)
def test_loosened_conversions(schema: dict[str, Any], form: dict[str, Any]) -> None:
    assert Schema.load(schema).grammar == form


@pytest.mark.parametrize(
    ("pattern", "spelled"),
    [
        ("^a\\.b\\$$", "^a[.]b[$]$"),  # the grammar parser rejects the escapes
        ("^a|b$", None),  # "starts with a or ends with b", read by the converter as "a" or "b"
        ("^a]$", None),  # sends llama-cpp-python's converter into an endless loop
        ("^[]a]$", None),
        ('^a"b$', None),  # written unescaped, a quote would end the JSON string
        ("^a\\\\b$", None),
    ],
)
def test_patterns_are_respelled_or_dropped(pattern: str, spelled: str | None) -> None:
    form = Schema.load({"type": "string", "pattern": pattern}).grammar
    assert form == (_STRING if spelled is None else {**_STRING, "pattern": spelled})
