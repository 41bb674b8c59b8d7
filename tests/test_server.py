"""The Ollama-compatible server with the scripted engine, observed through real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import extract.server
from extract.server import Reply, ScriptedEngine, serve

BUSY = "server busy, please try again.  maximum pending requests exceeded"
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(models=("tiny", "thinker"), capabilities={"thinker": ["thinking"]})


@pytest.fixture
def url(engine: ScriptedEngine) -> Iterator[str]:
    with serve(engine) as srv:
        yield srv.url


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as c:
        yield c


def stream_lines(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", path, json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/x-ndjson"
        assert reply.headers["transfer-encoding"] == "chunked"
        return [json.loads(line) for line in reply.iter_lines()]


def generate(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post("/api/generate", json={"model": "tiny", "prompt": "hi there", **fields})


# -- routes ------------------------------------------------------------------------------------


def test_public_names() -> None:
    assert set(extract.server.__all__) == {
        "DEFAULT_LOCAL_MODEL",
        "Disconnect",
        "Engine",
        "Event",
        "Fault",
        "Final",
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


# -- faults on the wire ------------------------------------------------------------------------


def test_status_replies(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.status(500, "boom"), Reply.status(503), Reply.status(400, "too long"))
    for status, message in ((500, "boom"), (503, BUSY), (400, "too long")):
        reply = generate(client)
        assert (reply.status_code, reply.json()) == (status, {"error": message})
        assert reply.headers["content-type"].startswith("application/json")


def test_mid_stream_error(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.mid_stream_error(["{", '"a'], "boom"), Reply.mid_stream_error(["{"], "x"))
    lines = stream_lines(client, "/api/generate", {"model": "tiny", "prompt": "x"})
    assert [line.get("response") for line in lines[:2]] == ["{", '"a']
    assert lines[-1] == {"error": "boom"}
    whole = generate(client, stream=False)
    assert (whole.status_code, whole.json()) == (500, {"error": "x"})


def test_cut_ends_without_a_done_line(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.cut(["{", '"a"']), Reply.cut(["{", '"a"']))
    lines = stream_lines(client, "/api/generate", {"model": "tiny", "prompt": "x"})
    assert [line["done"] for line in lines] == [False, False]
    whole = generate(client, stream=False).json()
    assert (whole["response"], whole["done"]) == ('{"a"', False)
    assert "done_reason" not in whole


def test_reset_drops_the_connection(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.reset(["{"]), Reply.reset())
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/api/generate", json={"model": "tiny", "prompt": "x"}) as reply,
    ):
        received.extend(reply.iter_lines())
    assert json.loads(received[0])["response"] == "{"
    with pytest.raises(httpx.RemoteProtocolError):
        generate(client)
    assert generate(client, stream=False).status_code == 200


def test_whitespace_runaway(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.whitespace(50))
    lines = stream_lines(client, "/api/generate", {"model": "tiny", "prompt": "x"})
    assert "".join(line["response"] for line in lines) == "{" + " \n" * 50
    assert (lines[-1]["done_reason"], lines[-1]["eval_count"]) == ("length", 51)


def test_hang_delays_the_first_byte(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.hang(60))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/generate", json={"model": "tiny", "prompt": "x"}, timeout=0.2)


def test_delays_still_deliver_everything(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(
        Reply.text("abc", chunks=["a", "b", "c"], chunk_delay=0.01, first_byte_delay=0.01)
    )
    lines = stream_lines(client, "/api/generate", {"model": "tiny", "prompt": "x"})
    assert "".join(line["response"] for line in lines) == "abc"


def test_reply_text_checks_its_chunks() -> None:
    with pytest.raises(ValueError, match="join"):
        Reply.text("abc", chunks=["a", "b"])
    assert Reply.text("", chunks=["a", "b"]).chunks == ("a", "b")


# -- validation, as Ollama answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"model": "nope"}, 404, "model 'nope' not found"),
        ({"options": {"temperature": "0.7"}}, 500, 'option "temperature" must be of type float32'),
        ({"options": {"stop": "}"}}, 500, 'option "stop" must be of type array'),
        ({"options": {"num_predict": "5"}}, 500, 'option "num_predict" must be of type integer'),
        ({"options": {"stop": [1]}}, 500, 'option "stop" must be of an array of strings'),
        (
            {"raw": True, "system": "s"},
            400,
            "raw mode does not support template, system, or context",
        ),
        (
            {"raw": True, "context": [1, 2]},
            400,
            "raw mode does not support template, system, or context",
        ),
        ({"think": True}, 400, '"tiny" does not support thinking'),
        ({"suffix": "}"}, 400, '"tiny" does not support insert'),
        ({"keep_alive": "10"}, 400, 'time: missing unit in duration "10"'),
        ({"prompt": 5}, 400, None),
        ({"stream": "yes"}, 400, None),
        ({"format": "JSON"}, 500, None),
        ({"format": ["json"]}, 500, None),
    ],
)
def test_invalid_generate_requests(
    engine: ScriptedEngine,
    client: httpx.Client,
    fields: dict[str, Any],
    status: int,
    error: str | None,
) -> None:
    engine.script(Reply.text("never sent"))
    reply = generate(client, **fields)
    assert reply.status_code == status
    assert set(reply.json()) == {"error"}
    if error is not None:
        assert reply.json()["error"] == error
    if status == 500 and "format" in fields:
        assert reply.json()["error"].startswith("invalid format: ")
    assert generate(client, stream=False).json()["response"] == "never sent"


@pytest.mark.parametrize(
    "fields",
    [
        {"format": ""},
        {"format": None},
        {"format": "json"},
        {"format": {"type": "object"}},
        {"keep_alive": "5m"},
        {"keep_alive": 300},
        {"options": {"temperature": 0, "num_predict": 64.0, "unknown": "ignored"}},
        {"think": False},
        {"model": "tiny:latest"},
        {"raw": True},
    ],
)
def test_valid_generate_requests(client: httpx.Client, fields: dict[str, Any]) -> None:
    assert generate(client, stream=False, **fields).status_code == 200


def test_thinking_model_accepts_think(client: httpx.Client) -> None:
    assert generate(client, model="thinker", think="low", stream=False).status_code == 200


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{nope", "invalid JSON body"),
        (b"[1, 2]", "json: cannot unmarshal array"),
        (b"", "missing request body"),
    ],
)
def test_body_must_be_a_json_object(client: httpx.Client, content: bytes, error: str) -> None:
    reply = client.post("/api/generate", content=content)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith(error)


def test_empty_prompt_loads_and_keep_alive_zero_unloads(
    engine: ScriptedEngine, client: httpx.Client
) -> None:
    engine.script(Reply.text("kept for later"))
    loaded = client.post("/api/generate", json={"model": "tiny"}).json()
    assert (loaded["done"], loaded["done_reason"], loaded["response"]) == (True, "load", "")
    assert len(client.get("/api/ps").json()["models"]) == 1
    unloaded = client.post("/api/generate", json={"model": "tiny", "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"
    assert client.get("/api/ps").json() == {"models": []}
    assert generate(client, stream=False).json()["response"] == "kept for later"


# -- recording, capacity, lifecycle ------------------------------------------------------------


def test_requests_are_recorded_as_sent(engine: ScriptedEngine, client: httpx.Client) -> None:
    body = {"model": "tiny", "prompt": "p", "format": {"type": "object"}, "options": {"seed": 1}}
    client.get("/api/version")
    client.post("/api/generate", json=body, headers={"X-Trace": "abc"})
    client.post("/api/generate", json={"model": "nope", "prompt": "p"})
    assert [r.path for r in engine.requests] == ["/api/version", "/api/generate", "/api/generate"]
    recorded = engine.requests[1]
    assert recorded.body == body
    assert recorded.headers["x-trace"] == "abc"
    assert engine.requests[2].body["model"] == "nope"
    engine.reset()
    assert engine.requests == []


def test_full_queue_answers_503() -> None:
    entered, release = threading.Event(), threading.Event()

    def blocking(request: Mapping[str, Any]) -> Reply:
        entered.set()
        release.wait(10)
        return Reply.text("{}")

    engine = ScriptedEngine(slots=1, max_queue=0, responder=blocking)
    with serve(engine) as srv, ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            httpx.post, f"{srv.url}/api/generate", json={"model": "tiny", "prompt": "x"}
        )
        assert entered.wait(10)
        busy = httpx.post(f"{srv.url}/api/generate", json={"model": "tiny", "prompt": "x"})
        release.set()
        assert first.result().status_code == 200
    assert (busy.status_code, busy.json()) == (503, {"error": BUSY})


def test_requests_beyond_the_slots_wait_without_max_queue() -> None:
    engine = ScriptedEngine(slots=2, latency=0.01)
    with (
        serve(engine) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as c,
        ThreadPoolExecutor(16) as pool,
    ):
        replies = list(pool.map(lambda _: generate(c, stream=False), range(48)))
    assert {r.status_code for r in replies} == {200}
    assert len(engine.requests) == 48


def test_keep_alive_and_chunked_request_bodies(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/api/version")
    assert json.loads(conn.getresponse().read()) == {"version": "0.33.0"}
    sock = conn.sock
    body = json.dumps({"model": "tiny", "prompt": "x", "stream": False}).encode()
    conn.request("POST", "/api/generate", body=iter([body[:10], body[10:]]), encode_chunked=True)
    reply = conn.getresponse()
    assert (reply.status, json.loads(reply.read())["done"]) == (200, True)
    assert conn.sock is sock
    conn.close()


def test_stop_ends_hanging_replies_and_closes_the_port(engine: ScriptedEngine) -> None:
    engine.script(Reply.hang(600))
    srv = serve(engine)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{srv.url}/api/generate", json={"model": "tiny", "prompt": "x"}, timeout=60)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not engine.requests:
        time.sleep(0.01)
    srv.stop()
    caller.join(30)
    assert not caller.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url)
    srv.stop()


def test_run_forever_stops_on_ctrl_c() -> None:
    code = (
        "from extract.server import ScriptedEngine, run_forever\n"
        "run_forever(ScriptedEngine(), port=0, on_ready=lambda url: print(url, flush=True))\n"
    )
    # Ctrl-C as at a terminal, even when the tests run as a background job (whose children
    # inherit SIGINT ignored).
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert httpx.get(url).text == "Ollama is running"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_importing_the_server_leaves_llama_cpp_alone() -> None:
    code = "import sys, extract.server; print('llama_cpp' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "False"
