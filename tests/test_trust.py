"""Labels you can trust, end to end on the scripted engine: confidence from scripted
log-probabilities, calibration against a content-free prior, samples, examples, placeholders."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
from conftest import Scripted
from conftest import sentiment_reply as reply

from extract import ConfigError, Extractor, Labeling, PlaceholderEcho
from extract.server import Reply

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}
CHUNKS = ['{"sentiment": "', "positive", '"}']


def test_confidence_is_the_chosen_options_share(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    server.engine.script(reply(math.log(0.6), math.log(0.2)))
    with Extractor("tiny", host=server.url, calibrate=False) as ex:
        result = ex.extract("Loved it.", schema=SENTIMENT)
    assert result.value == {"sentiment": "positive"}
    assert result.confidence["$.sentiment"] == pytest.approx(0.75)
    assert result.choices["$.sentiment"].options == ("positive", "negative")
    body = server.generates()[0]
    assert (body["logprobs"], body["top_logprobs"]) == (True, 20)
    assert len(server.generates()) == 1  # calibrate=False: no content-free request


def test_calibration_takes_out_the_models_lean(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    # The document barely favours positive; with no content at all, the model is sure of it.
    server.engine.script(
        reply(-0.1, -2.4),
        reply(-0.01, -4.6),  # the content-free reply
        reply(-0.05, -3.5),
    )
    with Extractor("tiny", host=server.url) as ex:
        first = ex.extract("Meh, it broke.", schema=SENTIMENT)
        second = ex.extract("Wonderful!", schema=SENTIMENT)
    prompts = [b["prompt"] for b in server.generates()]
    assert "<document>\nN/A\n</document>" in prompts[1]
    assert len(prompts) == 3  # the prior is asked for once
    assert first.value == {"sentiment": "negative"}
    assert first.confidence["$.sentiment"] > 0.5
    assert second.value == {"sentiment": "negative"}
    assert len(ex.priors) == 1


def test_a_server_without_logprobs_works_and_reports_no_confidence(
    scripted: Callable[..., Scripted],
) -> None:
    for version in ("0.12.0", "0.33.0"):  # too old to be asked; asked but sends none
        server = scripted(version=version)
        server.engine.script(Reply.text('{"sentiment": "positive"}'))
        with Extractor("tiny", host=server.url) as ex:
            result = ex.extract("Loved it.", schema=SENTIMENT)
        assert (result.value, result.confidence) == ({"sentiment": "positive"}, {})
        assert len(server.generates()) == 1  # no content-free request without logprobs
        assert ("logprobs" in server.generates()[0]) is (version == "0.33.0")


def test_samples_vote_per_field(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    server.engine.script(
        Reply.text('{"sentiment": "positive"}'),
        Reply.text('{"sentiment": "negative"}'),
        Reply.text('{"sentiment": "positive"}'),
    )
    with Extractor("tiny", host=server.url, options={"seed": 5}) as ex:
        result = ex.extract("Fine.", schema=SENTIMENT, samples=3)
    assert result.value == {"sentiment": "positive"}
    assert result.confidence == {"$.sentiment": pytest.approx(2 / 3)}
    assert (result.samples, len(result.attempts)) == (3, 3)
    assert [b["options"]["seed"] for b in server.generates()] == [5, 6, 7]
    assert result.usage.eval_count == sum(a.metrics.eval_count or 0 for a in result.attempts)
    with pytest.raises(ConfigError, match="temperature"):
        ex.extract("Fine.", schema=SENTIMENT, samples=3, options={"temperature": 0})


def test_examples_are_checked_and_shown(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    server.engine.script(Reply.text('{"sentiment": "negative"}'))
    examples = [("Great phone.", {"sentiment": "positive"})]
    with Extractor("tiny", host=server.url, examples=examples) as ex:
        ex.extract("Awful.", schema=SENTIMENT)
        with pytest.raises(ConfigError, match="example 0"):
            ex.extract("Awful.", schema=SENTIMENT, examples=[("x", {"sentiment": "meh"})])
    prompt = server.generates()[0]["prompt"]
    assert 'Great phone.\n</document>\n{"sentiment":"positive"}' in prompt
    assert len(server.generates()) == 1


def test_a_placeholder_echo_is_re_asked_without_showing_it_again(
    scripted: Callable[..., Scripted],
) -> None:
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string", "description": "the request in one sentence"}},
        "required": ["summary"],
    }
    server = scripted()
    server.engine.script(
        Reply.text('{"summary": "<the request in one sentence>"}'),
        Reply.text('{"summary": "Refund a double charge."}'),
    )
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("I was charged twice, refund one please.", schema=schema)
    assert result.value == {"summary": "Refund a double charge."}
    assert isinstance(result.attempts[0].error, PlaceholderEcho)
    reask = server.generates()[1]["prompt"]
    assert "placeholder" in reask
    assert reask.count("<the request in one sentence>") == 1  # the shape's own, not the reply's


def test_batch_records_carry_confidence(scripted: Callable[..., Scripted]) -> None:
    server = scripted()
    server.engine.script(reply(math.log(0.9), math.log(0.1)), reply(math.log(0.3), math.log(0.2)))
    with Labeling(SENTIMENT, model="tiny", hosts=server.url, calibrate=False) as session:
        lines = [r.to_json() for r in session.results(["good", "so-so"])]
    assert [line["min_confidence"] for line in lines] == [0.9, 0.6]
    assert lines[0]["confidence"] == {"$.sentiment": 0.9}
    assert json.dumps(lines)  # JSON-ready
