"""Real-world schemas: what ``jsonschema`` takes, extract loads, and nothing escapes untyped.

Every schema of the JSON-Schema-Test-Suite, the SchemaStore schemas check-jsonschema ships and
the vendored Kubernetes ones (``schema_corpus``) goes through ``Schema.load``, the grammar form
(which every node of must be one llama.cpp's converter takes) and validation of its instances.
Only extract's own errors may come out. Every schema that ``jsonschema`` accepts loads, except
for the two documented refusals (``extract/core/schema.py``): a ``$schema`` naming no known
draft, and a ``$ref`` to another document.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import pytest
from grammar_support import recognised
from schema_corpus import Case, cases, jsonschema_accepts

from extract.core.schema import Schema
from extract.errors import ExtractError, SchemaError

DRAFT4 = "http://json-schema.org/draft-04/schema"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2020 = "https://json-schema.org/draft/2020-12/schema"

CASES = list(cases())


def _documented_refusal(error: SchemaError) -> bool:
    message = str(error)
    return "unknown $schema" in message or "remote references are never fetched" in message


def _through(case: Case) -> Schema | SchemaError:
    """Load, check the grammar form, validate every instance; extract's errors only."""
    try:
        schema = Schema.load(case.schema)
    except SchemaError as exc:
        return exc
    if schema.grammar is not None:
        recognised(schema.grammar, schema.grammar)
    for instance in case.instances:
        with contextlib.suppress(ExtractError):
            schema.validate(instance)
    return schema


@functools.cache
def _outcomes(source: str) -> list[tuple[Case, Schema | SchemaError]]:
    return [(case, _through(case)) for case in CASES if case.source == source]


@pytest.mark.parametrize("source", ["suite", "schemastore", "kubernetes"])
def test_what_jsonschema_accepts_loads(source: str) -> None:
    refused = [
        f"{case.name}: {outcome}"
        for case, outcome in _outcomes(source)
        if isinstance(outcome, SchemaError)
        and not _documented_refusal(outcome)
        and jsonschema_accepts(case)
    ]
    assert refused == []


def test_corpus_rates() -> None:
    # The figures of the closing note (python tests/schema_corpus.py prints them): every
    # SchemaStore schema but the one jsonschema refuses and the one that refers to another
    # file loads, and so does every Kubernetes one; each that loads has a grammar.
    for source, (loaded, grammars) in {"schemastore": (24, 24), "kubernetes": (10, 10)}.items():
        outcomes = [outcome for _, outcome in _outcomes(source)]
        schemas = [o for o in outcomes if isinstance(o, Schema)]
        assert len(schemas) == loaded, source
        assert sum(s.grammar is not None for s in schemas) == grammars, source


ORDER_OF_EVALUATION = {
    # JSON-Schema-Test-Suite ref.json, "order of evaluation: $id and $ref on nested schema":
    # the $ref inside foo resolves against foo's own $id, relative to the root's.
    "$schema": DRAFT2020,
    "$id": "https://example.com/ref-and-id3/base.json",
    "$ref": "nested/foo.json",
    "$defs": {
        "foo": {"$id": "nested/foo.json", "$ref": "./bar.json"},
        "bar": {"$id": "nested/bar.json", "type": "number"},
        "decoy": {"$id": "bar.json", "type": "string"},
    },
}


def test_ids_and_refs_on_nested_schemas() -> None:
    schema = Schema.load(ORDER_OF_EVALUATION)
    schema.validate(5)
    with pytest.raises(ExtractError):
        schema.validate("five")
    assert schema.grammar == {"type": "number"}


@pytest.mark.parametrize(
    "schema",
    [
        # A nested $schema that spells the root's draft another way, with no $id beside it.
        {"$schema": DRAFT4, "properties": {"a": {"$schema": DRAFT4 + "#", "type": "string"}}},
        # Another draft, with and without an identifier beside it.
        {"$schema": DRAFT2020, "properties": {"a": {"$schema": DRAFT7, "type": "string"}}},
        {
            "$schema": DRAFT2020,
            "properties": {"a": {"$schema": DRAFT4 + "#", "id": "a.json", "type": "string"}},
        },
    ],
)
def test_nested_schema_keywords_load(schema: dict[str, Any]) -> None:
    loaded = Schema.load(schema)
    loaded.validate({"a": "x"})
    with pytest.raises(ExtractError):
        loaded.validate({"a": 1})
    assert loaded.grammar is not None


def test_a_nested_draft_is_never_tighter_in_the_grammar() -> None:
    # Draft 7 ignores the keywords beside a $ref, so its grammar drops them; jsonschema's
    # validation applies them all the same, and the reply is validated.
    schema = Schema.load(
        {
            "$schema": DRAFT2020,
            "$defs": {"s": {"type": "string"}},
            "properties": {
                "old": {"$schema": DRAFT7, "$ref": "#/$defs/s", "maxLength": 1},
                "new": {"$ref": "#/$defs/s", "maxLength": 1},
            },
        }
    )
    schema.validate({"old": "l", "new": "n"})
    assert schema.grammar is not None
    (_, _, _, branch, _, _) = schema.grammar["anyOf"]
    assert branch["properties"]["old"] == {"type": "string"}
    assert branch["properties"]["new"] == {"type": "string", "maxLength": 1}


@pytest.mark.parametrize(("source", "accepts"), [(True, [None, 1, {}]), (False, [])])
def test_boolean_schemas(source: bool, accepts: list[Any]) -> None:
    schema = Schema.load(source)
    for value in [None, 1, {}]:
        if value in accepts:
            schema.validate(value)
        else:
            with pytest.raises(ExtractError):
                schema.validate(value)


def test_a_ref_to_the_metaschema_resolves_without_the_network() -> None:
    schema = Schema.load({"$ref": DRAFT2020})
    schema.validate({"type": "string"})
    with pytest.raises(ExtractError):
        schema.validate({"type": 12})


@pytest.mark.parametrize(
    ("schema", "path", "says"),
    [
        ({"$ref": "#/allOf/first", "allOf": [{}]}, "$.$ref", "points to nothing"),
        ({"$ref": "other.json#/a"}, "$.$ref", "remote references are never fetched"),
        ({"type": "strin"}, "$.type", "the metaschema's 'anyOf' rule"),
        ({"$schema": "https://example.com/mine"}, "$.$schema", "unknown $schema"),
    ],
)
def test_refusals_name_the_path_and_the_rule(schema: Any, path: str, says: str) -> None:
    with pytest.raises(SchemaError) as caught:
        Schema.load(schema)
    assert caught.value.path == path
    assert says in str(caught.value)
