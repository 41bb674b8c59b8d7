"""Log-probabilities on the server's reply lines, as Ollama 0.12.11+ sends them.

The scripted engine plays scripted entries; the wire form and the maths of the llama.cpp
engine's entries are checked here without a model, and with the real one in
test_server_llama.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.server import Reply, ScriptedEngine, serve
from extract.server._logprobs import Ledger, entry, from_logits


def lp(token: str, logprob: float, *top: tuple[str, float]) -> Mapping[str, Any]:
    return entry(token.encode(), logprob, [entry(t.encode(), v) for t, v in top])


A, B, C = lp("{", -0.1, ("{", -0.1), ("[", -2.5)), lp("}", -0.2), lp("!", -3.0)


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(models=("tiny",))


@pytest.fixture
def client(engine: ScriptedEngine) -> Iterator[httpx.Client]:
    with serve(engine) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        yield c


def lines(client: httpx.Client, path: str = "/api/generate", **fields: Any) -> list[Any]:
    body = {"model": "tiny", "prompt": "hi", "logprobs": True, **fields}
    if path == "/api/chat":
        body = {**body, "messages": [{"role": "user", "content": body.pop("prompt")}]}
    with client.stream("POST", path, json=body) as reply:
        assert reply.status_code == 200
        return [json.loads(line) for line in reply.iter_lines()]


def whole(client: httpx.Client, **fields: Any) -> Any:
    body = {"model": "tiny", "prompt": "hi", "logprobs": True, "stream": False, **fields}
    reply = client.post("/api/generate", json=body)
    assert reply.status_code == 200
    return reply.json()


def test_wire_entry_has_ollamas_fields() -> None:
    assert A == {
        "token": "{",
        "logprob": -0.1,
        "bytes": [123],
        "top_logprobs": [
            {"token": "{", "logprob": -0.1, "bytes": [123]},
            {"token": "[", "logprob": -2.5, "bytes": [91]},
        ],
    }
    half = entry("é".encode()[:1], -1.0)
    assert (half["token"], half["bytes"]) == ("\ufffd", [0xC3])


def test_each_streamed_line_carries_its_chunks_entries(
    engine: ScriptedEngine, client: httpx.Client
) -> None:
    engine.script(Reply.text("{}", chunks=["{", "}"], logprobs=[[A], [B]]))
    streamed = lines(client)
    assert [line.get("logprobs") for line in streamed] == [[A], [B], None]
    assert streamed[-1]["done"] is True


def test_the_done_line_carries_its_own_entries(
    engine: ScriptedEngine, client: httpx.Client
) -> None:
    reply = Reply.text("{}", chunks=["{", "}"], final_text="!", logprobs=[[A], [], [C]])
    engine.script(reply, reply)
    assert [line.get("logprobs") for line in lines(client)] == [[A], None, [C]]
    assert whole(client)["logprobs"] == [A, C]


def test_a_reply_not_streamed_joins_every_entry(
    engine: ScriptedEngine, client: httpx.Client
) -> None:
    engine.script(Reply.text("{}", chunks=["{", "}"], logprobs=[[A], [B]]))
    reply = whole(client)
    assert (reply["response"], reply["logprobs"]) == ("{}", [A, B])


def test_chat_puts_them_beside_the_message(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text("{}", chunks=["{", "}"], logprobs=[[A], [B]]))
    streamed = lines(client, "/api/chat")
    assert [line.get("logprobs") for line in streamed] == [[A], [B], None]
    assert "logprobs" not in streamed[0]["message"]


def test_sent_only_when_asked_and_by_a_server_that_knows_them(
    engine: ScriptedEngine, client: httpx.Client
) -> None:
    scripted = Reply.text("{}", chunks=["{", "}"], logprobs=[[A], [B]])
    engine.script(scripted)
    assert "logprobs" not in whole(client, logprobs=False)
    for version, sent in (("0.12.10", False), ("0.12.11", True)):
        old = ScriptedEngine(version=version)
        old.script(scripted)
        with serve(old) as srv:
            body = {"model": "tiny", "prompt": "hi", "logprobs": True, "stream": False}
            assert ("logprobs" in httpx.post(f"{srv.url}/api/generate", json=body).json()) is sent


def test_a_reply_without_scripted_entries_sends_none(
    engine: ScriptedEngine, client: httpx.Client
) -> None:
    engine.script(Reply.text("{}"))
    assert all("logprobs" not in line for line in lines(client))


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
@pytest.mark.parametrize(("top", "status"), [(-1, 400), (21, 400), (0, 200), (20, 200)])
def test_top_logprobs_range(client: httpx.Client, path: str, top: int, status: int) -> None:
    body: dict[str, Any] = {"model": "tiny", "stream": False, "top_logprobs": top}
    body |= {"messages": [{"role": "user", "content": "x"}]} if "chat" in path else {"prompt": "x"}
    reply = client.post(path, json=body)
    assert reply.status_code == status
    if status == 400:
        assert reply.json() == {"error": "top_logprobs must be between 0 and 20"}


def test_top_logprobs_is_checked_before_the_model(client: httpx.Client) -> None:
    reply = client.post("/api/generate", json={"model": "nope", "prompt": "x", "top_logprobs": 99})
    assert (reply.status_code, reply.json()["error"]) == (
        400,
        "top_logprobs must be between 0 and 20",
    )
    wrong_type = client.post("/api/generate", json={"model": "tiny", "top_logprobs": "3"})
    assert wrong_type.status_code == 400
    assert "GenerateRequest.top_logprobs of type int" in wrong_type.json()["error"]


def test_reply_text_wants_a_list_per_chunk() -> None:
    with pytest.raises(ValueError, match="one list per chunk"):
        Reply.text("{}", chunks=["{", "}"], logprobs=[[A]])
    assert Reply.text("{}", chunks=["{", "}"], logprobs=[[A], [], [C]]).logprobs == ((A,), (), (C,))


# -- the llama.cpp engine's entries, from logits -----------------------------------------------


def spell(token: int) -> bytes:
    return f"t{token}".encode()


def test_from_logits_is_a_log_softmax_with_ranked_alternatives() -> None:
    logits = np.array([1.0, 3.0, 2.0, -1.0], dtype=np.float32)
    made = from_logits(logits, chosen=3, top_n=2, spell=spell)
    expected = logits - math.log(sum(math.exp(x) for x in logits))
    assert made["token"] == "t3"
    assert made["logprob"] == pytest.approx(expected[3])
    assert [t["token"] for t in made["top_logprobs"]] == ["t1", "t2"]
    assert [t["logprob"] for t in made["top_logprobs"]] == pytest.approx(expected[[1, 2]])
    assert "top_logprobs" not in from_logits(logits, chosen=1, top_n=0, spell=spell)


@given(
    st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=60),
    st.integers(0, 20),
    st.data(),
)
def test_from_logits_entries_are_probabilities(logits: list[float], top_n: int, data: Any) -> None:
    chosen = data.draw(st.integers(0, len(logits) - 1))
    made = from_logits(np.array(logits), chosen, top_n, spell)
    top = [t["logprob"] for t in made.get("top_logprobs", [])]
    assert made["logprob"] <= 0
    assert len(top) == min(top_n, len(logits))
    assert top == sorted(top, reverse=True)
    assert sum(math.exp(v) for v in top) <= 1 + 1e-9
    if top_n >= len(logits):
        assert made["token"] in {t["token"] for t in made["top_logprobs"]}


def test_ledger_hands_each_entry_to_the_text_that_shows_it() -> None:
    ledger = Ledger()
    ledger.token(3, {"token": "abc"})
    ledger.token(0, {"token": "half a character"})
    ledger.token(1, {"token": "é"})
    ledger.token(2, {"token": "<|"})
    assert ledger.piece("ab").logprobs == ({"token": "abc"},)
    assert ledger.piece("cé").logprobs == ({"token": "half a character"}, {"token": "é"})
    assert ledger.piece("").logprobs == ()
    assert [e["token"] for e in ledger.entries] == ["abc", "half a character", "é"]
