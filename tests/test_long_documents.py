"""Long documents: never a value from a silently cut prompt; chunked on request.

The scripted engine counts a prompt in words against its ``context_length`` and, like the Ollama
version it reports, cuts an over-long prompt (before 0.12.6) or refuses it when told
``truncate: false`` (0.12.6 and later).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from conftest import Scripted

from extract import DocumentTooLong, ExtractionFailed, Extractor, Labeling
from extract.server import Reply

BUYER = {
    "type": "object",
    "properties": {"buyer": {"type": ["string", "null"]}},
    "required": ["buyer"],
}
LONG = " ".join(["filler"] * 400)


def test_truncate_false_is_sent_and_an_over_long_prompt_is_a_typed_error(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(context_length=200)
    with Extractor("tiny", host=server.url) as ex, pytest.raises(DocumentTooLong) as info:
        ex.extract("The buyer is Ann. " + LONG, schema=BUYER)
    assert server.generates()[0]["truncate"] is False
    assert not info.value.retryable
    assert "chunk" in info.value.message
    assert len(server.generates()) == 1  # refused, not retried


def test_a_short_document_is_unaffected(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=200)
    server.engine.script(Reply.text('{"buyer": "Ann"}'))
    with Extractor("tiny", host=server.url) as ex:
        assert ex.extract("The buyer is Ann.", schema=BUYER).value == {"buyer": "Ann"}


def test_an_older_server_that_cut_the_prompt_is_caught_afterwards(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(version="0.12.0", context_length=200)
    server.engine.script(Reply.text('{"buyer": ");\\n\\n{ "}'))
    with Extractor("tiny", host=server.url) as ex, pytest.raises(DocumentTooLong) as info:
        ex.extract("The buyer is Ann. " + LONG, schema=BUYER)
    assert "truncate" not in server.generates()[0]
    assert (info.value.tokens, info.value.context) == (200, 200)


def test_a_caller_who_allows_the_cut_gets_it(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=200)
    server.engine.script(Reply.text('{"buyer": "Ann"}'))
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("The buyer is Ann. " + LONG, schema=BUYER, truncate=True)
    assert result.value == {"buyer": "Ann"}
    assert server.generates()[0]["truncate"] is True


def test_in_a_batch_a_long_document_is_an_error_record(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=200, responder=lambda body: Reply.text('{"buyer": "Bob"}'))
    docs = [{"id": "long", "text": "Ann. " + LONG}, {"id": "short", "text": "Bob."}]
    with Labeling(BUYER, model="tiny", hosts=server.url) as session:
        records = list(session.results(docs))
    assert [(r.id, r.ok) for r in records] == [("long", False), ("short", True)]
    error = records[0].to_json()["error"]
    assert error["type"] == "DocumentTooLong"


def _piece_responder(body: Mapping[str, Any]) -> Reply:
    """The buyer named in this piece of the document, else null."""
    document = body["prompt"].rpartition("<document>")[2]
    buyer = "Ann Lee" if "Ann Lee" in document else None
    items = [w for w in ("apples", "pears") if w in document]
    return Reply.text(json.dumps({"buyer": buyer, "items": items}))


ORDER = {
    "type": "object",
    "properties": {
        "buyer": {"type": ["string", "null"]},
        "items": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["buyer", "items"],
}


def test_chunked_extraction_merges_the_pieces(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=400, responder=_piece_responder)
    text = "The buyer is Ann Lee, who orders apples. " + LONG + " Later she adds pears."
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract(text, schema=ORDER, chunk=1000)
    assert result.value == {"buyer": "Ann Lee", "items": ["apples", "pears"]}
    assert result.chunks == len(server.generates()) > 1
    assert len(result.attempts) == result.chunks
    assert result.usage.prompt_eval_count == sum(
        a.metrics.prompt_eval_count or 0 for a in result.attempts
    )


def test_auto_chunks_fit_the_context(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=400, responder=_piece_responder)
    text = "The buyer is Ann Lee. " + LONG + " " + LONG
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract(text, schema=ORDER, chunk="auto")
    assert result.value["buyer"] == "Ann Lee"
    assert result.chunks > 1
    # Every piece fitted: nothing was refused, and every prompt stayed inside the context.
    assert all(len(b["prompt"].split()) < 400 for b in server.generates())


def test_a_document_that_fits_is_read_whole_even_with_chunk(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(responder=_piece_responder)
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("Ann Lee buys pears.", schema=ORDER, chunk="auto")
    assert (result.chunks, len(server.generates())) == (1, 1)


def test_a_custom_merge_decides(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=400, responder=_piece_responder)
    text = "Ann Lee orders apples. " + LONG + " pears."
    seen: list[list[Any]] = []

    def last(values: list[Any]) -> Any:
        seen.append(values)
        return values[-1]

    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract(text, schema=ORDER, chunk=1000, merge=last)
    assert len(seen[0]) == result.chunks
    assert result.value == seen[0][-1]


def test_a_merge_that_breaks_the_schema_fails(scripted: Callable[..., Scripted]) -> None:
    server = scripted(context_length=400, responder=_piece_responder)
    text = "Ann Lee orders apples. " + LONG
    with Extractor("tiny", host=server.url) as ex, pytest.raises(ExtractionFailed) as info:
        ex.extract(text, schema=ORDER, chunk=1000, merge=lambda values: {"buyer": 3})
    assert "merge" in info.value.message


@pytest.mark.parametrize("bad", [0, 99, True, "big", 2.5])
def test_bad_chunk_sizes_are_refused(scripted: Callable[..., Scripted], bad: Any) -> None:
    from extract import ConfigError

    server = scripted()
    with Extractor("tiny", host=server.url) as ex, pytest.raises(ConfigError):
        ex.extract("text", schema=ORDER, chunk=bad)


def test_a_piece_that_fails_is_left_out_of_the_merge(scripted: Callable[..., Scripted]) -> None:
    def responder(body: Mapping[str, Any]) -> Reply:
        document = body["prompt"].rpartition("<document>")[2]
        if "Ann Lee" in document:
            return Reply.text('{"buyer": "Ann Lee", "items": ["apples"]}')
        return Reply.text("not JSON at all")

    server = scripted(context_length=400, responder=responder)
    text = "The buyer is Ann Lee, who orders apples. " + LONG
    with Extractor("tiny", host=server.url, max_attempts=2) as ex:
        result = ex.extract(text, schema=ORDER, chunk=1000)
    assert result.value == {"buyer": "Ann Lee", "items": ["apples"]}
    firsts = [b for b in server.generates() if "Your previous reply" not in b["prompt"]]
    assert result.chunks == len(firsts) > 1
    failed = [a for a in result.attempts if not a.ok]
    assert len(failed) == 2 * (result.chunks - 1)  # every other piece failed twice
    server.engine.reset()
    with (
        Extractor("tiny", host=server.url, max_attempts=1) as ex,
        pytest.raises(ExtractionFailed),
    ):
        ex.extract(LONG, schema=ORDER, chunk=1000)
