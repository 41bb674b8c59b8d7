"""The bundled schemas: each loads, has a one-line description, and accepts and refuses a sample.

Its grammar form never forbids a valid value. Loading schemas from every source is in
``test_schema``.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from extract.core.schema import Schema, bundled_schemas
from extract.errors import SchemaError, SchemaMismatch

# name: (a valid value, an invalid value, the JSON path the invalid one fails at)
SAMPLES: dict[str, tuple[Any, Any, str]] = {
    "sentiment": (
        {"sentiment": "positive", "evidence": "I love it"},
        {"sentiment": "great", "evidence": "I love it"},
        "$.sentiment",
    ),
    "topic": (
        {"topic": "sports", "keywords": ["football", "final"]},
        {"topic": "sports", "keywords": []},
        "$.keywords",
    ),
    "language": ({"code": "fr", "name": "French"}, {"code": "FRA", "name": "French"}, "$.code"),
    "entities": (
        {
            "entities": [
                {"text": "Ada Lovelace", "type": "person"},
                {"text": "London", "type": "location"},
            ]
        },
        {"entities": [{"text": "Ada", "type": "person"}, {"text": "Mars", "type": "planet"}]},
        "$.entities[1].type",
    ),
    "pii": (
        {"spans": [{"text": "ada@example.com", "type": "email"}]},
        {"spans": [{"text": "", "type": "email"}]},
        "$.spans[0].text",
    ),
    "contact": (
        {
            "name": "Ada Lovelace",
            "company": None,
            "email": "ada@example.com",
            "phone": "+44 20 7946 0000",
            "address": None,
            "website": None,
        },
        {
            "name": "Ada",
            "company": None,
            "email": "not an email",
            "phone": None,
            "address": None,
            "website": None,
        },
        "$.email",
    ),
    "invoice": (
        {
            "invoice_number": "INV-7",
            "date": "2024-03-01",
            "vendor": "ACME",
            "customer": None,
            "currency": "EUR",
            "items": [{"description": "bolts", "quantity": 3, "unit_price": 2.5, "amount": 7.5}],
            "tax": None,
            "total": 7.5,
        },
        {
            "invoice_number": None,
            "date": None,
            "vendor": "ACME",
            "customer": None,
            "currency": None,
            "items": [
                {"description": "bolts", "quantity": 3, "unit_price": 2.5, "amount": 7.5},
                {"description": "nuts", "quantity": 0, "unit_price": 1, "amount": 0},
            ],
            "tax": None,
            "total": 7.5,
        },
        "$.items[1].quantity",
    ),
    "product": (
        {
            "name": "Trail runner",
            "brand": "Fleet",
            "category": "shoes",
            "price": 89.0,
            "currency": "USD",
            "color": "blue",
            "size": "42",
            "material": None,
            "features": ["waterproof"],
        },
        {
            "name": "Trail runner",
            "brand": None,
            "category": "shoes",
            "price": 89.0,
            "currency": "usd",
            "color": None,
            "size": None,
            "material": None,
            "features": [],
        },
        "$.currency",
    ),
    "ticket": (
        {"category": "shipping", "priority": "high", "request": "The parcel is two weeks late."},
        {"category": "shipping", "priority": "high", "request": None, "assignee": "bob"},
        "$",
    ),
}


def test_every_bundled_schema_has_a_sample() -> None:
    assert set(bundled_schemas()) == set(SAMPLES)
    assert list(bundled_schemas()) == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_bundled_schema(name: str) -> None:
    schema = Schema.load(name)
    valid, invalid, path = SAMPLES[name]
    assert schema.name == name
    assert schema.description == bundled_schemas()[name]
    assert schema.json_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema.json_schema["additionalProperties"] is False
    assert isinstance(schema.json_schema.get("title"), str)
    assert schema.grammar is not None
    assert schema.validate(valid) == valid
    # The grammar form never forbids a valid value (read as a JSON Schema it only loosens).
    jsonschema.Draft202012Validator(schema.grammar).validate(valid)
    with pytest.raises(SchemaMismatch) as caught:
        schema.validate(invalid)
    assert caught.value.path == path


def test_bundled_descriptions_are_one_line() -> None:
    for name, description in bundled_schemas().items():
        assert description, name
        assert "\n" not in description


def test_unknown_name_lists_the_bundled_ones() -> None:
    with pytest.raises(SchemaError, match="unknown schema name 'tickets'") as caught:
        Schema.load("tickets")
    for name in SAMPLES:
        assert name in caught.value.message
