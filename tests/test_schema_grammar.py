"""The grammar-safe form sent as Ollama's ``format``, and what it leaves unenforced.

Every grammar form is checked with ``grammar_support.recognised``: each node must land on a
branch llama.cpp's converter supports. Generated schemas are in ``test_schema_grammar_fuzz``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pydantic
import pytest
from grammar_support import recognised

from extract.core.schema import Schema
from extract.core.schema_grammar import ANY, MAX_NODES

TYPES = ANY["type"]


def grammar(schema: Any) -> dict[str, Any]:
    form = Schema.load(schema).grammar
    assert form is not None
    recognised(form, form)
    return form


def any_but(kind: str, **constraints: Any) -> dict[str, Any]:
    """Any JSON value, ``constraints`` applying to values of type ``kind``: one branch a type."""
    return {"anyOf": [{"type": t, **(constraints if t == kind else {})} for t in TYPES]}


@pytest.mark.parametrize(
    ("schema", "form"),
    [
        ({"type": "string"}, {"type": "string"}),
        ({"const": "x"}, {"enum": ["x"]}),
        ({"type": "string", "enum": ["a", 1, "b"]}, {"enum": ["a", "b"]}),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": ["string", "null"]}),
        ({"oneOf": [{"enum": ["a", "b"]}, {"type": "null"}]}, {"enum": ["a", "b", None]}),
        (
            {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
            {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
        ),
        ({"type": "number", "minimum": 0, "maximum": 1}, {"type": "number"}),
        (
            {"type": "integer", "exclusiveMinimum": 0, "maximum": 9.5},
            {"type": "integer", "minimum": 1, "maximum": 9},
        ),
        ({"type": "string", "pattern": "[a-z]+"}, {"type": "string"}),
        ({"type": "string", "pattern": "^[a-z]+$"}, {"type": "string", "pattern": "^[a-z]+$"}),
        ({"type": "string", "pattern": "^\\d+$"}, {"type": "string"}),
        ({"type": "string", "format": "email"}, {"type": "string"}),
        ({"type": "string", "format": "date"}, {"type": "string", "format": "date"}),
        ({"type": "string", "maxLength": 5000}, {"type": "string"}),
        (
            {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
            {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        ),
        (
            {"prefixItems": [True], "minItems": 1, "items": False},
            any_but("array", prefixItems=[ANY]),
        ),
        ({}, ANY),
        ({"description": "anything"}, ANY),
        ({"minLength": 2}, any_but("string", minLength=2)),
        (  # each type keeps its own keywords, whichever converter reads the form
            {"type": ["string", "integer", "null"], "maxLength": 3, "maximum": 5},
            {
                "anyOf": [
                    {"type": "string", "maxLength": 3},
                    {"type": "integer", "maximum": 5},
                    {"type": "null"},
                ]
            },
        ),
        (
            {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
            {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
        ),
        ({"not": {"type": "string"}}, ANY),
        (
            {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
                ]
            },
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        ),
        ({"allOf": [{"type": ["integer", "string"]}, {"type": "number"}]}, {"type": "integer"}),
        (
            {"type": "object", "properties": {"a": {"type": "string"}, "b": False}},
            {"type": "object", "properties": {"a": {"type": "string"}}},
        ),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            {"type": "object", "additionalProperties": {"type": "integer"}},
        ),
        (
            {"type": "object", "additionalProperties": True, "properties": {}},
            {"type": "object", "properties": {}},
        ),
        ({"type": "array", "items": False}, {"type": "array", "items": ANY, "maxItems": 0}),
    ],
)
def test_conversions(schema: dict[str, Any], form: dict[str, Any]) -> None:
    assert grammar(schema) == form


def test_refs_are_inlined_with_siblings() -> None:
    form = grammar(
        {
            "type": "object",
            "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}}},
            "properties": {
                "home": {"$ref": "#/$defs/Address", "description": "where they live"},
                "work": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]},
                "both": {"$ref": "#/$defs/Address", "required": ["city"]},
            },
        }
    )
    address = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert form["properties"]["home"] == address
    assert form["properties"]["work"] == {"anyOf": [address, {"type": "null"}]}
    assert form["properties"]["both"] == {**address, "required": ["city"]}
    assert "$defs" not in form


def test_recursion_keeps_a_local_ref() -> None:
    class Node(pydantic.BaseModel):
        name: str
        children: list[Node] = []

    form = grammar(Node)
    assert form["properties"]["children"]["items"] == {"$ref": "#/$defs/defNode"}
    node = form["$defs"]["defNode"]
    assert node["properties"]["children"]["items"] == {"$ref": "#/$defs/defNode"}


def test_recursion_through_the_root_and_odd_names() -> None:
    form = grammar(
        {
            "type": "object",
            "properties": {"next": {"$ref": "#"}, "x": {"$ref": "#/$defs/a~1b%20c"}},
            "$defs": {"a/b c": {"items": {"$ref": "#/$defs/a~1b%20c"}}},
        }
    )
    assert form["properties"]["next"] == {"$ref": "#/$defs/defSchema"}
    assert set(form["$defs"]) == {"defSchema", "defABC"}


@pytest.mark.parametrize("name", ["my_node", "string", "value", "root", "a.b", "_", "a-b"])
def test_recursive_def_names_are_safe_for_every_converter(name: str) -> None:
    # llama-cpp-python's converter refers to a recursive definition by its raw name, and
    # names a built-in rule ("string", "value") or the root the same way: both go wrong.
    pointer = "#/$defs/" + name.replace("~", "~0").replace("/", "~1")
    form = grammar(
        {
            "type": "object",
            "properties": {"tree": {"$ref": pointer}},
            "$defs": {name: {"type": "array", "items": {"$ref": pointer}}},
        }
    )
    (defined,) = form["$defs"]
    assert re.fullmatch("def[A-Za-z0-9]+", defined)
    assert form["properties"]["tree"] == {"$ref": f"#/$defs/{defined}"}
    assert form["$defs"][defined]["items"] == {"$ref": f"#/$defs/{defined}"}


def test_a_def_name_never_takes_a_root_property_name() -> None:
    # The older converter names the rule of a root property after the property itself.
    form = grammar(
        {
            "type": "object",
            "properties": {"defNode": {"type": "string"}, "n": {"$ref": "#/$defs/node"}},
            "$defs": {"node": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        }
    )
    assert set(form["$defs"]) == {"defNode2"}


def test_a_property_named_ref_is_written_as_any_other_key() -> None:
    # Kubernetes' JSONSchemaProps has a "$ref" property; converters read it as a reference.
    schema = Schema.load(
        {
            "type": "object",
            "properties": {"$ref": {"type": "string"}, "id": {"type": "integer"}},
            "required": ["$ref", "id"],
            "additionalProperties": False,
        }
    )
    form = schema.grammar
    assert form == {
        "type": "object",
        "properties": {"id": {"type": "integer"}},
        "required": ["id"],
        "additionalProperties": {"type": "string"},
    }
    recognised(form, form)
    schema.validate({"$ref": "#/x", "id": 1})
    assert schema.unenforced() == [
        "$.properties.$ref: a property named $ref cannot be named in a grammar (converters"
        " read it as a reference): its key is not enforced, other keys may take its place"
    ]


def test_an_option_holding_a_ref_key_keeps_its_type() -> None:
    schema = Schema.load({"enum": [{"$ref": "#/a"}, {"$ref": 1}, None]})
    assert schema.grammar == {"type": ["object", "null"]}
    assert 'holding a "$ref" key' in schema.unenforced()[0]


def test_discriminated_union_distributes_the_base() -> None:
    form = grammar(
        {
            "type": "object",
            "properties": {"kind": {"type": "string"}, "size": {"type": "integer"}},
            "required": ["kind"],
            "oneOf": [
                {"properties": {"kind": {"const": "a"}}},
                {"properties": {"kind": {"const": "b"}}, "required": ["size"]},
            ],
        }
    )
    first, second = form["anyOf"]
    assert first["properties"]["kind"] == {"enum": ["a"]}
    assert second["required"] == ["kind", "size"]


def test_notes_name_what_is_not_enforced() -> None:
    schema = Schema.load(
        {
            "type": "object",
            "properties": {
                "price": {"type": "number", "minimum": 0, "multipleOf": 0.01},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "email": {"type": "string", "format": "email"},
                "code": {"type": "string", "pattern": "[A-Z]{3}"},
                "kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "patternProperties": {"^x-": {}},
            "minProperties": 1,
            "if": {"required": ["a"]},
            "then": {"required": ["b"]},
        }
    )
    assert schema.unenforced() == [
        "$.patternProperties: patternProperties is not enforced",
        "$.minProperties: minProperties is not enforced",
        "$.if: if/then/else is not enforced",
        "$.properties.price.multipleOf: multipleOf is not enforced",
        "$.properties.price.minimum: number bounds are not enforced",
        "$.properties.tags.uniqueItems: uniqueItems is not enforced",
        "$.properties.email.format: format 'email' is not enforced",
        "$.properties.code.pattern: pattern is not anchored with ^...$, so it is not enforced",
        "$.properties.kind.oneOf: matching exactly one branch is not enforced",
    ]


def test_notes_for_a_def_used_twice_appear_once() -> None:
    schema = Schema.load(
        {
            "$defs": {"money": {"type": "number", "minimum": 0}},
            "properties": {"a": {"$ref": "#/$defs/money"}, "b": {"$ref": "#/$defs/money"}},
        }
    )
    assert schema.unenforced() == ["$.$defs.money.minimum: number bounds are not enforced"]


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"$dynamicRef": "#meta", "$defs": {"m": {"$dynamicAnchor": "meta"}}}, "$dynamicRef"),
        (
            {"allOf": [{"type": "string", "pattern": "^a$"}, {"pattern": "^b$"}]},
            "disagree on 'pattern'",
        ),
        ({"type": "string", "enum": [1, 2]}, "matches nothing"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "matches nothing"),
        ({"not": {}, "anyOf": [False, False]}, "matches nothing"),
    ],
)
def test_no_grammar_when_none_can_be_derived(schema: dict[str, Any], reason: str) -> None:
    loaded = Schema.load(schema)
    assert loaded.grammar is None
    (note,) = loaded.unenforced()
    assert reason in note
    assert "only JSON syntax is enforced" in note


def test_shared_parts_are_written_once() -> None:
    # Inlined, each level would double the form: 2**20 copies of d0.
    defs: dict[str, Any] = {"d0": {"type": "string", "minLength": 1, "maxLength": 80}}
    for i in range(1, 20):
        ref = {"$ref": f"#/$defs/d{i - 1}"}
        defs[f"d{i}"] = {"type": "object", "properties": {"a": ref, "b": ref}, "required": ["a"]}
    form = grammar({"$defs": defs, "$ref": "#/$defs/d19"})
    assert len(json.dumps(form)) < 10_000
    assert form["properties"]["a"] == {"$ref": "#/$defs/defD18"}
    assert form["$defs"]["defD1"]["properties"]["b"] == defs["d0"]  # too small to share


def test_too_many_subschemas_give_up() -> None:
    many = {f"p{i}": {"type": "string"} for i in range(MAX_NODES)}
    schema = Schema.load({"type": "object", "properties": many})
    assert schema.grammar is None
    assert f"more than {MAX_NODES}" in schema.unenforced()[0]


@pytest.mark.parametrize(
    ("pattern", "kept"),
    [
        ("^[A-Z]{3}$", True),
        ("^(ab|cd)+x?$", True),
        ("^a\\.b\\(c\\)$", True),
        ("^[\\]\\\\a-z]$", True),
        ("^a{2000}$", False),
        ("^(?:ab)$", False),
        ("^\\w+$", False),
        ("^a$b$", False),
        ("^[\\-]$", False),
        ("^a{$", False),
        ("^a\\/b$", False),
        ("^$", True),
    ],
)
def test_patterns(pattern: str, kept: bool) -> None:
    form = grammar({"type": "string", "pattern": pattern})
    assert ("pattern" in form) == kept
