"""Grounded values: a string marked x-grounded must occur in the document, or it goes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import Scripted
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from extract import ExtractionFailed, Extractor, Schema, Span, grounded
from extract.core.grounding import locate
from extract.server import Reply

MARIA = "Hi, this is Maria Lopez from Acme Foods. Reach me at maria.lopez@acmefoods.com"
INVENTED = {
    "name": "Maria Lopez",
    "company": "Acme Foods",
    "email": "maria.lopez@acmefoods.com",
    "phone": "123-456-7890",
    "address": "1650 22nd St. in Los Angeles, CA 90406, USA",
    "website": None,
}


def test_invented_contact_details_become_null_and_the_rest_get_spans(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted()
    server.engine.script(Reply.text(json.dumps(INVENTED)))
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract(MARIA, schema="contact")
    assert result.value == {**INVENTED, "phone": None, "address": None}
    assert len(result.attempts) == 1  # nullable: no re-ask needed
    for span in result.spans:
        assert (
            MARIA[span.start : span.end].lower()
            == str(result.value[span.path.removeprefix("$.")]).lower()
        )
    assert {s.path for s in result.spans} == {"$.name", "$.company", "$.email"}


BUYER = {
    "type": "object",
    "properties": {"buyer": {"type": "string", "x-grounded": True}},
    "required": ["buyer"],
}


def test_a_required_invented_value_is_re_asked_with_the_reason(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted()
    server.engine.script(Reply.text('{"buyer": "John Smith"}'), Reply.text('{"buyer": "Ann Lee"}'))
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("Sold to ann  lee on Monday.", schema=BUYER)
    assert result.value == {"buyer": "Ann Lee"}
    assert result.spans == (Span("$.buyer", 8, 16, "normalised"),)
    reask = server.generates()[1]["prompt"]
    assert "'John Smith' does not occur in the document" in reask


def test_a_value_never_found_fails_the_extraction(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    server.engine.script(*[Reply.text('{"buyer": "John Smith"}')] * 2)
    with Extractor("tiny", host=server.url) as ex, pytest.raises(ExtractionFailed) as info:
        ex.extract("Sold to Ann Lee.", schema=BUYER, max_attempts=2)
    assert info.value.last_error.to_dict()["path"] == "$.buyer"


def test_a_required_value_breaking_its_own_rules_is_re_asked_with_that_reason(
    scripted: Callable[..., Scripted],
) -> None:
    schema = {
        "type": "object",
        "properties": {"quote": {"type": "string", "pattern": "^[^.]+[.]$", "x-grounded": True}},
        "required": ["quote"],
    }
    server = scripted()
    server.engine.script(Reply.text('{"quote": "Sold. To Ann."}'), Reply.text('{"quote": "Sold."}'))
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("Sold. To Ann.", schema=schema)
    assert result.value == {"quote": "Sold."}
    error = result.attempts[0].error
    assert error is not None
    assert "does not match" in str(error)  # the value's own fault, not "is a required property"
    assert "required property" not in server.generates()[1]["prompt"]


def test_an_optional_key_is_removed(scripted: Callable[..., Scripted]) -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "ref": {"type": "string", "x-grounded": True}},
        "required": ["id"],
    }
    server = scripted()
    server.engine.script(Reply.text('{"id": "x", "ref": "INV-404"}'))
    with Extractor("tiny", host=server.url) as ex:
        assert ex.extract("no reference here", schema=schema).value == {"id": "x"}


def test_items_of_a_list_are_each_grounded(scripted: Callable[..., Scripted]) -> None:
    reply = {
        "entities": [{"text": "Oslo", "type": "location"}, {"text": "Paris", "type": "location"}]
    }
    server = scripted()
    server.engine.script(
        Reply.text(json.dumps(reply)),
        Reply.text(json.dumps({"entities": [{"text": "Oslo", "type": "location"}]})),
    )
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("Ann flew to Oslo.", schema="entities")
    assert result.value == {"entities": [{"text": "Oslo", "type": "location"}]}
    assert result.spans == (Span("$.entities[0].text", 12, 16, "exact"),)
    assert len(result.attempts) == 2


class Contact(BaseModel):
    name: str | None = grounded(None, description="full name")
    phone: str | None = grounded(None)


def test_the_pydantic_helper_marks_the_field(scripted: Callable[..., Scripted]) -> None:
    schema = Schema.load(Contact)
    assert schema.grounded == (("name",), ("phone",))
    assert schema.json_schema["properties"]["name"]["description"] == "full name"
    server = scripted()
    server.engine.script(Reply.text('{"name": "Ann", "phone": "555 123 4567"}'))
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("Ann, tel. (555) 123-4567", schema=Contact)
    assert result.value == Contact(name="Ann", phone="555 123 4567")
    assert [s.how for s in result.spans] == ["exact", "digits"]


def test_the_bundled_schemas_mark_the_fields_that_copy_text() -> None:
    assert {p[0] for p in Schema.load("contact").grounded} == {
        "name",
        "company",
        "email",
        "phone",
        "address",
        "website",
    }
    assert ("vendor",) in Schema.load("invoice").grounded
    assert Schema.load("pii").grounded == (("spans", "*", "text"),)
    assert Schema.load("sentiment").grounded == (("evidence",),)
    assert Schema.load("ticket").grounded == (("request",),)
    assert Schema.load("topic").grounded == (("keywords", "*"),)
    assert {p[0] for p in Schema.load("product").grounded} == {
        "name",
        "brand",
        "color",
        "size",
        "material",
    }
    assert "x-grounded" not in json.dumps(Schema.load("contact").grammar)


@given(st.text(min_size=1, max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_a_value_cut_from_the_document_is_always_found_where_it_is(
    value: str, before: str, after: str
) -> None:
    document = before + value + after
    found = locate(value, document)
    if not value.strip():
        assert found is None
        return
    assert found is not None
    start, end, how = found
    if how == "exact":
        assert document[start:end] == value


@pytest.mark.parametrize(
    ("value", "document", "found"),
    [
        ("1250.00", "Total: 1,250.00 EUR", (7, 15, "digits")),
        ("+47 22 33 44 55", "call +4722334455", (6, 16, "digits")),
        ("12", "room 12b", (5, 7, "exact")),
        ("Oslo", "OSLO", (0, 4, "normalised")),
        ("2024-03-05", "on March 5, 2024", None),
        ("42", "", None),
    ],
)
def test_locate(value: str, document: str, found: tuple[int, int, str] | None) -> None:
    assert locate(value, document) == found
