"""Generation requests sent straight to the connection pool, past the httpx client's layers.

A request to /api/generate needs nothing the client adds between building it and handing it to
its transport: the key is a header (no auth flow), redirects are not followed, no hooks are set.
Yet those layers cost, reading each response into the cookie jar above all: over a tenth of a
call to a server that answers at once. So a generation request skips them while the client would
add nothing to it:

- no proxy: the client takes proxies from the environment and routes through them, so the
  transports make their own pool (as the client would) only when the environment names none;
- no cookie to send: a cookie a server sets is kept in the client's jar, and from then on the
  requests go through the client, which sends it;
- nobody reading httpx's log at INFO, where the client logs each request it sends;
- no user or password in the host's URL, which the client sends as Basic auth;
- the client is open: once closed, it refuses the request, as it always did.
"""

from __future__ import annotations

import json
import logging
import urllib.request

import httpx

from ....core.wire import GenerateRequest

JSON_BODY = {"Content-Type": "application/json"}
_HTTPX_LOG = logging.getLogger("httpx")


def encoded(request: GenerateRequest) -> bytes:
    """The request's JSON body, encoded as httpx encodes ``json=``.

    Unset fields are left out rather than sent as null: Ollama reads ``"think": null`` and an
    absent ``think`` differently on thinking models.

    >>> encoded({"model": "m", "think": None, "prompt": "é"}).decode()
    '{"model":"m","prompt":"é"}'
    """
    body = {k: v for k, v in request.items() if v is not None}
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def proxied() -> bool:
    """Whether the environment names a proxy, which an httpx client would route through."""
    found = urllib.request.getproxies()
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


class Direct:
    """The generation requests of ``client`` that may skip it, built as it would build them."""

    def __init__(self, client: httpx.Client | httpx.AsyncClient, url: httpx.URL) -> None:
        self._client = client
        self._url = url
        # The client turns a URL's user and password into Basic auth; only it adds that.
        self._plain_url = not url.userinfo
        # The headers the client's request would carry, in its order, but for the length.
        headers = httpx.Headers(client.headers)
        headers.update(JSON_BODY)
        self._headers = [(b"Host", url.netloc), *headers.raw]
        self._timeout = client.timeout.as_dict()

    def request(self, body: bytes, timeout: httpx.Timeout | None) -> httpx.Request | None:
        """The POST of ``body`` to hand the pool, or None when it must go through the client."""
        client = self._client
        # A closed client refuses to send (the pool alone would open a new connection).
        if client.is_closed or client.cookies or not self._plain_url:
            return None
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            return None
        extensions = {"timeout": timeout.as_dict() if timeout is not None else self._timeout}
        # Made from a stream, with every header given, httpx adds none: checking for and adding
        # its own would cost more than the rest of building the request.
        request = httpx.Request(
            "POST",
            self._url,
            headers=[*self._headers, (b"Content-Length", b"%d" % len(body))],
            stream=httpx.ByteStream(body),
            extensions=extensions,
        )
        request.read()  # as a request built from content is: its body at hand
        return request

    def received(self, response: httpx.Response, request: httpx.Request) -> httpx.Response:
        """``response`` as the client would return it: tied to its request, any cookie kept."""
        response.request = request
        if "set-cookie" in response.headers:
            self._client.cookies.extract_cookies(response)
        return response
