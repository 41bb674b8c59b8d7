"""Near-copies of the prompt's own words (placeholders, descriptions, option meanings) are
PlaceholderEcho; real values that share a word or two with them are not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Scripted

from extract import Extractor, PlaceholderEcho, Schema
from extract.core.echo import echoed, near_copy, references, words
from extract.server import Reply

TICKET = Schema.load(
    {
        "type": "object",
        "properties": {
            "category": {
                "enum": ["billing", "other"],
                "x-labels": {"billing": "charges, refunds, invoices", "other": "anything else"},
            },
            "summary": {"type": "string", "description": "the request in one sentence"},
        },
        "required": ["category", "summary"],
    }
)
SENTIMENT = Schema.load(
    {
        "type": "object",
        "properties": {
            "sentiment": {"enum": ["positive", "negative"]},
            "evidence": {"type": "string", "description": "the words that show the sentiment"},
        },
        "required": ["sentiment", "evidence"],
    }
)


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        # Replies seen from SmolLM2-135M on the README's job and `extract one`.
        (TICKET, {"summary": "The request in one sentence is a refund, theft…"}),
        (TICKET, {"summary": "The request in one sentence."}),
        (SENTIMENT, {"evidence": "I love this phone (the words that show the sentiment)"}),
        (SENTIMENT, {"evidence": "the words that show the sentiment:"}),
        # An option's meaning copied into a free-text field.
        (TICKET, {"summary": "charges, refunds, invoices"}),
        # One word of the reference missing or changed is still a near-copy.
        (TICKET, {"summary": "The request in a sentence"}),
        (SENTIMENT, {"evidence": "Words that show the sentiment"}),
    ],
)
def test_near_copies_are_echoes(schema: Schema, value: dict[str, Any]) -> None:
    assert echoed(value, schema) == f"$.{next(iter(value))}"


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        # Real values that share a word or two with a description.
        (TICKET, {"summary": "Please refund the request I sent in one email."}),
        (TICKET, {"summary": "One sentence: refund my March charge"}),
        (TICKET, {"summary": "The request for a refund of the duplicate payment."}),
        (SENTIMENT, {"evidence": "the staff show they care"}),
        (SENTIMENT, {"evidence": "no words can describe how bad the sentiment in the room was"}),
        (TICKET, {"summary": "Refunds for invoices"}),
        (TICKET, {"category": "billing", "summary": "charged twice"}),
        # A one-word placeholder is only matched whole, with its brackets.
        (Schema.load({"type": "string"}), "string"),
    ],
)
def test_values_that_merely_share_words_are_not(schema: Schema, value: Any) -> None:
    assert echoed(value, schema) is None


def test_a_near_copy_the_document_holds_is_no_echo() -> None:
    value = {"summary": "the request in one sentence"}
    document = "Form help: write the request in one sentence, then send it."
    assert echoed(value, TICKET, document) is None
    assert echoed(value, TICKET, "I was charged twice.") == "$.summary"


def test_the_definition_in_numbers() -> None:
    # One word edit in five (20%): a copy; two: not.
    assert near_copy("the request in sentence", "the request in one sentence")
    assert near_copy("so: the request in a sentence is", "the request in one sentence")
    assert not near_copy("the request sentence", "the request in one sentence")
    # Three words must appear whole.
    assert near_copy("charges, refunds, invoices.", "charges, refunds, invoices")
    assert not near_copy("charges and refunds", "charges, refunds, invoices")
    # All 5 words in order but spread over a long value: not one stretch, so not a copy.
    spread = "the bank said my request was lost in transit and one more sentence"
    assert not near_copy(spread, "the request in one sentence")
    assert words("<Total tax, number>") == ("total", "tax", "number")


def test_references_are_placeholders_descriptions_and_meanings() -> None:
    found = references(TICKET)
    assert ("the", "request", "in", "one", "sentence") in found
    assert ("charges", "refunds", "invoices") in found
    assert ("anything", "else") in found
    assert all(len(r) >= 2 for r in found)


def test_an_echo_is_asked_again(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    server.engine.script(
        Reply.text('{"category": "billing", "summary": "The request in one sentence."}'),
        Reply.text('{"category": "billing", "summary": "Refund the double charge."}'),
    )
    with Extractor("tiny", host=server.url, calibrate=False) as ex:
        result = ex.extract("I was charged twice, refund one please.", schema=TICKET)
    assert result.value["summary"] == "Refund the double charge."
    assert isinstance(result.attempts[0].error, PlaceholderEcho)
    assert result.attempts[0].error.path == "$.summary"
