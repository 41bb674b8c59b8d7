"""The openai backend against the scripted engine's /v1/chat/completions, exactly: the body it
sends (json_schema response_format, the sampling options, the Bearer key), what it reads back
(text, finish_reason, usage), and the errors it maps; and the json_object fallback and the
log-probabilities, on a server that answers as llama-cpp-python's does (httpx mock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import N_SCHEMA, Scripted

from extract import AsyncExtractor, Extractor, Labeling
from extract.cli import main
from extract.client.config import Settings
from extract.errors import ConfigError, ExtractionFailed, ModelNotFound, TruncatedOutput
from extract.server.scripted import Reply

CHOICE = {
    "type": "object",
    "properties": {"kind": {"enum": ["bug", "question"]}},
    "required": ["kind"],
}


def _content(body: Mapping[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def _chat_bodies(server: Scripted) -> list[dict[str, Any]]:
    return [r.body for r in server.engine.requests if r.path == "/v1/chat/completions"]


def test_an_extraction_sends_the_schema_as_json_schema(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(responder=lambda body: Reply.text('{"n": 7}', eval_count=5))
    with Extractor("tiny", host=server.url, backend="openai", api_key="k-1") as ex:
        result = ex.extract("the number is 7", N_SCHEMA, options={"temperature": 0})
    assert result.value == {"n": 7}
    (body,) = _chat_bodies(server)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["n"]
    assert body["temperature"] == 0
    assert body["max_tokens"] == 1024  # num_predict, under its OpenAI name
    assert "the number is 7" in _content(body)
    seen = next(r for r in server.engine.requests if r.path == "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer k-1"
    # The model check went to /v1/models, never to Ollama's endpoints.
    assert {r.path for r in server.engine.requests} == {"/v1/models", "/v1/chat/completions"}


def test_a_cut_reply_is_truncated_output(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=lambda body: Reply.text('{"n": ', done_reason="length"))
    ex = Extractor("tiny", host=server.url, backend="openai", max_attempts=1)
    with ex, pytest.raises(ExtractionFailed) as failed:
        ex.extract("x", N_SCHEMA)
    assert isinstance(failed.value.last_error, TruncatedOutput)


def test_a_bad_reply_is_asked_again(scripted: Callable[..., Scripted]) -> None:
    replies = iter([Reply.text("no JSON here"), Reply.text('{"n": 2}')])
    server = scripted(responder=lambda body: next(replies))
    with Extractor("tiny", host=server.url, backend="openai") as ex:
        result = ex.extract("two", N_SCHEMA)
    assert result.value == {"n": 2}
    assert len(result.attempts) == 2
    assert "no JSON here" in _content(_chat_bodies(server)[1])  # the re-ask quotes the reply


def test_a_model_the_server_does_not_serve_is_model_not_found(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted()
    ex = Extractor("other", host=server.url, backend="openai")
    with ex, pytest.raises(ModelNotFound):
        ex.extract("x", N_SCHEMA)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("template", "{{ .Prompt }}"),
        ("raw", True),
        ("context", [1, 2]),
        ("suffix", "end"),
        ("keep_alive", "5m"),
        ("think", False),
        ("images", [b"\x89PNG"]),
    ],
)
def test_an_ollama_only_field_is_a_config_error_naming_it(
    scripted: Callable[..., Scripted], field: str, value: Any
) -> None:
    server = scripted()
    ex = Extractor("tiny", host=server.url, backend="openai")
    with ex, pytest.raises(ConfigError, match=f"^{field}="):
        ex.extract("x", N_SCHEMA, **{field: value})
    assert server.engine.requests == []


def test_an_ollama_only_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="num_ctx"):
        Extractor("tiny", backend="openai").cache_key("x", N_SCHEMA, options={"num_ctx": 8})


def test_host_and_key_come_from_the_openai_variables() -> None:
    env = {"OPENAI_BASE_URL": "http://10.0.0.5:8001/v1", "OPENAI_API_KEY": "sk-x"}
    settings = Settings.resolve(backend="openai", environ=env)
    assert settings.host == "http://10.0.0.5:8001/v1"
    assert settings.api_key == "sk-x"
    assert Settings.resolve(backend="openai", environ={}).host == "http://127.0.0.1:8000"


def test_an_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="backend='vllm'"):
        Extractor("tiny", backend="vllm")  # type: ignore[arg-type]


def test_a_batch_runs_over_the_openai_backend(scripted: Callable[..., Scripted]) -> None:
    def answer(body: Mapping[str, Any]) -> Reply:
        return Reply.text(json.dumps({"n": len(_content(body))}))

    server = scripted(slots=2, responder=answer)
    with Labeling(N_SCHEMA, model="tiny", hosts=server.url, backend="openai") as session:
        records = list(session.results(["a", "bb", "ccc"]))
    assert all(r.ok for r in records)
    assert [r.path for r in server.engine.requests].count("/v1/models") == 1


def _llama_cpp_python_like(seen: list[dict[str, Any]]) -> httpx.MockTransport:
    """Answers as llama-cpp-python 0.3.36's server: ``json_schema`` is refused (422), a schema
    rides in ``json_object``; replies stream with log-probabilities."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "tiny"}]})
        body = json.loads(request.content)
        seen.append(body)
        if body["response_format"]["type"] != "json_object":
            return httpx.Response(422, json={"detail": [{"msg": "Input should be 'json_object'"}]})
        tokens = ['{"kind": "', "bug", '"}']
        top = [{"token": "bug", "logprob": -0.1}, {"token": "question", "logprob": -2.4}]
        events: list[dict[str, Any]] = [
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": token},
                        "logprobs": {
                            "content": [
                                {
                                    "token": token,
                                    "logprob": -0.1,
                                    "top_logprobs": top if token == "bug" else [],
                                }
                            ]
                        },
                        "finish_reason": None,
                    }
                ]
            }
            for token in tokens
        ]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handle)


