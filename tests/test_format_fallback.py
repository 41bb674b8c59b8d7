"""A server that refuses the schema as ``format``: the document goes again with "json".

The scripted server answers as Ollama does when it cannot turn a schema into a grammar (400,
``invalid JSON schema in format``), or with another 400 that names nothing; the fallback is
sent once, with the same prompt, remembered per schema on the host, and said in the attempt
log, the batch records and the run's summary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from conftest import Scripted

from extract import AsyncExtractor, BadRequest, Extractor, Labeling
from extract.batch.progress import Tally
from extract.server import Reply

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
OLLAMA_REFUSAL = "invalid JSON schema in format"


def refusing(message: str, *, also_json: bool = False) -> Callable[[Mapping[str, Any]], Reply]:
    """A responder that refuses a schema ``format`` with 400 (and "json" too, if told)."""

    def respond(body: Mapping[str, Any]) -> Reply:
        if isinstance(body.get("format"), dict) or also_json:
            return Reply.status(400, message)
        return Reply.text('{"n": 7}')

    return respond


def test_a_refused_schema_falls_back_to_json_once(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=refusing(OLLAMA_REFUSAL))
    with Extractor("tiny", host=server.url) as extractor:
        first = extractor.extract("seven", SCHEMA)
        second = extractor.extract("eight", SCHEMA)
    assert first.value == second.value == {"n": 7}
    sent = server.generates()
    assert [isinstance(body["format"], dict) for body in sent] == [True, False, False]
    assert sent[1]["format"] == "json"
    assert sent[0]["prompt"] == sent[1]["prompt"]  # the prompt is unchanged
    (attempt,) = first.attempts
    assert attempt.format_fallback is not None
    assert f"HTTP 400: {OLLAMA_REFUSAL}" in attempt.format_fallback
    assert attempt.to_dict()["format_fallback"] == attempt.format_fallback
    # Remembered for the schema on this host: the next document goes with "json" at once.
    assert second.attempts[0].format_fallback == attempt.format_fallback


@pytest.mark.anyio
async def test_the_async_extractor_falls_back_too(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=refusing("failed to parse grammar: undefined rule"))
    async with AsyncExtractor("tiny", host=server.url) as extractor:
        result = await extractor.extract("seven", SCHEMA)
    assert result.value == {"n": 7}
    assert [body["format"] == "json" for body in server.generates()] == [False, True]


def test_another_400_is_tested_without_the_schema(scripted: Callable[..., Scripted]) -> None:
    # A 400 that names nothing: the request goes once without the schema; accepted, the
    # schema was the cause, and that is remembered.
    server = scripted(responder=refusing("bad request"))
    with Extractor("tiny", host=server.url) as extractor:
        extractor.extract("seven", SCHEMA)
        extractor.extract("eight", SCHEMA)
    assert [body["format"] == "json" for body in server.generates()] == [False, True, True]


def test_a_400_that_the_schema_did_not_cause_fails(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=refusing("bad request", also_json=True))
    with Extractor("tiny", host=server.url) as extractor, pytest.raises(BadRequest):
        extractor.extract("seven", SCHEMA)
    assert [body["format"] == "json" for body in server.generates()] == [False, True]


def test_without_a_schema_format_a_400_fails_at_once(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=refusing(OLLAMA_REFUSAL, also_json=True))
    with Extractor("tiny", host=server.url) as extractor, pytest.raises(BadRequest):
        extractor.extract("seven", SCHEMA, format="json")
    assert len(server.generates()) == 1


def test_a_batch_says_which_records_fell_back(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=refusing(OLLAMA_REFUSAL))
    with Labeling(SCHEMA, model="tiny", hosts=server.url, concurrency=1) as session:
        records = list(session.results(["one", "two", "three"]))
    assert all(record.ok for record in records)
    assert all(OLLAMA_REFUSAL in record.to_json()["format_fallback"] for record in records)
    tally = Tally(started=0.0)
    for record in records:
        tally.add(record)
    assert 'format: 3 records sent with format "json"' in tally.summary(now=1.0)
    assert len(server.generates()) == 4  # one refusal, then "json" for every document
