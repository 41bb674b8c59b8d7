"""The scripted server's faults on the wire, and its request validation, as Ollama answers.

Observed through real HTTP; routes and replies are in ``test_server``, recording, capacity and
lifecycle in ``test_server_lifecycle``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest import BUSY, generate, stream_lines

from extract.server import Reply, ScriptedEngine

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
