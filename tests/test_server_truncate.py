"""Prompts longer than the context, cut or refused as Ollama's runner does, and the context
lengths /api/show and /api/ps report. The real engine's side is in test_server_llama.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.server import Reply, ScriptedEngine, serve
from extract.server._engine import INPUT_TOO_LONG, Fault, fit_context

LONG = " ".join(f"w{i}" for i in range(25))


@given(
    st.lists(st.integers(), max_size=60),
    st.integers(1, 30),
    st.integers(-1, 40),
)
def test_fit_context_keeps_the_head_and_the_tail(prompt: list[int], n_ctx: int, keep: int) -> None:
    fitted = fit_context(prompt, n_ctx, keep, truncate=True)
    assert len(fitted) == min(len(prompt), n_ctx)
    if len(prompt) <= n_ctx:
        assert fitted == prompt
        return
    head = min(len(prompt) if keep < 0 else keep, n_ctx - 1)
    assert fitted[:head] == prompt[:head]
    assert fitted[head:] == prompt[len(prompt) - (n_ctx - head) :]


def test_fit_context_refuses_without_truncate() -> None:
    assert fit_context([1, 2, 3], 3, 4, truncate=False) == [1, 2, 3]
    with pytest.raises(Fault) as refused:
        fit_context([1, 2, 3, 4], 3, 4, truncate=False)
    assert (refused.value.status, refused.value.message) == (400, INPUT_TOO_LONG)


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(models=("tiny",), context_length=10)


@pytest.fixture
def client(engine: ScriptedEngine) -> Iterator[httpx.Client]:
    with serve(engine) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        yield c


def generate(client: httpx.Client, prompt: str = LONG, **fields: Any) -> httpx.Response:
    body = {"model": "tiny", "prompt": prompt, "stream": False, **fields}
    return client.post("/api/generate", json=body)


def test_a_long_prompt_is_cut_to_the_context(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text('{"a": 1}'))
    reply = generate(client)
    assert reply.status_code == 200
    assert (reply.json()["response"], reply.json()["prompt_eval_count"]) == ('{"a": 1}', 10)
    assert generate(client, "a short one").json()["prompt_eval_count"] == 3


@pytest.mark.parametrize("stream", [True, False])
def test_truncate_false_is_ollamas_400(
    engine: ScriptedEngine, client: httpx.Client, stream: bool
) -> None:
    engine.script(Reply.text("kept for the next request"))
    reply = generate(client, truncate=False, stream=stream)
    assert (reply.status_code, reply.json()) == (400, {"error": INPUT_TOO_LONG})
    fits = generate(client, "short enough", truncate=False)
    assert fits.json()["response"] == "kept for the next request"


def test_chat_counts_every_message(client: httpx.Client) -> None:
    messages = [{"role": "system", "content": "six words of system prompt here"}]
    messages.append({"role": "user", "content": "and six more for the user"})
    body = {"model": "tiny", "messages": messages, "stream": False}
    assert client.post("/api/chat", json=body).json()["prompt_eval_count"] == 10
    messages.append({"role": "user", "content": "over"})
    refused = client.post("/api/chat", json={**body, "truncate": False})
    assert (refused.status_code, refused.json()) == (400, {"error": INPUT_TOO_LONG})


def test_num_ctx_and_num_keep(client: httpx.Client) -> None:
    assert generate(client, options={"num_ctx": 6}).json()["prompt_eval_count"] == 6
    # A num_ctx past the model's own context is capped at it, as Ollama caps it.
    assert generate(client, options={"num_ctx": 50}).json()["prompt_eval_count"] == 10
    assert generate(client, options={"num_keep": 20}).json()["prompt_eval_count"] == 10
    refused = generate(client, "w " * 7, options={"num_ctx": 6}, truncate=False)
    assert refused.status_code == 400


def test_a_server_before_0_12_6_always_cuts() -> None:
    with serve(ScriptedEngine(version="0.12.5", context_length=10)) as srv:
        body = {"model": "tiny", "prompt": LONG, "stream": False, "truncate": False}
        reply = httpx.post(f"{srv.url}/api/generate", json=body)
    assert (reply.status_code, reply.json()["prompt_eval_count"]) == (200, 10)


def test_a_scripted_count_still_wins(engine: ScriptedEngine, client: httpx.Client) -> None:
    engine.script(Reply.text("{}", prompt_eval_count=4096))
    assert generate(client).json()["prompt_eval_count"] == 4096


def test_show_reports_the_models_context_and_ps_the_loaded_one(client: httpx.Client) -> None:
    shown = client.post("/api/show", json={"model": "tiny"}).json()
    assert shown["model_info"]["scripted.context_length"] == 10
    generate(client, options={"num_ctx": 6})
    (loaded,) = client.get("/api/ps").json()["models"]
    assert loaded["context_length"] == 6
    generate(client)
    assert client.get("/api/ps").json()["models"][0]["context_length"] == 10


def test_the_default_context_is_large() -> None:
    with serve(ScriptedEngine()) as srv:
        body = {"model": "tiny", "prompt": "w " * 5000, "stream": False, "truncate": False}
        reply = httpx.post(f"{srv.url}/api/generate", json=body)
        shown = httpx.post(f"{srv.url}/api/show", json={"model": "tiny"}).json()
    assert reply.json()["prompt_eval_count"] == 5000
    assert shown["model_info"]["scripted.context_length"] >= 100_000
