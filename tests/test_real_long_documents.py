"""Long documents and grounded values on the real model: SmolLM2-135M via the llama.cpp engine,
whose context (2048 tokens) a 20,000-character document overflows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from extract import DocumentTooLong, Extractor
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

pytestmark = pytest.mark.real_model

PADDING = (
    " The parties agree that the goods described in the schedule shall be delivered in good"
    " condition, that payment shall be made within thirty days of the invoice date, and that"
    " any dispute shall be settled under the laws of the seller's country."
)
FIRST = (
    "The buyer, Sophie Martin, can be reached at sophie.martin@orange.fr for any question "
    "about this contract."
)
CONTRACT = FIRST + PADDING * 95  # about 23,000 characters
EMAIL = {
    "type": "object",
    "properties": {
        "email": {
            "type": ["string", "null"],
            "description": "the buyer's email address",
            "x-grounded": True,
        }
    },
    "required": ["email"],
}
MARIA = "Hi, this is Maria Lopez from Acme Foods. Reach me at maria.lopez@acmefoods.com"


@pytest.fixture(scope="module")
def ex() -> Iterator[Extractor]:
    with (
        serve(LlamaEngine()) as srv,
        Extractor(DEFAULT_LOCAL_MODEL, host=srv.url, options={"temperature": 0, "seed": 1}) as e,
    ):
        yield e


def test_a_document_longer_than_the_context_is_a_typed_error(ex: Extractor) -> None:
    assert len(CONTRACT) > 20_000
    with pytest.raises(DocumentTooLong) as info:
        ex.extract(CONTRACT, schema=EMAIL)
    assert "chunk" in info.value.message


def test_read_in_chunks_it_gives_the_value_of_its_first_sentence(ex: Extractor) -> None:
    short = ex.extract(FIRST, schema=EMAIL)
    long = ex.extract(CONTRACT, schema=EMAIL, chunk="auto")
    assert long.value == short.value == {"email": "sophie.martin@orange.fr"}
    assert long.chunks > 1
    [span] = long.spans
    assert CONTRACT[span.start : span.end] == "sophie.martin@orange.fr"


def test_the_contact_schema_invents_nothing(ex: Extractor) -> None:
    # The message has no phone and no address; without grounding the model wrote
    # "123-456-7890" and a street in Los Angeles. Grounding does not judge meaning: a piece of
    # the message in the wrong field can stay, an invented value cannot.
    result = ex.extract(MARIA, schema="contact")
    for field, value in result.value.items():
        if value is not None:
            [span] = [s for s in result.spans if s.path == f"$.{field}"]
            assert MARIA[span.start : span.end].lower() == value.lower(), (field, value)
    assert result.value["phone"] is None
