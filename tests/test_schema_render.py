"""How a schema is shown to the model: the output shape (default) or the compact JSON Schema."""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic
import pytest

from extract.core.schema import Schema, bundled_schemas


def shape(schema: Any) -> str:
    return Schema.load(schema).render()


def test_the_measured_example_shape() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "full name"},
            "age": {"type": "integer"},
        },
        "required": ["name", "age"],
    }
    assert shape(schema) == '{"name": "<full name>", "age": <integer>}'


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "string"}, '"<string>"'),
        ({"type": "string", "description": "the city"}, '"<the city>"'),
        ({"type": "number", "description": "total"}, "<total, number>"),
        ({"type": "boolean"}, "true | false"),
        ({"type": "null"}, "null"),
        ({"enum": ["positive", "negative", "neutral"]}, '"positive" | "negative" | "neutral"'),
        ({"enum": [1, None, "ü"]}, '1 | null | "ü"'),
        ({"const": "v1"}, '"v1"'),
        ({"type": ["string", "null"]}, '"<string>" | null'),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "<integer> | null"),
        ({"oneOf": [{"type": "integer"}, {"type": "integer"}]}, "<integer>"),
        ({"type": "array", "items": {"type": "string"}}, '["<string>", ...]'),
        ({"prefixItems": [{"type": "number"}, {"type": "number"}]}, "[<number>, <number>]"),
        ({"type": "array"}, "<array>"),
        ({"type": "array", "items": False}, "[]"),
        ({"type": "object"}, "<object>"),
        ({"type": "object", "additionalProperties": False}, "{}"),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            '{"<key>": <integer>, ...}',
        ),
        ({}, "<any JSON value>"),
        ({"description": "whatever fits"}, "<whatever fits>"),
        ({"type": "string", "format": "date", "description": "due"}, '"<due, YYYY-MM-DD>"'),
        ({"type": "string", "format": "date-time"}, '"<date and time, YYYY-MM-DDTHH:MM:SSZ>"'),
        ({"type": "string", "format": "email"}, '"<email address>"'),
        ({"type": "string", "format": 'x-"odd"<>'}, "\"<x-'odd'()>\""),
    ],
)
def test_values(schema: dict[str, Any], text: str) -> None:
    assert shape(schema) == text


def test_optional_keys_are_listed_with_their_paths() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "note": {"type": "string"},
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                    "required": ["sku"],
                },
            },
        },
        "required": ["id", "lines"],
    }
    assert shape(schema) == (
        '{"id": "<string>", "note": "<string>",'
        ' "lines": [{"sku": "<string>", "qty": <integer>}, ...]}'
        "\nOptional keys: note, lines[].qty"
    )


def test_descriptions_are_cleaned_into_one_short_line() -> None:
    long = (
        'The "primary" <contact>\n  person,   with a lot more words than anyone needs here at all'
    )
    text, where = shape({"type": "string", "description": long}).split("\nWhere:\n")
    assert text.startswith("\"<The 'primary' (contact) person, with a lot")
    assert text.endswith('…>"')
    assert len(text) <= 65
    # The placeholder keeps the shape short; the description is given whole below it.
    assert (
        where
        == 'The "primary" <contact> person, with a lot more words than anyone needs here at all'
    )


def test_a_ref_description_beats_the_target_description() -> None:
    schema = {
        "$defs": {"money": {"type": "number", "description": "an amount"}},
        "properties": {
            "total": {"$ref": "#/$defs/money", "description": "amount due"},
            "tax": {"$ref": "#/$defs/money"},
        },
        "required": ["total", "tax"],
    }
    assert shape(schema) == '{"total": <amount due, number>, "tax": <an amount, number>}'


def test_all_of_parts_are_merged() -> None:
    schema = {
        "$defs": {
            "base": {
                "type": "object",
                "properties": {"id": {"type": "integer"}},
                "required": ["id"],
            }
        },
        "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"label": {"type": "string"}}}],
    }
    assert shape(schema) == '{"id": <integer>, "label": "<string>"}\nOptional keys: label'


def test_recursion_is_named_not_expanded() -> None:
    class Node(pydantic.BaseModel):
        name: str
        children: list[Node] = []

    assert shape(Node) == '{"name": "<string>", "children": [<Node>, ...]}\nOptional keys: children'


def test_pydantic_model_shape() -> None:
    class Ticket(pydantic.BaseModel):
        category: Literal["billing", "bug"]
        urgent: bool
        summary: str = pydantic.Field(description="one sentence")
        reply_to: str | None = None

    assert shape(Ticket) == (
        '{"category": "billing" | "bug", "urgent": true | false, "summary": "<one sentence>",'
        ' "reply_to": "<string>" | null}\nOptional keys: reply_to'
    )


def test_deep_nesting_is_cut() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    text = shape(schema)
    assert "<...>" in text
    assert text.count("{") < 12


def test_rendering_is_deterministic_and_keeps_key_order() -> None:
    schema = {
        "properties": {"zeta": {"type": "integer"}, "alpha": {"type": "integer"}},
        "required": ["zeta", "alpha"],
    }
    assert (
        shape(schema)
        == shape(json.loads(json.dumps(schema)))
        == '{"zeta": <integer>, "alpha": <integer>}'
    )


def test_schema_style_is_the_compact_original() -> None:
    source = {"type": "object", "properties": {"é": {"type": "string", "description": "naïve"}}}
    rendered = Schema.load(source).render("schema")
    assert (
        rendered == '{"type":"object","properties":{"é":{"type":"string","description":"naïve"}}}'
    )


def test_every_bundled_schema_renders_compactly() -> None:
    for name in bundled_schemas():
        text = Schema.load(name).render()
        assert "$schema" not in text
        # Label definitions go below the shape (test_label_definitions.py bounds them).
        assert len(text.partition("\nWhere:\n")[0]) < 600, name
