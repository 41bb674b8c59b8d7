"""The extraction core against the scripted server, asserting on the requests it received."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Person, fast_retry

from extract import (
    AsyncExtractor,
    BadRequest,
    ConfigError,
    ExtractionFailed,
    Extractor,
    InputError,
    InvalidJSON,
    ModelNotFound,
    RunawayOutput,
    SchemaMismatch,
    ServerBusy,
    TruncatedOutput,
)
from extract.server import Reply, ScriptedEngine, serve

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
ANN = '{"name": "Ann", "age": 34}'


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(
        models=("tiny", "thinker", "old"),
        capabilities={"thinker": ["completion", "thinking"], "tiny": ["completion"]},
    )


@pytest.fixture
def ex(url: str) -> Iterator[Extractor]:
    with Extractor("tiny", host=url, retry=fast_retry()) as extractor:
        yield extractor


def generates(engine: ScriptedEngine) -> list[dict[str, Any]]:
    return [r.body for r in engine.requests if r.path == "/api/generate"]


def test_pydantic_model_gives_an_instance(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text(ANN))
    result = ex.extract("Ann is 34.", schema=Person)
    assert result.value == Person(name="Ann", age=34)
    assert result.raw == ANN
    assert len(result.attempts) == 1
    assert result.attempts[0].ok
    sent = generates(engine)[0]
    assert "Ann is 34." in sent["prompt"]
    assert "JSON" in sent["prompt"]
    assert sent["format"]["required"] == ["name", "age"]  # auto → schema on a 0.33 server
    assert sent["options"]["num_predict"] > 0  # the default cap
    assert sent["stream"] is True


def test_dict_schema_gives_plain_data(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text(ANN))
    assert ex.extract("Ann is 34.", schema=PERSON).value == {"name": "Ann", "age": 34}


def test_bundled_schema_by_name(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text('{"sentiment": "positive", "evidence": "love"}'))
    value = ex.extract("I love it", schema="sentiment").value
    assert value["sentiment"] == "positive"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("json", "json"), ("schema", "schema"), (None, None)],
)
def test_format_modes(engine: ScriptedEngine, ex: Extractor, mode: Any, expected: Any) -> None:
    engine.script(Reply.text(ANN))
    ex.extract("Ann is 34.", schema=PERSON, format=mode)
    sent = generates(engine)[0]
    if expected == "schema":
        assert isinstance(sent["format"], dict)
    elif expected is None:
        assert "format" not in sent
    else:
        assert sent["format"] == "json"
    assert "JSON" in sent["prompt"]  # the instruction is always in the prompt


def test_auto_falls_back_to_json_on_old_servers(url: str) -> None:
    old = ScriptedEngine(models=("tiny",), version="0.4.7")
    old.script(Reply.text(ANN))
    with serve(old) as srv, Extractor("tiny", host=srv.url) as ex:
        ex.extract("Ann is 34.", schema=PERSON)
    assert [r.body.get("format") for r in old.requests if r.path == "/api/generate"] == ["json"]


def test_server_facts_are_asked_once(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text(ANN), Reply.text(ANN), Reply.text(ANN))
    for _ in range(3):
        ex.extract("Ann is 34.", schema=PERSON)
    paths = [r.path for r in engine.requests]
    assert paths.count("/api/version") == 1
    assert paths.count("/api/show") == 1


def test_thinking_models_get_think_false_unless_set(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text(ANN), Reply.text(ANN))
    with Extractor("thinker", host=url) as ex:
        ex.extract("Ann is 34.", schema=PERSON)
        ex.extract("Ann is 34.", schema=PERSON, think="low")
    assert [b["think"] for b in generates(engine)] == [False, "low"]


def test_lenient_decode_needs_no_reask(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text(f"Sure! Here it is:\n```json\n{ANN}\n```\nHope that helps."))
    result = ex.extract("Ann is 34.", schema=PERSON, format="json")
    assert result.value == Person(name="Ann", age=34).model_dump()
    assert len(generates(engine)) == 1


def test_schema_mismatch_reasks_with_the_path_and_previous_reply(
    engine: ScriptedEngine, ex: Extractor
) -> None:
    engine.script(
        Reply.text('{"name": "Ann", "age": "thirty-four"}', eval_count=7, prompt_eval_count=20),
        Reply.text(ANN, eval_count=5, prompt_eval_count=40),
    )
    result = ex.extract("Ann is 34.", schema=Person)
    first, second = generates(engine)
    assert "$.age" in second["prompt"]
    assert "thirty-four" in second["prompt"]
    assert second["prompt"].startswith(first["prompt"][:50])
    assert [a.ok for a in result.attempts] == [False, True]
    assert isinstance(result.attempts[0].error, SchemaMismatch)
    assert result.usage.eval_count == 12
    assert result.usage.prompt_eval_count == 60


def test_reask_carries_only_the_last_failure(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text("first bad"), Reply.text("second bad"), Reply.text(ANN))
    ex.extract("Ann is 34.", schema=PERSON, format="json")
    third = generates(engine)[2]["prompt"]
    assert "second bad" in third
    assert "first bad" not in third
    assert len(third) < len(generates(engine)[1]["prompt"]) + 200


def test_exhausted_attempts_raise_with_every_attempt(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(*[Reply.text("no json here") for _ in range(2)])
    with pytest.raises(ExtractionFailed) as info:
        ex.extract("Ann is 34.", schema=PERSON, max_attempts=2)
    failure = info.value
    assert len(failure.attempts) == 2
    assert failure.raw == "no json here"
    assert isinstance(failure.last_error, InvalidJSON)
    assert not failure.retryable


@pytest.mark.parametrize(
    "fault",
    [Reply.status(503, "server busy"), Reply.status(500, "boom"), Reply.reset()],
    ids=["503", "500", "reset"],
)
def test_transport_errors_resend_the_same_request(
    engine: ScriptedEngine, ex: Extractor, fault: Reply
) -> None:
    engine.script(fault, Reply.text(ANN))
    result = ex.extract("Ann is 34.", schema=PERSON)
    first, second = generates(engine)
    assert first == second  # same request, no error pasted into the prompt
    assert len(result.attempts) == 1
    assert result.attempts[0].transport_retries == 1


def test_transport_errors_exhaust_their_own_budget(engine: ScriptedEngine, url: str) -> None:
    engine.script(*[Reply.status(503, "server busy") for _ in range(3)])
    with Extractor("tiny", host=url, retry=fast_retry(3)) as ex, pytest.raises(ServerBusy):
        ex.extract("Ann is 34.", schema=PERSON)
    assert len(generates(engine)) == 3


def test_unknown_model_is_fatal_before_any_generate(engine: ScriptedEngine, url: str) -> None:
    with Extractor("llama3.2", host=url) as ex, pytest.raises(ModelNotFound, match="ollama pull"):
        ex.extract("Ann is 34.", schema=PERSON)
    assert generates(engine) == []


def test_bad_request_is_not_retried(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.status(400, '"tiny" does not support insert'))
    with pytest.raises(BadRequest):
        ex.extract("Ann is 34.", schema=PERSON)
    assert len(generates(engine)) == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Reply.whitespace(2000), RunawayOutput),
        (Reply.text('{"name": "Ann", "a', done_reason="length"), TruncatedOutput),
        (Reply.cut(['{"name": ']), TruncatedOutput),
    ],
    ids=["whitespace", "length", "no-done-line"],
)
def test_unusable_output_is_reasked(
    engine: ScriptedEngine, ex: Extractor, fault: Reply, error: type[Exception]
) -> None:
    engine.script(fault, Reply.text(ANN))
    result = ex.extract("Ann is 34.", schema=PERSON, format="json")
    assert isinstance(result.attempts[0].error, error)
    assert result.attempts[1].ok


def test_whitespace_flood_is_cut_early(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.whitespace(100_000), Reply.text(ANN))
    result = ex.extract("Ann is 34.", schema=PERSON, format="json")
    assert len(result.attempts[0].raw) < 5_000


def test_user_options_win_and_are_checked(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text(ANN))
    ex.extract("Ann is 34.", schema=PERSON, options={"num_predict": 77, "temperature": 0})
    assert generates(engine)[0]["options"] == {"num_predict": 77, "temperature": 0}
    with pytest.raises(ConfigError, match="temperature"):
        ex.extract("x", schema=PERSON, options={"temperature": "0.7"})
    with pytest.raises(ConfigError, match="stop"):
        ex.extract("x", schema=PERSON, options={"stop": "\n"})
    with pytest.raises(ConfigError, match="unit"):
        ex.extract("x", schema=PERSON, keep_alive="10")
    assert len(generates(engine)) == 1


def test_fields_pass_through(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text(ANN))
    ex.extract(
        "Ann is 34.",
        schema=PERSON,
        system="sys",
        template="{{ .Prompt }}",
        keep_alive=30,
        context=[1, 2],
        think=False,
        truncate=False,
    )
    sent = generates(engine)[0]
    assert {
        k: sent[k] for k in ("system", "template", "keep_alive", "context", "think", "truncate")
    } == {
        "system": "sys",
        "template": "{{ .Prompt }}",
        "keep_alive": 30,
        "context": [1, 2],
        "think": False,
        "truncate": False,
    }


def test_images_need_a_vision_model(engine: ScriptedEngine, ex: Extractor) -> None:
    with pytest.raises(BadRequest, match="vision"):
        ex.extract("what is in the picture?", schema=PERSON, images=[b"\x89PNG"])
    assert generates(engine) == []


@pytest.mark.parametrize("text", ["", "   \n", 42])
def test_unusable_documents(ex: Extractor, text: Any) -> None:
    with pytest.raises(InputError):
        ex.extract(text, schema=PERSON)


def test_async_twin_matches_sync(engine: ScriptedEngine, url: str) -> None:
    engine.script(
        Reply.text('{"age": 1}'), Reply.text(ANN), Reply.text('{"age": 1}'), Reply.text(ANN)
    )
    with Extractor("tiny", host=url) as ex:
        sync_result = ex.extract("Ann is 34.", schema=Person)

    async def run() -> Any:
        async with AsyncExtractor("tiny", host=url) as aex:
            return await aex.extract("Ann is 34.", schema=Person)

    async_result = asyncio.run(run())
    assert sync_result.value == async_result.value
    assert [a.ok for a in sync_result.attempts] == [a.ok for a in async_result.attempts]
    bodies = generates(engine)
    assert bodies[:2] == bodies[2:]


def test_extraction_data_is_json_ready(engine: ScriptedEngine, ex: Extractor) -> None:
    engine.script(Reply.text(ANN))
    result = ex.extract("Ann is 34.", schema=Person)
    assert json.loads(json.dumps(result.data())) == {"name": "Ann", "age": 34}
