"""Grounded sentences: the grammar offers the document's own sentences, the model chooses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conftest import Scripted

from extract import Extractor, Schema
from extract.core.sentences import document_sentences, offer_sentences
from extract.server import Reply

TICKET = "I was charged twice. Please refund the duplicate payment!\nThanks, Ann"
ASK = {"type": "string", "minLength": 12, "x-grounded": "sentence"}


def schema_with(ask: dict[str, Any], **more: Any) -> dict[str, Any]:
    properties = {"ask": ask, **more}
    return {"type": "object", "properties": properties, "required": list(properties)}


def test_sentences_are_split_on_ends_and_lines_kept_as_written_and_once() -> None:
    text = "  One.  Two!   One.\n\nThree? four"
    assert document_sentences(text) == ["One.", "Two!", "Three?", "four"]
    assert document_sentences("a. b. c.", limit=2) == ["a.", "b."]


def test_the_form_offers_the_sentences_that_fit_the_field() -> None:
    schema = Schema.load(schema_with(ASK))
    assert schema.sentences == (("ask",),)
    assert schema.grounded == (("ask",),)
    assert schema.grammar is not None
    offered = offer_sentences(schema.grammar, schema.sentences, TICKET)
    # "Thanks, Ann" is shorter than minLength: not offered.
    assert offered["properties"]["ask"] == {
        "enum": ["I was charged twice.", "Please refund the duplicate payment!"]
    }
    assert "enum" not in json.dumps(schema.grammar)  # the schema's own form is untouched


def test_a_nullable_field_offers_null_beside_them_and_only_null_when_none_fits() -> None:
    nullable = {**ASK, "type": ["string", "null"]}
    schema = Schema.load(schema_with(nullable))
    assert schema.grammar is not None
    ask = offer_sentences(schema.grammar, schema.sentences, TICKET)["properties"]["ask"]
    assert {"type": "null"} in ask["anyOf"]
    none_fit = offer_sentences(schema.grammar, schema.sentences, "Hi. Bye.")["properties"]
    assert none_fit["ask"] == {"type": "null"}


def test_a_field_behind_a_ref_and_one_in_an_array_are_handled_as_they_can_be() -> None:
    raw = {
        "type": "object",
        "$defs": {"Ask": {"type": "object", "properties": {"text": ASK}, "required": ["text"]}},
        "properties": {
            "first": {"$ref": "#/$defs/Ask"},
            "all": {"type": "array", "items": ASK},
        },
        "required": ["first", "all"],
    }
    schema = Schema.load(raw)
    assert set(schema.sentences) == {("first", "text"), ("all", "*")}
    assert schema.grammar is not None
    offered = json.dumps(offer_sentences(schema.grammar, schema.sentences, TICKET))
    assert offered.count("Please refund the duplicate payment!") == 1  # the array is generated


def test_the_server_gets_the_choice_and_the_value_is_grounded(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(responder=lambda body: Reply.text('{"ask": "I was charged twice."}'))
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract(TICKET, schema_with(ASK))
    assert result.value == {"ask": "I was charged twice."}
    assert [(s.path, s.start, s.how) for s in result.spans] == [("$.ask", 0, "exact")]
    (body,) = server.generates()
    assert body["format"]["properties"]["ask"]["enum"][1] == "Please refund the duplicate payment!"


def test_with_format_json_the_field_is_generated_as_before(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(responder=lambda body: Reply.text('{"ask": "I was charged twice."}'))
    with Extractor("tiny", host=server.url) as ex:
        ex.extract(TICKET, schema_with(ASK), format="json")
    (body,) = server.generates()
    assert body["format"] == "json"
