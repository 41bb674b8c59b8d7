"""Generation requests that skip the httpx client (``client/direct.py``) are the requests the
client would send, and go through it whenever it would add something: a cookie, a proxy, a log."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import Scripted

from extract.client.backends.ollama.transport import AsyncTransport, Transport
from extract.client.config import Settings
from extract.core.wire import GenerateRequest
from extract.server import Reply

REQUEST: GenerateRequest = {"model": "m", "prompt": "é <<1>>", "think": False, "stream": False}
DONE = b'{"response":"{}","done":true,"eval_count":1}\n'
Seen = list[httpx.Request]


def _handler(seen: Seen, cookie: str | None = None) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        headers = {"Set-Cookie": cookie} if cookie and len(seen) == 1 else {}
        return httpx.Response(200, content=DONE, headers=headers)

    return handle


def sync_twice(
    seen: Seen, cookie: str | None = None, between: Callable[[], Any] = list, closing: bool = False
) -> None:
    """Two generations through one transport; ``between`` runs, or it is closed, in between."""
    mock = httpx.MockTransport(_handler(seen, cookie))
    with Transport(Settings.resolve("h:1", api_key="k"), transport=mock) as transport:
        assert transport.generate(REQUEST).text == "{}"
        between()
        if closing:
            transport.close()
        assert transport.generate(REQUEST).text == "{}"


def async_twice(
    seen: Seen, cookie: str | None = None, between: Callable[[], Any] = list, closing: bool = False
) -> None:
    async def run() -> None:
        mock = httpx.MockTransport(_handler(seen, cookie))
        async with AsyncTransport(Settings.resolve("h:1", api_key="k"), transport=mock) as t:
            assert (await t.generate(REQUEST)).text == "{}"
            between()
            if closing:
                await t.aclose()
            assert (await t.generate(REQUEST)).text == "{}"

    asyncio.run(run())


BOTH = pytest.mark.parametrize("twice", [sync_twice, async_twice], ids=["sync", "async"])


def _shown(request: httpx.Request) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    return request.method, str(request.url), request.headers.raw, request.content


@BOTH
def test_a_request_past_the_client_is_the_one_the_client_sends(
    twice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Someone reading httpx's log makes the second request go through the client, which logs it.
    seen: Seen = []
    twice(seen, between=lambda: caplog.set_level(logging.INFO, logger="httpx"))
    direct, through_client = seen
    assert _shown(direct) == _shown(through_client)
    assert (
        direct.content == '{"model":"m","prompt":"é <<1>>","think":false,"stream":false}'.encode()
    )
    assert dict(through_client.headers)["authorization"] == "Bearer k"
    logged = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert logged == ['HTTP Request: POST http://h:1/api/generate "HTTP/1.1 200 OK"']


@BOTH
def test_a_cookie_the_server_sets_is_sent_back(twice: Any) -> None:
    seen: Seen = []
    twice(seen, cookie="session=abc; Path=/")
    assert "cookie" not in seen[0].headers
    assert seen[1].headers["cookie"] == "session=abc"


@BOTH
def test_a_closed_transport_refuses_to_send(twice: Any) -> None:
    with pytest.raises(RuntimeError, match="client has been closed"):
        twice([], closing=True)


def test_a_user_in_the_host_url_is_sent_as_basic_auth() -> None:
    # Settings.resolve refuses such a host; settings made by hand can still carry one.
    seen: Seen = []
    settings = dataclasses.replace(Settings.resolve("h:1"), host="http://u:p@h:1")
    with Transport(settings, transport=httpx.MockTransport(_handler(seen))) as transport:
        transport.generate(REQUEST)
    assert seen[0].headers["authorization"] == "Basic dTpw"


@pytest.mark.parametrize("transport", [Transport, AsyncTransport])
def test_a_proxy_named_by_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch,
    scripted: Callable[..., Scripted],
    transport: type[Transport] | type[AsyncTransport],
) -> None:
    # The scripted server reads the path of a proxy's absolute request line: as the proxy, it
    # answers for a host that does not exist.
    proxy = scripted()
    proxy.engine.script(Reply.text("{}"))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    request: GenerateRequest = {"model": "tiny", "prompt": "p"}
    settings = Settings.resolve("http://example.invalid:1")

    async def run() -> str:
        if transport is Transport:
            with Transport(settings) as sync:
                return sync.generate(request).text
        async with AsyncTransport(settings) as asynchronous:
            return (await asynchronous.generate(request)).text

    assert asyncio.run(run()) == "{}"
    [sent] = [r for r in proxy.engine.requests if r.path == "/api/generate"]
    assert {k.lower(): v for k, v in sent.headers.items()}["host"] == "example.invalid:1"
