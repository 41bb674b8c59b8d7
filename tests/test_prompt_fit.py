"""Prompts that fit: a schema too large to show in full is shown in a compact form.

Kubernetes' Deployment schema (tests/data/kubernetes, 121 definitions) renders to about 30,000
characters: more than an 8k context leaves beside the reply. A one-sentence document must
still be read, with the compact rendering; a schema too large for even the smallest one fails
as DocumentTooLong naming the schema and the context it needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Scripted

from extract import DocumentTooLong, Extractor, Schema
from extract.client.calls import CHARS_PER_TOKEN, reply_reserve
from extract.server import Reply

DEPLOYMENT = Schema.load(
    json.loads((Path(__file__).parent / "data/kubernetes/deployment.json").read_text())
)
SENTENCE = "Deploy three replicas of the web image."


def test_compact_renderings_shrink_and_say_what_they_leave_out() -> None:
    sizes = [len(DEPLOYMENT.render("shape", compact=level)) for level in range(4)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > 25_000
    compact = DEPLOYMENT.render("shape", compact=1)
    assert "<same as " in compact  # ObjectMeta and friends are shown once
    assert "A compact form, to fit the context" in compact
    schema = DEPLOYMENT.render("schema", compact=1)
    assert (
        "description"
        not in json.loads(schema.split("\n")[0])["$defs"]["io.k8s.api.apps.v1.Deployment"]
    )
    assert "left out, to fit the context" in schema


def test_a_sentence_is_read_with_a_schema_too_large_to_show_in_full(
    scripted: Callable[..., Scripted],
) -> None:
    value = {"spec": {"selector": {}, "template": {}}}
    server = scripted(responder=lambda body: Reply.text(json.dumps(value)))
    with Extractor("tiny", host=server.url, options={"num_ctx": 8192}) as extractor:
        result = extractor.extract(SENTENCE, DEPLOYMENT)
    assert result.value == value
    (body,) = server.generates()
    assert "A compact form, to fit the context" in body["prompt"]
    budget = 8192 - reply_reserve(body["options"], 8192)
    assert len(body["prompt"]) / CHARS_PER_TOKEN <= budget
    assert body["prompt"].endswith(f"{SENTENCE}\n</document>")


def test_the_schema_rendering_suggests_the_shape(scripted: Callable[..., Scripted]) -> None:
    # The JSON Schema itself, even without its annotations, is 47,000 characters.
    server = scripted(responder=lambda body: Reply.text("{}"))
    with (
        Extractor("tiny", host=server.url, options={"num_ctx": 8192}) as extractor,
        pytest.raises(DocumentTooLong, match="rendering='shape'"),
    ):
        extractor.extract(SENTENCE, DEPLOYMENT, rendering="schema")
    assert server.generates() == []


def test_a_schema_no_rendering_fits_names_itself(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=lambda body: Reply.text("{}"))
    with (
        Extractor("tiny", host=server.url, options={"num_ctx": 64}) as extractor,
        pytest.raises(DocumentTooLong) as caught,
    ):
        extractor.extract(SENTENCE, DEPLOYMENT)
    message = str(caught.value)
    assert message.startswith("the schema does not fit the model's context")
    assert "raise num_ctx to at least" in message
    assert caught.value.context == 64
    assert server.generates() == []


def test_a_schema_that_fits_is_shown_in_full(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=lambda body: Reply.text('{"n": 1}'))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    with Extractor("tiny", host=server.url) as extractor:
        extractor.extract("x " * 3000, schema)  # a long document is no reason to compact
    (body,) = server.generates()
    assert "compact" not in body["prompt"]
    assert Schema.load(schema).render() in body["prompt"]
