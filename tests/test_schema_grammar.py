"""The grammar-safe form sent as Ollama's ``format``, and what it leaves unenforced.

``recognised`` mirrors the order in which llama.cpp's json-schema-to-grammar dispatches on a
schema: every node of a grammar form must land on a branch it supports, or the server would
reject the request.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract._schema_grammar import ANY, MAX_NODES
from extract.errors import SchemaError, SchemaMismatch
from extract.schema import Schema

PRIMITIVES = {"boolean", "number", "integer", "string", "null", "object", "array"}
SIMPLE_REF = re.compile(r"#/\$defs/[A-Za-z0-9_-]+")


def recognised(node: Any, root: dict[str, Any]) -> None:
    """Fail unless the converter accepts ``node`` and everything under it."""
    assert isinstance(node, dict), node
    kind = node.get("type")
    if "$ref" in node:
        assert SIMPLE_REF.fullmatch(node["$ref"]), node
        assert node["$ref"].split("/")[-1] in root.get("$defs", {})
        return
    if "anyOf" in node:
        for branch in node["anyOf"]:
            recognised(branch, root)
        return
    if isinstance(kind, list):
        assert kind
        for single in kind:
            recognised({**node, "type": single}, root)
        return
    assert "oneOf" not in node
    assert "allOf" not in node
    assert "const" not in node
    if "enum" in node:
        assert isinstance(node["enum"], list)
        return
    if kind in (None, "object") and (
        "properties" in node or node.get("additionalProperties", True) is not True
    ):
        for sub in node.get("properties", {}).values():
            recognised(sub, root)
        extra = node.get("additionalProperties")
        assert extra is None or extra is False or isinstance(extra, dict)
        if isinstance(extra, dict):
            recognised(extra, root)
        return
    if kind in (None, "array") and ("items" in node or "prefixItems" in node):
        items = node.get("items", node.get("prefixItems"))
        for sub in items if isinstance(items, list) else [items]:
            recognised(sub, root)
        for key in ("minItems", "maxItems"):
            assert isinstance(node.get(key, 0), int)
        return
    if kind in (None, "string") and "pattern" in node:
        assert node["pattern"].startswith("^")
        assert node["pattern"].endswith("$")
        return
    if kind in (None, "string") and node.get("format") in ("uuid", "date", "time", "date-time"):
        return
    if kind == "string" and ("minLength" in node or "maxLength" in node):
        assert all(isinstance(node.get(k, 0), int) for k in ("minLength", "maxLength"))
        return
    if kind == "integer" and any(k in node for k in ("minimum", "maximum")):
        assert all(isinstance(node.get(k, 0), int) for k in ("minimum", "maximum"))
        return
    if not node or kind == "object":
        return
    assert kind in PRIMITIVES, node


def grammar(schema: Any) -> dict[str, Any]:
    form = Schema.load(schema).grammar
    assert form is not None
    recognised(form, form)
    return form


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
        ({"prefixItems": [True], "minItems": 1, "items": False}, {**ANY, "prefixItems": [ANY]}),
        ({}, ANY),
        ({"description": "anything"}, ANY),
        ({"minLength": 2}, {**ANY, "minLength": 2}),
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
    assert form["properties"]["work"] == {**address, "type": ["object", "null"]}
    assert form["properties"]["both"] == {**address, "required": ["city"]}
    assert "$defs" not in form


def test_recursion_keeps_a_local_ref() -> None:
    class Node(pydantic.BaseModel):
        name: str
        children: list[Node] = []

    form = grammar(Node)
    assert form["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert form["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


def test_recursion_through_the_root_and_odd_names() -> None:
    form = grammar(
        {
            "properties": {"next": {"$ref": "#"}, "x": {"$ref": "#/$defs/a~1b%20c"}},
            "$defs": {"a/b c": {"items": {"$ref": "#/$defs/a~1b%20c"}}},
        }
    )
    assert form["properties"]["next"] == {"$ref": "#/$defs/schema"}
    assert set(form["$defs"]) == {"schema", "a-b-c"}


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


def test_inlining_blow_up_gives_up() -> None:
    defs: dict[str, Any] = {"d0": {"type": "string"}}
    for i in range(1, 20):
        ref = {"$ref": f"#/$defs/d{i - 1}"}
        defs[f"d{i}"] = {"type": "object", "properties": {"a": ref, "b": ref}}
    schema = Schema.load({"$defs": defs, "$ref": "#/$defs/d19"})
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


_KEYWORD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(
        [
            "string",
            "integer",
            "number",
            "object",
            "array",
            "boolean",
            "null",
            "integr",
            ["string", "null"],
            [],
        ]
    ),
    "enum": st.lists(st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=3)), max_size=3),
    "const": st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    "required": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
    "minimum": st.one_of(st.integers(-10, 10), st.floats(allow_nan=False), st.just("3")),
    "maximum": st.one_of(st.integers(-10, 10), st.floats(allow_nan=False, allow_infinity=False)),
    "exclusiveMinimum": st.one_of(st.integers(-5, 5), st.booleans()),
    "minLength": st.integers(-1, 3000),
    "maxItems": st.integers(0, 3),
    "pattern": st.one_of(
        st.sampled_from(["^a+$", "[", "^\\d$", "^(x|y)$", "a"]), st.text(max_size=5)
    ),
    "format": st.sampled_from(["date", "email", "uuid", "time", "made-up"]),
    "$ref": st.sampled_from(
        [
            "#",
            "#/$defs/A",
            "#/$defs/B",
            "#/$defs/missing",
            "https://example.com/s.json",
            "#/properties/a",
        ]
    ),
    "uniqueItems": st.booleans(),
    "multipleOf": st.sampled_from([0, 2, 0.5]),
    "description": st.text(max_size=10),
    "$schema": st.sampled_from(
        [
            "https://json-schema.org/draft/2020-12/schema",
            "http://json-schema.org/draft-07/schema#",
            "http://json-schema.org/draft-04/schema#",
            "nope",
        ]
    ),
}


def _schemas() -> st.SearchStrategy[Any]:
    leaf = st.dictionaries(st.sampled_from(sorted(_KEYWORD_VALUES)), st.nothing(), max_size=0)

    def with_keywords(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        schema_or_bool = st.one_of(children, st.booleans())
        structural = st.fixed_dictionaries(
            {},
            optional={
                "properties": st.dictionaries(
                    st.sampled_from(["a", "b", "c d"]), schema_or_bool, max_size=3
                ),
                "items": st.one_of(schema_or_bool, st.lists(children, max_size=2)),
                "prefixItems": st.lists(schema_or_bool, max_size=2),
                "additionalProperties": schema_or_bool,
                "anyOf": st.lists(schema_or_bool, min_size=1, max_size=3),
                "oneOf": st.lists(schema_or_bool, min_size=1, max_size=3),
                "allOf": st.lists(schema_or_bool, min_size=1, max_size=2),
                "not": schema_or_bool,
                "$defs": st.fixed_dictionaries(
                    {"A": schema_or_bool}, optional={"B": schema_or_bool}
                ),
            },
        )
        flat = st.fixed_dictionaries({}, optional=_KEYWORD_VALUES)
        return st.builds(lambda a, b: {**a, **b}, flat, structural)

    return st.recursive(
        leaf | st.fixed_dictionaries({}, optional=_KEYWORD_VALUES), with_keywords, max_leaves=8
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _schemas(),
    st.lists(
        st.one_of(
            st.none(), st.integers(), st.text(max_size=3), st.just({"a": "x"}), st.just([1, "b"])
        ),
        max_size=3,
    ),
)
def test_generated_schemas_load_or_raise_schema_error(raw: Any, values: list[Any]) -> None:
    try:
        schema = Schema.load(raw)
    except SchemaError:
        return
    schema.render()
    schema.render("schema")
    assert all(isinstance(line, str) for line in schema.unenforced())
    if schema.grammar is not None:
        json.dumps(schema.grammar)
        jsonschema.Draft202012Validator.check_schema(schema.grammar)
        recognised(schema.grammar, schema.grammar)
    paths = []
    for value in values:
        try:
            schema.validate(value)
        except SchemaMismatch as exc:
            paths.append(exc.path)
    assert all(path.startswith("$") for path in paths)
