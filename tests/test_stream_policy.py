"""Whether a request streams: partials and a slow server stream, a fast server gets one body.

Streaming lets the guards cut a runaway reply short, at a client cost per token; it is worth it
only while a whole ``num_predict`` budget takes the server a second or more to generate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from conftest import Scripted

from extract import AsyncExtractor, ConfigError, Extractor, RunawayOutput
from extract.server import Reply

ANN = '{"name": "Ann", "age": 34}'
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def person_server(scripted: Callable[..., Scripted], delay: float = 0.0) -> Scripted:
    """A server that answers every generation with ANN, ``delay`` seconds a token."""
    return scripted(responder=lambda _body: Reply.text(ANN, chunk_delay=delay))


def streamed(server: Scripted) -> list[bool]:
    return [body["stream"] for body in server.generates()]


def test_a_fast_server_gets_one_body_once_its_speed_is_known(
    scripted: Callable[..., Scripted],
) -> None:
    server = person_server(scripted)
    with Extractor("tiny", host=server.url) as ex:
        values = [ex.extract(f"Ann is 34. ({i})", schema=PERSON).value for i in range(3)]
    assert values == [{"name": "Ann", "age": 34}] * 3
    assert streamed(server) == [True, False, False]


def test_a_slow_server_keeps_streaming(scripted: Callable[..., Scripted]) -> None:
    # About 3 ms a token: a runaway of 1024 tokens would hold the server for seconds.
    server = person_server(scripted, delay=0.003)
    with Extractor("tiny", host=server.url) as ex:
        for i in range(3):
            ex.extract(f"Ann is 34. ({i})", schema=PERSON)
    assert streamed(server) == [True, True, True]


def test_an_unbounded_token_budget_always_streams(scripted: Callable[..., Scripted]) -> None:
    server = person_server(scripted)
    with Extractor("tiny", host=server.url, options={"num_predict": -1}) as ex:
        for i in range(2):
            ex.extract(f"Ann is 34. ({i})", schema=PERSON)
    assert streamed(server) == [True, True]


def test_the_stream_option_decides_when_given(scripted: Callable[..., Scripted]) -> None:
    server = person_server(scripted)
    with Extractor("tiny", host=server.url, stream=False) as ex:
        ex.extract("Ann is 34.", schema=PERSON)
        ex.extract("Ann is 34.", schema=PERSON, stream=True)
        ex.extract("Ann is 34.", schema=PERSON, stream=True)
    assert streamed(server) == [False, True, True]


def test_partials_always_stream(scripted: Callable[..., Scripted]) -> None:
    server = person_server(scripted)
    with Extractor("tiny", host=server.url) as ex:
        ex.extract("Ann is 34.", schema=PERSON)
        events = list(ex.stream("Ann is 34.", schema=PERSON))
    assert events[-1].value == {"name": "Ann", "age": 34}
    assert streamed(server) == [True, True]


def test_an_unusable_stream_option_is_refused(scripted: Callable[..., Scripted]) -> None:
    server = person_server(scripted)
    with Extractor("tiny", host=server.url) as ex:
        with pytest.raises(ConfigError, match="no partial values"):
            list(ex.stream("Ann is 34.", schema=PERSON, stream=False))
        with pytest.raises(ConfigError, match="stream='yes'"):
            ex.extract("Ann is 34.", schema=PERSON, stream="yes")  # type: ignore[typeddict-item]
    assert server.generates() == []


def test_an_unstreamed_runaway_is_still_caught(scripted: Callable[..., Scripted]) -> None:
    server = person_server(scripted)
    server.engine.script(Reply.whitespace(2_000), Reply.text(ANN))
    with Extractor("tiny", host=server.url, stream=False, format="json") as ex:
        result = ex.extract("Ann is 34.", schema=PERSON)
    assert isinstance(result.attempts[0].error, RunawayOutput)
    assert result.value == {"name": "Ann", "age": 34}
    assert streamed(server) == [False, False]


def test_an_unstreamed_generation_error_is_a_retried_server_error(
    scripted: Callable[..., Scripted],
) -> None:
    # Ollama answers an unstreamed request whose generation fails with a 500, not an error line.
    server = person_server(scripted)
    server.engine.script(Reply.mid_stream_error(['{"name": '], "runner terminated"))
    with Extractor("tiny", host=server.url, stream=False, retry=2) as ex:
        result = ex.extract("Ann is 34.", schema=PERSON)
    assert result.value == {"name": "Ann", "age": 34}
    assert result.attempts[0].transport_retries == 1


def test_the_async_extractor_learns_the_same_way(scripted: Callable[..., Scripted]) -> None:
    server = person_server(scripted)

    async def run() -> None:
        async with AsyncExtractor("tiny", host=server.url) as ex:
            for i in range(2):
                await ex.extract(f"Ann is 34. ({i})", schema=PERSON)

    asyncio.run(run())
    assert streamed(server) == [True, False]
