"""What each option means, and descriptions the shape cannot hold: the "Where:" block."""

from __future__ import annotations

import enum
from typing import Any, Literal

import pydantic
import pytest

from extract.core.schema import Schema, bundled_schemas
from extract.core.schema_render import MAX_HINT, echoed_placeholder
from extract.errors import SchemaError


def shape(schema: Any) -> str:
    return Schema.load(schema).render()


def test_one_of_consts_with_descriptions() -> None:
    schema = {
        "type": "object",
        "properties": {
            "category": {
                "description": "what the ticket is about",
                "oneOf": [
                    {"const": "billing", "description": "money, invoices, refunds"},
                    {"const": "bug", "title": "something broken"},
                    {"const": "other"},
                ],
            }
        },
        "required": ["category"],
    }
    assert shape(schema) == (
        '{"category": "billing" | "bug" | "other"}\n'
        "Where:\n"
        "category: what the ticket is about; billing = money, invoices, refunds;"
        " bug = something broken"
    )


def test_enum_with_x_labels() -> None:
    schema = {
        "type": "object",
        "properties": {
            "flag": {"enum": [True, False, None], "x-labels": {"true": "yes", "null": "unknown"}},
            "mood": {"enum": ["up", "down"], "x-labels": {"down": "sad  or\n tired"}},
        },
        "required": ["flag", "mood"],
    }
    assert shape(schema) == (
        '{"flag": true | false | null, "mood": "up" | "down"}\n'
        "Where:\n"
        "flag: true = yes; null = unknown\nmood: down = sad or tired"
    )


def test_a_root_choice_has_no_field_name() -> None:
    schema = {"enum": ["good", "bad"], "x-labels": {"good": "happy"}}
    assert shape(schema) == '"good" | "bad"\nWhere:\ngood = happy'


def test_descriptions_hidden_by_the_shape_are_listed() -> None:
    long = "the customer's request in one sentence, in their own words, without greetings"
    schema = {
        "type": "object",
        "properties": {
            "urgent": {"type": "boolean", "description": "they cannot work until it is fixed"},
            "summary": {"type": "string", "description": long},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "description": "x" * 70}},
                },
            },
            "short": {"type": "string", "description": "kept in the shape"},
        },
        "required": ["urgent", "summary", "items", "short"],
    }
    text = shape(schema)
    assert len(long) > MAX_HINT
    head, where = text.split("\nWhere:\n")
    assert '"summary": "<the customer\'s request in one sentence, in their own words,…>"' in head
    assert where.splitlines() == [
        "urgent: they cannot work until it is fixed",
        f"summary: {long}",
        f"items[].n: {'x' * 70}",
    ]


def test_pydantic_enum_docstrings_and_field_descriptions() -> None:
    class Mood(enum.Enum):
        """How the writer feels."""

        UP = "up"
        DOWN = "down"

    class Note(pydantic.BaseModel):
        mood: Mood
        kind: Literal["a", "b"] = pydantic.Field(description="a is for apples")

    assert shape(Note).endswith("Where:\nmood: How the writer feels.\nkind: a is for apples")


def test_no_definitions_no_block() -> None:
    assert "Where:" not in shape({"enum": ["a", "b"], "description": ""})
    assert "Where:" not in shape({"type": "string", "description": "short"})


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"enum": ["a"], "x-labels": {"b": "bee"}}, "names 'b', which is not one of"),
        ({"enum": [1], "x-labels": {"one": "x"}}, "names 'one'"),
        ({"type": "string", "x-labels": {"a": "x"}}, "needs an enum beside it"),
        ({"enum": ["a"], "x-labels": ["a"]}, "must map each option to a text"),
        ({"enum": ["a"], "x-labels": {"a": 1}}, "must map each option to a text"),
    ],
)
def test_x_labels_are_checked_at_load(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        Schema.load({"properties": {"f": schema}})


def test_definitions_leave_the_grammar_alone() -> None:
    plain = Schema.load({"enum": ["a", "b"]})
    labelled = Schema.load({"enum": ["a", "b"], "x-labels": {"a": "first"}})
    assert labelled.grammar == plain.grammar
    assert labelled.validate("a") == "a"


def test_bundled_choice_schemas_define_their_labels() -> None:
    for name in ("ticket", "sentiment", "topic"):
        text = Schema.load(name).render()
        shape_part, where = text.split("\nWhere:\n")
        assert len(shape_part) < 600, name
        assert len(where) < 800, name


def test_placeholders_are_those_of_the_shape() -> None:
    schema = Schema.load("ticket")
    assert schema.placeholders == frozenset({"<the ticket's own sentence that states the request>"})
    assert Schema.load({"type": "object"}).placeholders == frozenset({"<object>"})
    invoice = Schema.load("invoice")
    assert {"<issue date, YYYY-MM-DD>", "<total tax, number>"} <= invoice.placeholders


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"summary": "<the request in one sentence>"}, "$.summary"),
        ({"summary": " The request in one sentence "}, "$.summary"),
        ({"a": ["ok", {"b": "<STRING>"}]}, "$.a[1].b"),
        ({"summary": "string"}, None),  # one word without brackets may be a real value
        ({"summary": "the request in one sentence, please"}, None),
        # Held inside a longer string, with its brackets (a reply seen in the README's job).
        ({"summary": "The request in one sentence is: <the request in one sentence>"}, "$.summary"),
        ({"summary": "a <string> b"}, "$.summary"),
        ("<the request in one sentence>", "$"),
        (["x", 1, None, True], None),
    ],
)
def test_echoed_placeholders_are_found(value: Any, path: str | None) -> None:
    shown = frozenset({"<the request in one sentence>", "<string>"})
    assert echoed_placeholder(value, shown) == path


def test_a_placeholder_the_document_contains_is_no_echo() -> None:
    shown = frozenset({"<full name>"})
    assert echoed_placeholder({"name": "<full name>"}, shown, "Dear <Full Name>,") is None
    assert echoed_placeholder({"name": "<full name>"}, shown, "Dear Ann,") == "$.name"


def test_every_bundled_schema_still_loads_and_renders() -> None:
    for name in bundled_schemas():
        assert Schema.load(name).render().startswith(("{", '"'))
