"""The server with the real llama.cpp engine and SmolLM2-135M: grammars, streams, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import ollama
import pytest

from extract.server import LlamaEngine, serve

pytestmark = pytest.mark.real_model

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
PROMPT = (
    'Extract the person as JSON like {"name": "<full name>", "age": <number>}.\n'
    "Text: John Smith is a 42 year old carpenter from Ohio."
)
GREEDY = {"temperature": 0, "num_predict": 64}
METRICS = ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    engine = LlamaEngine()
    with serve(engine) as srv:
        yield srv.url
    engine.close()


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=120) as c:
        yield c


def generate(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"model": "smollm2:135m", "prompt": PROMPT, "options": GREEDY, **fields}
    reply = client.post("/api/generate", json={**body, "stream": False})
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def test_tags_describe_the_gguf(client: httpx.Client) -> None:
    (model,) = client.get("/api/tags").json()["models"]
    assert model["name"] == "smollm2:135m"
    assert model["size"] > 50_000_000
    assert model["details"]["family"] == "llama"
    assert model["details"]["parameter_size"] == "135M"
    assert model["details"]["quantization_level"] == "Q4_1"


def test_schema_reply_validates_with_real_metrics(client: httpx.Client) -> None:
    reply = generate(client, format=PERSON)
    jsonschema.validate(json.loads(reply["response"]), PERSON)
    assert reply["done_reason"] == "stop"
    assert all(reply[k] > 0 for k in METRICS)
    assert reply["total_duration"] >= reply["prompt_eval_duration"] + reply["eval_duration"]
    assert len(reply["context"]) == reply["prompt_eval_count"] + reply["eval_count"]


def test_schema_reply_streams_token_by_token(client: httpx.Client) -> None:
    body = {"model": "smollm2", "prompt": PROMPT, "format": PERSON, "options": GREEDY}
    with client.stream("POST", "/api/generate", json=body) as reply:
        lines = [json.loads(line) for line in reply.iter_lines()]
    text = "".join(line["response"] for line in lines)
    jsonschema.validate(json.loads(text), PERSON)
    assert lines[-1]["done"] is True
    assert len(lines) - 1 == lines[-1]["eval_count"]


def test_json_format_gives_an_object(client: httpx.Client) -> None:
    reply = generate(client, format="json")
    assert reply["done_reason"] == "stop"
    assert isinstance(json.loads(reply["response"]), dict)


def test_num_predict_and_stop(client: httpx.Client) -> None:
    short = generate(client, options={"temperature": 0, "num_predict": 3})
    assert (short["done_reason"], short["eval_count"]) == ("length", 3)
    counted = generate(
        client,
        prompt="one, two, three, four, five, six",
        raw=True,
        options={"temperature": 0, "num_predict": 20, "stop": [","]},
    )
    assert "," not in counted["response"]
    assert counted["done_reason"] == "stop"


def test_unconvertible_schema_is_400(client: httpx.Client) -> None:
    pattern = {"type": "object", "properties": {"a": {"type": "string", "pattern": "abc"}}}
    reply = client.post(
        "/api/generate", json={"model": "smollm2", "prompt": "x", "format": pattern}
    )
    assert reply.status_code == 400
    assert "error" in reply.json()


def test_official_client_gets_valid_replies(url: str) -> None:
    client = ollama.Client(host=url)
    shaped = client.generate(model="smollm2:135m", prompt=PROMPT, format=PERSON, options=GREEDY)
    jsonschema.validate(json.loads(shaped.response or ""), PERSON)
    loose = client.generate(model="smollm2", prompt=PROMPT, format="json", options=GREEDY)
    assert isinstance(json.loads(loose.response or ""), dict)
    assert shaped.eval_count
    assert shaped.eval_duration


def test_openai_json_schema(client: httpx.Client) -> None:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": PROMPT}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
        "temperature": 0,
        "max_tokens": 64,
    }
    reply = client.post("/v1/chat/completions", json=body).json()
    jsonschema.validate(json.loads(reply["choices"][0]["message"]["content"]), PERSON)
    assert reply["usage"]["completion_tokens"] > 0


# -- logprobs, in Ollama's form --------------------------------------------------------------

ENTRY_KEYS, TOP_KEYS = {"token", "logprob", "bytes", "top_logprobs"}, {"token", "logprob", "bytes"}


def check_entry(entry: dict[str, Any], keys: set[str]) -> None:
    assert set(entry) <= keys
    assert isinstance(entry["token"], str)
    assert isinstance(entry["logprob"], float)
    assert entry["logprob"] <= 0
    assert entry["bytes"] == list(entry["token"].encode())


def test_logprobs_have_ollamas_form(client: httpx.Client) -> None:
    reply = generate(client, format=PERSON, logprobs=True, top_logprobs=3)
    entries = reply["logprobs"]
    assert len(entries) == reply["eval_count"]
    assert "".join(e["token"] for e in entries) == reply["response"]
    for entry in entries:
        check_entry(entry, ENTRY_KEYS)
        top = entry["top_logprobs"]
        assert len(top) == 3
        for alternative in top:
            check_entry(alternative, TOP_KEYS)
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert entry["logprob"] <= top[0]["logprob"]
    # The model's own distribution, before the grammar: a text that calls for " Paris" must
    # start with "{" under a JSON grammar, and the alternatives still show the model's choice.
    forced = generate(
        client, prompt="The capital of France is", raw=True, format=PERSON, logprobs=True,
        top_logprobs=3,
    )  # fmt: skip
    first = forced["logprobs"][0]
    assert first["token"].lstrip().startswith("{")
    assert first["top_logprobs"][0]["token"] != first["token"]


def test_logprobs_without_a_grammar_follow_greedy_choice(client: httpx.Client) -> None:
    reply = generate(client, logprobs=True, top_logprobs=1)
    assert len(reply["logprobs"]) == reply["eval_count"] > 0
    assert all(e["token"] == e["top_logprobs"][0]["token"] for e in reply["logprobs"])
    plain = generate(client, logprobs=True)
    assert all("top_logprobs" not in e for e in plain["logprobs"])
    assert "logprobs" not in generate(client)


def test_streamed_logprobs_join_to_the_whole_replys(client: httpx.Client) -> None:
    fields = {
        "format": PERSON,
        "logprobs": True,
        "top_logprobs": 2,
        "options": {**GREEDY, "seed": 3},
    }
    whole = generate(client, **fields)["logprobs"]
    body = {"model": "smollm2", "prompt": PROMPT, **fields}
    with client.stream("POST", "/api/generate", json=body) as reply:
        lines = [json.loads(line) for line in reply.iter_lines()]
    assert "logprobs" not in lines[-1]
    streamed = [e for line in lines[:-1] for e in line["logprobs"]]
    assert [e["token"] for e in streamed] == [e["token"] for e in whole]
    assert [e["logprob"] for e in streamed] == pytest.approx(
        [e["logprob"] for e in whole], abs=1e-3
    )


def test_official_client_reads_our_logprobs(url: str) -> None:
    client = ollama.Client(host=url)
    reply = client.generate(
        model="smollm2", prompt=PROMPT, format=PERSON, options=GREEDY, logprobs=True, top_logprobs=2
    )
    assert reply.logprobs is not None
    assert len(reply.logprobs) == reply.eval_count
    assert all(len(e.top_logprobs or ()) == 2 and e.logprob <= 0 for e in reply.logprobs)


def test_chat_logprobs_sit_beside_the_message(client: httpx.Client) -> None:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": PROMPT}],
        "options": GREEDY,
        "logprobs": True,
        "stream": False,
    }
    reply = client.post("/api/chat", json=body).json()
    assert len(reply["logprobs"]) == reply["eval_count"]


# -- contexts: what /api/show and /api/ps say, and prompts that do not fit --------------------

COUNTING = ", ".join(str(n) for n in range(1, 400))


def test_a_long_prompt_is_cut_to_fill_the_context(client: httpx.Client) -> None:
    fields = {"prompt": COUNTING, "raw": True, "options": {"temperature": 0, "num_ctx": 256}}
    reply = generate(client, **fields)
    # Ollama's cut: the context is full, so without a context shift one token is all there is.
    assert reply["prompt_eval_count"] == 256
    assert (reply["eval_count"], reply["done_reason"]) == (1, "length")
    assert len(reply["context"]) > 256 + 1
    (loaded,) = client.get("/api/ps").json()["models"]
    assert loaded["context_length"] == 256
    shown = client.post("/api/show", json={"model": "smollm2"}).json()
    assert shown["model_info"]["llama.context_length"] == 8192


@pytest.mark.parametrize("stream", [True, False])
def test_truncate_false_refuses_a_long_prompt(client: httpx.Client, stream: bool) -> None:
    body = {
        "model": "smollm2",
        "prompt": COUNTING,
        "raw": True,
        "options": {"num_ctx": 256},
        "truncate": False,
        "stream": stream,
    }
    reply = client.post("/api/generate", json=body)
    assert (reply.status_code, reply.json()) == (
        400,
        {"error": "the input length exceeds the context length"},
    )


def test_a_final_assistant_message_is_continued_as_ollama_does(client: httpx.Client) -> None:
    # Ollama renders a final assistant message open, after the assistant's opening: the reply
    # continues it. The same text sent raw (the template applied by hand) is the same prompt.
    import jinja2

    prefill = '{"name": "'
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": prefill}]
    options = {"temperature": 0, "num_predict": 4}
    chat = client.post(
        "/api/chat",
        json={"model": "smollm2", "messages": messages, "options": options, "stream": False},
    ).json()
    template = client.post("/api/show", json={"model": "smollm2"}).json()["template"]
    opening = jinja2.Environment().from_string(template)
    head = opening.render(messages=messages[:1], add_generation_prompt=True)
    raw = generate(client, prompt=head + prefill, raw=True, options=options)
    assert chat["prompt_eval_count"] == raw["prompt_eval_count"]
    assert not chat["message"]["content"].startswith(("<|im_start|>", "assistant"))
