"""Schema: loading from every source, the metaschema check, validation errors with JSON paths."""

from __future__ import annotations

import datetime
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pydantic
import pytest

from extract.core.schema import Schema
from extract.errors import ConfigError, SchemaError, SchemaMismatch

PERSON = {
    "title": "Person",
    "description": "Someone mentioned in the text.",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name"],
}


class Item(pydantic.BaseModel):
    name: str
    price: float = pydantic.Field(ge=0)


class Order(pydantic.BaseModel):
    """An order with its items."""

    id: str
    placed: datetime.date
    items: list[Item]
    status: Literal["open", "shipped"] = "open"


def test_load_from_dict_copies_it() -> None:
    source = json.loads(json.dumps(PERSON))
    schema = Schema.load(source)
    source["properties"]["name"]["type"] = "integer"
    assert schema.json_schema == PERSON
    assert schema.name == "Person"
    assert schema.description == "Someone mentioned in the text."
    assert schema.model is None


def test_schema_loads_to_itself() -> None:
    schema = Schema.load(PERSON)
    assert Schema.load(schema) is schema


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "person.json"
    path.write_text(json.dumps(PERSON), encoding="utf-8")
    assert Schema.load(path).json_schema == PERSON
    assert Schema.load(str(path)).name == "Person"
    untitled = tmp_path / "thing.json"
    untitled.write_text('{"type": "string"}', encoding="utf-8")
    assert Schema.load(untitled).name == "thing"


def test_load_from_json_text() -> None:
    assert Schema.load(' {"type": "integer"}').json_schema == {"type": "integer"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no schema file at"):
        Schema.load(tmp_path / "nope.json")


def test_invalid_json_file_says_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "type": "object",\n  "properties": {,}\n}', encoding="utf-8")
    with pytest.raises(SchemaError, match=r"line 3, column 18"):
        Schema.load(path)


@pytest.mark.parametrize("content", ['"just a string"', "[1, 2]", "true"])
def test_a_schema_file_must_hold_an_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SchemaError, match="JSON object"):
        Schema.load(path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes('{"description": "café"}'.encode("latin-1"))
    with pytest.raises(SchemaError, match="UTF-8"):
        Schema.load(path)


@pytest.mark.parametrize("source", [42, None, ["type"], object()])
def test_unsupported_sources(source: Any) -> None:
    with pytest.raises(SchemaError, match="cannot make a schema"):
        Schema.load(source)


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "integr"}, "$.type"),
        ({"properties": {"age": {"type": "integr"}}}, "$.properties.age.type"),
        ({"type": "object", "required": "name"}, "$.required"),
        ({"items": {"minItems": -1}}, "$.items.minItems"),
        ({"type": "string", "pattern": "(unclosed"}, "$.pattern"),
        ({"$defs": {"a b": {"enum": 3}}}, "$.$defs['a b'].enum"),
    ],
)
def test_metaschema_errors_name_the_keyword(schema: dict[str, Any], path: str) -> None:
    with pytest.raises(SchemaError) as caught:
        Schema.load(schema)
    assert caught.value.path == path
    assert path in caught.value.message


def test_dialect_comes_from_dollar_schema() -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}
    draft4["minimum"], draft4["exclusiveMinimum"] = 0, True
    schema = Schema.load(draft4)
    schema.validate(1)
    with pytest.raises(SchemaMismatch):
        schema.validate(0)
    with pytest.raises(SchemaError) as caught:
        Schema.load(
            {"$schema": "http://json-schema.org/draft-07/schema#", "exclusiveMinimum": True}
        )
    assert caught.value.path == "$.exclusiveMinimum"


@pytest.mark.parametrize(
    ("dialect", "match"),
    [
        ("https://example.com/my-dialect", "unknown \\$schema"),
        ("http://json-schema.org/draft-03/schema#", "draft 3"),
        (7, "URI string"),
    ],
)
def test_bad_dialects(dialect: Any, match: str) -> None:
    with pytest.raises(SchemaError, match=match) as caught:
        Schema.load({"$schema": dialect})
    assert caught.value.path == "$.$schema"


@pytest.mark.parametrize(
    ("ref", "match"),
    [
        ("https://example.com/schemas/address.json", "never fetched"),
        ("other.json#/defs/x", "never fetched"),
        ("#/$defs/Missing", "points to nothing"),
    ],
)
def test_refs_must_resolve_inside_the_schema(ref: str, match: str) -> None:
    schema = {"$defs": {"A": {"type": "string"}}, "properties": {"a": {"$ref": ref}}}
    with pytest.raises(SchemaError, match=match) as caught:
        Schema.load(schema)
    assert caught.value.path == "$.properties.a.$ref"


def test_embedded_ids_resolve_locally() -> None:
    schema = Schema.load(
        {
            "$id": "https://example.com/root.json",
            "$defs": {"addr": {"$id": "address.json", "type": "string", "minLength": 2}},
            "type": "object",
            "properties": {"home": {"$ref": "address.json"}},
        }
    )
    schema.validate({"home": "Paris"})
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate({"home": "P"})
    assert caught.value.path == "$.home"
    assert schema.grammar is not None
    assert schema.grammar["properties"]["home"] == {"type": "string", "minLength": 2}


@pytest.mark.parametrize("source", [{"a": {1, 2}}, {"a": datetime.date(2024, 1, 1)}])
def test_non_json_dicts_are_schema_errors(source: dict[str, Any]) -> None:
    with pytest.raises(SchemaError, match="plain JSON"):
        Schema.load(source)


def test_circular_dict_is_a_schema_error() -> None:
    circular: dict[str, Any] = {"type": "object"}
    circular["properties"] = {"self": circular}
    with pytest.raises(SchemaError):
        Schema.load(circular)