def test_a_server_that_refuses_json_schema_gets_json_object_once_and_after() -> None:
    seen: list[dict[str, Any]] = []
    transport = _llama_cpp_python_like(seen)
    with Extractor("tiny", backend="openai", transport=transport, calibrate=False) as ex:
        first = ex.extract("crash on start", CHOICE, stream=True)
        ex.extract("crash again", CHOICE, stream=True)
    assert first.value == {"kind": "bug"}
    assert [b["response_format"]["type"] for b in seen] == [
        "json_schema",
        "json_object",
        "json_object",
    ]
    assert seen[1]["response_format"]["schema"]["required"] == ["kind"]
    assert seen[1]["logprobs"] is True
    assert seen[1]["top_logprobs"] == 20
    # The logprobs become the same confidence an Ollama reply gives.
    assert 0.9 < first.confidence["$.kind"] < 1.0
    assert first.attempts[0].metrics.eval_duration is not None  # wall time: no usage, no timings


def test_the_async_extractor_speaks_openai_too() -> None:
    transport = _llama_cpp_python_like([])

    async def run() -> Any:
        async with AsyncExtractor("tiny", backend="openai", transport=transport) as ex:
            await ex.check_model()
            return await ex.extract("crash", CHOICE, calibrate=False)

    result = asyncio.run(run())
    assert result.value == {"kind": "bug"}
    assert "$.kind" in result.confidence


def test_the_cli_labels_through_the_openai_backend(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = scripted(responder=lambda body: Reply.text('{"n": 3}'))
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "three"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["label", str(source), "-o", str(out), "-s", json.dumps(N_SCHEMA), "-q", "--no-cache"]
    args += ["--host", server.url, "-m", "tiny", "--backend", "openai"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8"))["value"] == {"n": 3}
    assert "/v1/chat/completions" in {r.path for r in server.engine.requests}
    assert "/api/generate" not in {r.path for r in server.engine.requests}
