"""The Ollama-compatible server with the scripted engine, observed through real HTTP.

Its routes, and its generate, chat and OpenAI replies. Faults and validation are in
``test_server_faults``; recording, capacity and lifecycle in ``test_server_lifecycle``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from conftest import generate, stream_lines

import extract.server
from extract.server import Reply, ScriptedEngine, serve

METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


# -- routes ------------------------------------------------------------------------------------


def test_public_names() -> None:
    assert set(extract.server.__all__) == {
        "DEFAULT_LOCAL_MODEL",
        "Disconnect",
        "Engine",
        "EngineCrashed",
        "Event",
        "Fault",
        "Final",
        "InProcessLlamaEngine",
        "IsolatedEngine",
        "Job",
        "LlamaEngine",
        "ModelEntry",
        "RecordedRequest",
        "Reply",
        "RunningServer",
        "ScriptedEngine",
        "default_model_path",
        "run_forever",
        "serve",
    }
    assert extract.server.DEFAULT_LOCAL_MODEL == "smollm2:135m"


def test_root_version_and_head(client: httpx.Client) -> None:
    assert client.get("/").text == "Ollama is running"
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""
    assert client.get("/api/version").json() == {"version": "0.33.0"}


def test_version_is_the_engines() -> None:
    with serve(ScriptedEngine(version="0.4.7")) as srv:
        assert httpx.get(f"{srv.url}/api/version").json() == {"version": "0.4.7"}


def test_tags_and_ps(client: httpx.Client) -> None:
    models = client.get("/api/tags").json()["models"]
    assert [m["name"] for m in models] == ["tiny:latest", "thinker:latest"]
    assert set(models[0]) >= {"name", "model", "modified_at", "size", "digest", "details"}
    assert set(models[0]["details"]) >= {
        "format",
        "family",
        "parameter_size",
        "quantization_level",
    }
    assert client.get("/api/ps").json() == {"models": []}
    generate(client)
    assert [m["name"] for m in client.get("/api/ps").json()["models"]] == ["tiny:latest"]


def test_show(client: httpx.Client) -> None:
    shown = client.post("/api/show", json={"model": "thinker"}).json()
    assert shown["capabilities"] == ["thinking"]
    assert set(shown) >= {"details", "model_info", "template", "parameters", "capabilities"}
    assert client.post("/api/show", json={"model": "tiny:latest"}).json()["capabilities"] == [
        "completion"
    ]
    missing = client.post("/api/show", json={"model": "nope"})
    assert (missing.status_code, missing.json()) == (404, {"error": "model 'nope' not found"})
    assert client.post("/api/show", json={}).status_code == 400


def test_unknown_routes_and_methods_are_404(client: httpx.Client) -> None:
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/api/generate").status_code == 404
    assert client.post("/api/tags").status_code == 404


def test_openai_models(client: httpx.Client) -> None:
    listed = client.get("/v1/models").json()
    assert [m["id"] for m in listed["data"]] == ["tiny:latest", "thinker:latest"]


# -- generate, chat, openai --------------------------------------------------------------------


def test_generate_streams_one_line_per_chunk(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text('{"a": 1}', chunks=['{"a"', ": ", "1}"]))
    lines = stream_lines(client, "/api/generate", {"model": "tiny", "prompt": "three word prompt"})
    assert [line["response"] for line in lines] == ['{"a"', ": ", "1}", ""]
    assert [line["done"] for line in lines] == [False, False, False, True]
    final = lines[-1]
    assert final["done_reason"] == "stop"
    assert final["model"] == "tiny"
    assert final["created_at"].endswith("Z")
    assert all(isinstance(final[k], int) and final[k] > 0 for k in METRICS)
    assert (final["eval_count"], final["prompt_eval_count"]) == (3, 3)
    assert len(final["context"]) == 6
    assert all(isinstance(t, int) for t in final["context"])


def test_generate_not_streamed_joins_the_text(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text('{"a": 1}', eval_count=9, prompt_eval_count=40))
    reply = generate(client, stream=False)
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert (body["response"], body["done"], body["done_reason"]) == ('{"a": 1}', True, "stop")
    assert (body["eval_count"], body["prompt_eval_count"]) == (9, 40)
    assert isinstance(body["context"], list)


def test_final_text_rides_on_the_done_line(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text('{"a"', final_text=": 1}"), Reply.text('{"a"', final_text=": 1}"))
    lines = stream_lines(client, "/api/generate", {"model": "tiny", "prompt": "x"})
    assert lines[-1]["response"] == ": 1}"
    assert "".join(line["response"] for line in lines) == '{"a": 1}'
    assert generate(client, stream=False).json()["response"] == '{"a": 1}'


def test_default_reply_and_responder() -> None:
    seen: list[Mapping[str, Any]] = []

    def responder(request: Mapping[str, Any]) -> Reply:
        seen.append(request)
        return Reply.text(json.dumps({"echo": request["prompt"]}))

    with serve(ScriptedEngine()) as srv, httpx.Client(base_url=srv.url) as c:
        assert generate(c, stream=False).json()["response"] == "{}"
    engine = ScriptedEngine(responder=responder)
    engine.script(Reply.text("scripted first"))
    with serve(engine) as srv, httpx.Client(base_url=srv.url) as c:
        assert generate(c, stream=False).json()["response"] == "scripted first"
        assert generate(c, stream=False).json()["response"] == '{"echo": "hi there"}'
    assert [r["prompt"] for r in seen] == ["hi there"]


def test_chat_replies_in_message(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text("ab", chunks=["a", "b"]), Reply.text("ab"))
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}]}
    lines = stream_lines(client, "/api/chat", body)
    assert [line["message"] for line in lines[:-1]] == [
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": "b"},
    ]
    assert lines[-1]["done"] is True
    assert "context" not in lines[-1]
    whole = client.post("/api/chat", json={**body, "stream": False}).json()
    assert whole["message"] == {"role": "assistant", "content": "ab"}
    empty = client.post("/api/chat", json={"model": "tiny", "messages": []}).json()
    assert empty["done_reason"] == "load"


def test_openai_chat_completions(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text('{"a": 1}', eval_count=4, prompt_eval_count=7))
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hello"}],
        "response_format": {"type": "json_object"},
    }
    reply = client.post("/v1/chat/completions", json=body).json()
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": '{"a": 1}'}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def test_openai_streams_server_sent_events(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text("ab", chunks=["a", "b"]))
    body = {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.headers["content-type"] == "text/event-stream"
        events = [line.removeprefix("data: ") for line in reply.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["a", "b", ""]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert len({c["id"] for c in chunks}) == 1


def test_openai_errors_are_openai_shaped(client: httpx.Client) -> None:
    body = {"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    missing = client.post("/v1/chat/completions", json=body)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    bad = client.post("/v1/chat/completions", json={"model": "tiny", "messages": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
