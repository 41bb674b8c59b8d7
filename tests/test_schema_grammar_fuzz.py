"""Generated schemas, valid or not: each loads or raises SchemaError, and then its grammar form
is one llama.cpp accepts and its validation errors carry a JSON path.

Hand-picked conversions are in ``test_schema_grammar``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from grammar_support import recognised
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract.core.schema import Schema
from extract.errors import SchemaError, SchemaMismatch

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
