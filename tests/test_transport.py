"""The Ollama transport against the project's scripted server: fields, streaming, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from extract import errors
from extract.client.backends.ollama.replies import LineSplitter, ReplyReader
from extract.client.backends.ollama.transport import AsyncTransport, Transport
from extract.client.config import Settings
from extract.core.wire import GenerateRequest, GenerateResult
from extract.server import Reply, ScriptedEngine, serve

EVERY_FIELD: GenerateRequest = {
    "model": "tiny",
    "prompt": "Extract the name.",
    "suffix": "",
    "images": ["iVBORw=="],
    "format": {"type": "object", "properties": {"name": {"type": "string"}}},
    "options": {"temperature": 0, "seed": 7, "num_predict": 64, "stop": ["\n\n"]},
    "system": "You extract data.",
    "template": "{{ .System }} {{ .Prompt }}",
    "context": [1, 2, 3],
    "stream": True,
    "keep_alive": "5m",
    "think": False,
    "truncate": False,
    "logprobs": True,
    "top_logprobs": 2,
}


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(models=("tiny",), capabilities={"tiny": ["completion", "vision"]})


def sync_generate(url: str, request: GenerateRequest, **kw: Any) -> GenerateResult:
    with Transport(Settings.resolve(url, **kw)) as t:
        return t.generate(request)


def async_generate(url: str, request: GenerateRequest, **kw: Any) -> GenerateResult:
    async def run() -> GenerateResult:
        async with AsyncTransport(Settings.resolve(url, **kw)) as t:
            return await t.generate(request)

    return asyncio.run(run())


BOTH = pytest.mark.parametrize("generate", [sync_generate, async_generate], ids=["sync", "async"])


@BOTH
def test_every_field_reaches_the_server_unchanged(
    generate: Any, engine: ScriptedEngine, url: str
) -> None:
    engine.script(Reply.text('{"name": "Ann"}'))
    generate(url, EVERY_FIELD)
    assert engine.requests[-1].body == EVERY_FIELD


@BOTH
def test_streamed_text_joins_every_line_including_the_done_line(
    generate: Any, engine: ScriptedEngine, url: str
) -> None:
    engine.script(Reply.text("", chunks=['{"na', 'me": ', '"Ann"'], final_text="}", eval_count=4))
    result = generate(url, {"model": "tiny", "prompt": "p"})
    assert result.text == '{"name": "Ann"}'
    assert result.done_reason == "stop"
    assert result.metrics.eval_count == 4
    assert result.metrics.tokens_per_second is not None
    assert result.metrics.tokens_per_second > 0


@BOTH
def test_non_streaming_reply(generate: Any, engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text('{"a": 1}'))
    result = generate(url, {"model": "tiny", "prompt": "p", "stream": False})
    assert result.text == '{"a": 1}'
    assert engine.requests[-1].body["stream"] is False


@BOTH
@pytest.mark.parametrize(
    ("reply", "error", "retryable"),
    [
        (Reply.status(500, "model runner has unexpectedly stopped"), errors.ServerError, True),
        (Reply.status(503, "server busy, please try again."), errors.ServerBusy, True),
        (Reply.status(400, "invalid options"), errors.BadRequest, False),
        (
            Reply.status(500, 'option "temperature" must be of type float32'),
            errors.BadRequest,
            False,
        ),
        (Reply.mid_stream_error(['{"a"'], "runner crashed"), errors.StreamError, True),
        (Reply.cut(['{"a": 1']), errors.TruncatedOutput, True),
        (Reply.reset(after_chunks=['{"a"']), errors.ConnectError, True),
    ],
    ids=["500", "503", "400", "500-option", "mid-stream", "no-done-line", "reset"],
)
def test_each_failure_maps_to_its_class(
    generate: Any,
    engine: ScriptedEngine,
    url: str,
    reply: Reply,
    error: type[errors.ExtractError],
    retryable: bool,
) -> None:
    engine.script(reply)
    with pytest.raises(error) as info:
        generate(url, {"model": "tiny", "prompt": "p"})
    assert type(info.value) is error
    assert info.value.retryable is retryable


@BOTH
def test_unknown_model_says_how_to_pull_it(generate: Any, url: str) -> None:
    with pytest.raises(errors.ModelNotFound) as info:
        generate(url, {"model": "llama3.2", "prompt": "p"})
    assert "ollama pull llama3.2" in str(info.value)
    assert url in str(info.value)
    assert info.value.retryable is False


@BOTH
def test_non_streaming_done_false_is_truncated(
    generate: Any, engine: ScriptedEngine, url: str
) -> None:
    engine.script(Reply.cut(['{"a": ']))
    with pytest.raises(errors.TruncatedOutput) as info:
        generate(url, {"model": "tiny", "prompt": "p", "stream": False})
    assert info.value.raw == '{"a": '


@BOTH
def test_slow_first_byte_times_out(generate: Any, engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.hang(5))
    with pytest.raises(errors.RequestTimeout):
        generate(url, {"model": "tiny", "prompt": "p"}, timeout=(1, 0.3))


@BOTH
def test_connection_refused(generate: Any) -> None:
    with serve(ScriptedEngine()) as srv:
        dead = srv.url
    with pytest.raises(errors.ConnectError) as info:
        generate(dead, {"model": "tiny", "prompt": "p"})
    assert dead in str(info.value)


@BOTH
def test_api_key_is_sent_as_bearer_and_never_shown(
    generate: Any, engine: ScriptedEngine, url: str
) -> None:
    engine.script(Reply.status(500, "boom"))
    with pytest.raises(errors.ServerError) as info:
        generate(url, {"model": "tiny", "prompt": "p"}, api_key="sekrit-key")
    headers = {k.lower(): v for k, v in engine.requests[-1].headers.items()}
    assert headers["authorization"] == "Bearer sekrit-key"
    assert "sekrit" not in str(info.value)
    assert "sekrit" not in repr(Settings.resolve(url, api_key="sekrit-key"))


def test_small_endpoints(url: str) -> None:
    with Transport(Settings.resolve(url)) as t:
        assert t.version() == "0.33.0"
        assert "Ollama is running" in t.ping()
        assert [m["name"] for m in t.tags()] == ["tiny:latest"]
        assert "vision" in t.show("tiny")["capabilities"]
        with pytest.raises(errors.ModelNotFound):
            t.show("missing")


def test_sync_and_async_agree(engine: ScriptedEngine, url: str) -> None:
    replies = [Reply.text('{"x": [1, 2]}', chunks=['{"x"', ": [1, 2]}"])] * 2
    engine.script(*replies)
    request: GenerateRequest = {"model": "tiny", "prompt": "p", "format": "json"}
    sync_result, async_result = sync_generate(url, request), async_generate(url, request)
    assert (sync_result.text, sync_result.done_reason, sync_result.metrics.eval_count) == (
        async_result.text,
        async_result.done_reason,
        async_result.metrics.eval_count,
    )
    assert engine.requests[0].body == engine.requests[1].body


def test_on_text_sees_each_delta_and_can_abort(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.whitespace(500))
    seen: list[str] = []

    def guard(delta: str, thinking: str) -> None:
        seen.append(delta)
        if len(seen) > 3:
            raise errors.RunawayOutput("too much whitespace", raw="")

    with Transport(Settings.resolve(url)) as t, pytest.raises(errors.RunawayOutput):
        t.generate({"model": "tiny", "prompt": "p"}, on_text=guard)
    assert len(seen) == 4


def test_line_splitter_refuses_a_giant_line() -> None:
    splitter = LineSplitter(max_bytes=1000)
    for _ in range(5):
        splitter.feed(b"x" * 200)
    with pytest.raises(errors.RunawayOutput):
        splitter.feed(b"x" * 200)


@pytest.mark.parametrize(
    "line",
    [b"not json", b"[1, 2]", b'{"response": 5}'],
)
def test_reply_reader_rejects_garbage_lines(line: bytes) -> None:
    reader = ReplyReader(host="h", model="m")
    with pytest.raises(errors.StreamError):
        reader.feed_line(line)


def test_mock_transport_seam() -> None:
    """Any httpx transport can stand in for the network (as users' own tests may do)."""

    def handler(request: httpx.Request) -> httpx.Response:
        lines = b'{"response":"{}","done":false}\n{"response":"","done":true,"eval_count":1}\n'
        return httpx.Response(200, content=lines)

    with Transport(Settings.resolve("h:1"), transport=httpx.MockTransport(handler)) as t:
        assert t.generate({"model": "m", "prompt": "p"}).text == "{}"