def test_deeply_nested_schema_is_a_schema_error() -> None:
    text = '{"items": ' * 5000 + "{}" + "}" * 5000
    with pytest.raises(SchemaError, match="nested too deeply"):
        Schema.load(text)


def test_non_object_roots_are_allowed() -> None:
    schema = Schema.load({"type": "string", "enum": ["yes", "no"]})
    assert schema.validate("yes") == "yes"
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate("maybe")
    assert caught.value.path == "$"


def test_fingerprint_is_canonical() -> None:
    a = Schema.load({"type": "object", "properties": {"x": {"type": "integer"}}})
    b = Schema.load({"properties": {"x": {"type": "integer"}}, "type": "object"})
    c = Schema.load({"type": "object", "properties": {"x": {"type": "number"}}})
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 64
    assert a == b
    assert hash(a) == hash(b)
    assert a != c


def test_key_order_is_kept() -> None:
    schema = Schema.load({"properties": {"z": {}, "a": {}}})
    assert list(schema.json_schema["properties"]) == ["z", "a"]


def test_validation_reports_the_most_useful_error_with_its_path() -> None:
    schema = Schema.load(
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"price": {"type": "number", "minimum": 0}},
                        "required": ["price"],
                    },
                }
            },
        }
    )
    schema.validate({"items": [{"price": 1}]})
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate({"items": [{"price": 1}, {"price": 2}, {"price": -3}]})
    assert caught.value.path == "$.items[2].price"
    assert caught.value.reason == "-3 is less than the minimum of 0"
    assert caught.value.message == "$.items[2].price: -3 is less than the minimum of 0"


def test_formats_are_checked() -> None:
    schema = Schema.load({"type": "string", "format": "date"})
    schema.validate("2024-02-29")
    with pytest.raises(SchemaMismatch, match="is not a 'date'"):
        schema.validate("2023-02-29")


def test_long_values_do_not_make_long_messages() -> None:
    schema = Schema.load({"type": "array", "maxItems": 1})
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate(list(range(10_000)))
    assert len(caught.value.message) < 400


def test_validating_a_deeply_nested_value_is_a_mismatch() -> None:
    schema = Schema.load({"$defs": {"n": {"items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"})
    value: list[Any] = []
    for _ in range(3000):
        value = [value]
    with pytest.raises(SchemaMismatch, match="nested too deeply"):
        schema.validate(value)


def test_pydantic_model() -> None:
    schema = Schema.load(Order)
    assert schema.model is Order
    assert schema.name == "Order"
    assert schema.description == "An order with its items."
    order = schema.validate(
        {"id": "A1", "placed": "2024-05-01", "items": [{"name": "pen", "price": 1.5}]}
    )
    assert isinstance(order, Order)
    assert order.placed == datetime.date(2024, 5, 1)
    assert order.items[0].price == 1.5


def test_pydantic_errors_come_from_the_json_schema_first() -> None:
    schema = Schema.load(Order)
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate(
            {"id": "A1", "placed": "2024-05-01", "items": [{"name": "pen", "price": -1}]}
        )
    assert caught.value.path == "$.items[0].price"


def test_pydantic_only_errors_get_a_path_from_loc() -> None:
    class Strict(pydantic.BaseModel):
        when: datetime.date

        @pydantic.field_validator("when")
        @classmethod
        def not_in_future(cls, value: datetime.date) -> datetime.date:
            if value.year > 2100:
                raise ValueError("too far ahead")
            return value

    schema = Schema.load(Strict)
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate({"when": "2300-01-01"})
    assert caught.value.path == "$.when"
    assert "too far ahead" in caught.value.reason


def test_model_without_json_schema_is_a_schema_error() -> None:
    class Hook(pydantic.BaseModel):
        callback: Callable[[int], int]

    with pytest.raises(SchemaError, match="Hook has no JSON Schema"):
        Schema.load(Hook)


def test_pickles_for_ray_workers() -> None:
    for source in ("invoice", Order):
        schema = Schema.load(source)
        copy = pickle.loads(pickle.dumps(schema))
        assert copy == schema
        assert copy.name == schema.name
        assert copy.render() == schema.render()
        assert copy.grammar == schema.grammar


def test_render_styles() -> None:
    schema = Schema.load(PERSON)
    assert schema.render() == schema.render("shape")
    assert json.loads(schema.render("schema")) == PERSON
    with pytest.raises(ConfigError):
        schema.render("xml")  # type: ignore[arg-type]


def test_json_schema_shares_nothing_with_the_source_or_the_grammar() -> None:
    source = {
        "$defs": {"p": {"type": "integer", "minimum": 1}},
        "properties": {
            "a": {"anyOf": [{"$ref": "#/$defs/p"}, {"type": "null"}]},
            "b": {"const": 1},
        },
    }
    schema = Schema.load(source)
    before = json.dumps(schema.json_schema)
    schema.render()
    schema.render("schema")
    schema.unenforced()
    assert json.dumps(schema.json_schema) == before
    assert not containers(schema.json_schema) & containers(source)
    assert not containers(schema.json_schema) & containers(schema.grammar)


def test_loading_again_reuses_the_checked_schema() -> None:
    assert Schema.load(Order) is Schema.load(Order)
    assert Schema.load(dict(PERSON)) is Schema.load(json.loads(json.dumps(PERSON)))
    reordered = dict(reversed(list(PERSON.items())))
    assert Schema.load(reordered) == Schema.load(PERSON)


def containers(value: Any) -> set[int]:
    """The ids of every dict and list inside ``value``."""
    if isinstance(value, dict):
        return {id(value)}.union(*(containers(v) for v in value.values()))
    if isinstance(value, list):
        return {id(value)}.union(*(containers(v) for v in value))
    return set()
