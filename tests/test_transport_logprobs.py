"""The transport joins the reply's ``logprobs`` into ``GenerateResult.logprobs``; a server that
sends none, or sends garbage, leaves it None and never fails the call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.client.backends.ollama.replies import ReplyReader
from extract.client.backends.ollama.transport import AsyncTransport, Transport
from extract.client.config import Settings
from extract.core.wire import GenerateRequest, GenerateResult, TokenLogprob
from extract.server import Reply, ScriptedEngine, serve

ASK: GenerateRequest = {"model": "tiny", "prompt": "p", "logprobs": True, "top_logprobs": 2}
OPEN = {"token": "{", "logprob": -0.25, "bytes": [123], "top_logprobs": [
    {"token": "{", "logprob": -0.25, "bytes": [123]},
    {"token": "[", "logprob": -1.5, "bytes": [91]},
]}  # fmt: skip
CLOSE = {"token": "}", "logprob": -0.5, "bytes": [125]}
BANG = {"token": "!", "logprob": -3.0, "bytes": [33]}


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(models=("tiny",))


@pytest.fixture
def url(engine: ScriptedEngine) -> Iterator[str]:
    with serve(engine) as srv:
        yield srv.url


def sync_generate(url: str, request: GenerateRequest) -> GenerateResult:
    with Transport(Settings.resolve(url)) as t:
        return t.generate(request)


def async_generate(url: str, request: GenerateRequest) -> GenerateResult:
    async def run() -> GenerateResult:
        async with AsyncTransport(Settings.resolve(url)) as t:
            return await t.generate(request)

    return asyncio.run(run())


BOTH = pytest.mark.parametrize("generate", [sync_generate, async_generate], ids=["sync", "async"])
STREAMED = pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])


@BOTH
@STREAMED
def test_scripted_entries_round_trip(
    generate: Any, engine: ScriptedEngine, url: str, stream: bool
) -> None:
    engine.script(
        Reply.text("{}", chunks=["{", "}"], final_text="!", logprobs=[[OPEN], [CLOSE], [BANG]])
    )
    result = generate(url, {**ASK, "stream": stream})
    assert result.text == "{}!"
    assert result.logprobs == (
        TokenLogprob("{", -0.25, (TokenLogprob("{", -0.25), TokenLogprob("[", -1.5))),
        TokenLogprob("}", -0.5),
        TokenLogprob("!", -3.0),
    )


@BOTH
def test_no_logprobs_is_none(generate: Any, engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text("{}"), Reply.text("{}", logprobs=[[OPEN], [CLOSE]]))
    assert generate(url, ASK).logprobs is None
    assert generate(url, {"model": "tiny", "prompt": "p"}).logprobs is None


@BOTH
def test_a_server_older_than_0_12_11_sends_none(generate: Any) -> None:
    old = ScriptedEngine(version="0.12.10")
    old.script(Reply.text("{}", logprobs=[[OPEN], [CLOSE]]))
    with serve(old) as srv:
        result = generate(srv.url, ASK)
    assert (result.text, result.logprobs) == ("{}", None)


@BOTH
@pytest.mark.parametrize(
    "bad",
    [
        {"token": "}", "logprob": "-0.5"},
        {"token": 7, "logprob": -0.5},
        {"token": "}", "logprob": 0.5},
        {"token": "}", "logprob": True},
        {"logprob": -0.5},
        "}",
        None,
    ],
)
def test_a_malformed_entry_voids_them_quietly(
    generate: Any, engine: ScriptedEngine, url: str, bad: Any
) -> None:
    engine.script(Reply.text("{}", chunks=["{", "}"], logprobs=[[OPEN], [bad]]))
    result = generate(url, ASK)
    assert (result.text, result.logprobs) == ("{}", None)


def test_malformed_alternatives_are_dropped_and_the_entry_kept() -> None:
    odd = {**CLOSE, "top_logprobs": [{"token": "}", "logprob": -0.5}, {"token": 1}, "x", None]}
    assert TokenLogprob.from_wire(odd) == TokenLogprob("}", -0.5, (TokenLogprob("}", -0.5),))
    assert TokenLogprob.from_wire({**CLOSE, "top_logprobs": {"a": 1}}) == TokenLogprob("}", -0.5)


def read(*lines: dict[str, Any]) -> GenerateResult:
    reader = ReplyReader(host="h", model="m")
    for line in lines:
        reader.feed_line(json.dumps(line).encode())
    return reader.result()


def test_lines_that_are_not_lists_or_hold_nan_void_them() -> None:
    done = {"response": "", "done": True}
    assert read({"response": "a", "logprobs": [CLOSE]}, done).logprobs == (TokenLogprob("}", -0.5),)
    assert read({"response": "a", "logprobs": {"token": "a"}}, done).logprobs is None
    assert read({"response": "a", "logprobs": [CLOSE]}, {**done, "logprobs": 3}).logprobs is None
    nan = b'{"response": "a", "logprobs": [{"token": "a", "logprob": NaN}], "done": true}'
    reader = ReplyReader(host="h", model="m")
    reader.feed_line(nan)
    assert reader.result().logprobs is None
    huge = b'{"response": "a", "logprobs": [{"token": "a", "logprob": -1' + b"0" * 400 + b"}]}"
    reader = ReplyReader(host="h", model="m")
    reader.feed_line(huge)
    reader.feed_line(b'{"done": true}')
    assert reader.result().logprobs is None
    assert read({"response": "a", "logprobs": []}, done).logprobs == ()
    assert read({"response": "a", "logprobs": None}, done).logprobs is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
ENTRY = st.fixed_dictionaries(
    {"token": JSON | st.text(max_size=3), "logprob": JSON | st.floats(max_value=0)},
    optional={"top_logprobs": JSON | st.lists(JSON, max_size=3), "bytes": JSON},
)


@given(st.lists(JSON | st.lists(ENTRY | JSON, max_size=4), min_size=1, max_size=4))
def test_a_hostile_server_never_fails_the_reply(values: list[Any]) -> None:
    lines = [{"response": "x", "logprobs": value} for value in values]
    result = read(*lines, {"response": "", "done": True})
    assert result.text == "x" * len(values)
    for token in result.logprobs or ():
        assert isinstance(token.token, str)
        assert token.logprob <= 0
        assert all(isinstance(t.token, str) and t.logprob <= 0 and not t.top for t in token.top)


def test_mock_transport_seam_carries_them() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["logprobs"] is True
        body = {"response": "{}", "done": True, "logprobs": [OPEN, CLOSE]}
        return httpx.Response(200, content=json.dumps(body).encode() + b"\n")

    with Transport(Settings.resolve("h:1"), transport=httpx.MockTransport(handler)) as t:
        logprobs = t.generate(ASK).logprobs
    assert logprobs is not None
    assert [(t.token, t.logprob) for t in logprobs] == [("{", -0.25), ("}", -0.5)]
