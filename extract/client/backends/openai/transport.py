"""The openai backend's HTTP client: a sync and an async edge over httpx around ``wire``.

A schema ``format`` goes out as ``response_format: {"type": "json_schema", ...}``. A server
that refuses that form (400 or 422, or any error naming ``response_format``: llama-cpp-python
0.3.36 takes only ``json_object`` with a ``schema`` key, and answers 500) is asked once more
in that form, which this client then keeps using.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from ....core.wire import GenerateRequest, GenerateResult
from ....errors import BadRequest, ConfigError, ModelNotFound, ServerError
from ...config import Settings
from ...urls import redact
from ..base import Delta, ModelFacts
from ..ollama.replies import MAX_ERROR_BODY, LineSplitter, error_for_status
from ..ollama.transport import _mapped_errors
from .wire import ChatReader, SchemaStyle, chat_body, model_ids

# Statuses with which a server refuses a request form it does not know (llama-cpp-python
# answers its validation error with 500, naming response_format).
_FORM_REFUSED = (400, 422)


class _Base:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = redact(settings.host)
        root = settings.host.removesuffix("/v1")
        self._chat_url = httpx.URL(root + "/v1/chat/completions")
        self._models_url = httpx.URL(root + "/v1/models")
        self._style: SchemaStyle = "json_schema"
        headers = {**settings.headers(), "Accept": "text/event-stream, application/json"}
        self._client_args: dict[str, Any] = {"headers": headers, "timeout": settings.timeout}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r})"

    def no_continuation(self) -> ConfigError:
        """The error for a begun reply: the OpenAI-compatible API has no portable way to have
        a reply continued (``continue_final_message`` is vLLM's and SGLang's own), so
        choice fields are generated whole on this backend."""
        return ConfigError(
            f"decide_choices=True: the openai backend cannot continue a begun reply at "
            f"{self.host}; leave decide_choices unset, or use the ollama backend"
        )

    def _facts(self, response: httpx.Response, model: str) -> ModelFacts:
        if response.status_code == 404:  # a server without /v1/models: nothing known
            return ModelFacts(logprobs=True, schema_format=True)
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code, response.content, host=self.host, model=None
            )
        try:
            ids, served = model_ids(response.json())
        except ValueError:
            raise ServerError(
                "the /v1/models reply is not JSON", status=200, host=self.host
            ) from None
        if ids and model not in ids and f"{model}:latest" not in ids:
            raise ModelNotFound(host=self.host, model=model, detail=f"the server has {ids}")
        return ModelFacts(
            context_length=served, default_context=served, logprobs=True, schema_format=True
        )

    def _chat(self, request: GenerateRequest, timeout: httpx.Timeout | None) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._chat_url,
            json=chat_body(request, self._style),
            headers=self._client_args["headers"],
            extensions={"timeout": (timeout or self.settings.timeout).as_dict()},
        )

    def _refused(self, response: httpx.Response, body: bytes, request: GenerateRequest) -> bool:
        """Whether to ask again with a schema as ``json_object`` (and keep doing so); raises
        the status's error when not."""
        error = error_for_status(
            response.status_code, body, host=self.host, model=request.get("model")
        )
        schema = isinstance(request.get("format"), dict)
        refused = response.status_code in _FORM_REFUSED or "response_format" in error.message
        if schema and self._style == "json_schema" and refused:
            self._style = "json_object"
            return True
        if response.status_code == 422 and not isinstance(error, BadRequest):
            raise BadRequest(error.message, status=422, host=self.host, model=request.get("model"))
        raise error

    @staticmethod
    def _reader_feed(reader: ChatReader, splitter: LineSplitter, data: bytes) -> list[str]:
        return [t for line in splitter.feed(data) if (t := reader.feed_line(line))]


class Transport(_Base):
    """Synchronous client for an OpenAI-compatible server."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(settings)
        self._http = httpx.Client(**self._client_args, transport=transport)

    def close(self) -> None:
        self._http.close()

    def facts(self, model: str) -> ModelFacts:
        """The served models (GET /v1/models); raises ModelNotFound when ``model`` is not one."""
        with _mapped_errors(self.host, model, self.settings.api_key):
            response = self._http.get(self._models_url)
        return self._facts(response, model)

    def model_digest(self, model: str) -> str | None:
        """None: /v1/models lists no digest of a model's weights."""
        return None

    def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> Generator[Delta | GenerateResult, None, None]:
        """POST /v1/chat/completions: yield (text, "") as it streams, then the result.

        Raises as the ollama backend's does, and ConfigError for a field it cannot send.
        """
        model = request.get("model", "")
        reader, splitter = ChatReader(host=self.host, model=model), LineSplitter()
        with _mapped_errors(self.host, model, self.settings.api_key):
            while True:
                response = self._http.send(self._chat(request, timeout), stream=True)
                if response.status_code < 400:
                    break
                try:
                    body = response.read()[:MAX_ERROR_BODY]
                finally:
                    response.close()
                self._refused(response, body, request)
            try:
                if not request.get("stream", True):
                    reader.feed_object(_json(response.read(), self.host), "message")
                else:
                    for data in response.iter_bytes():
                        for text in self._reader_feed(reader, splitter, data):
                            yield text, ""
            finally:
                response.close()
        if reader.text and not request.get("stream", True):
            yield reader.text, ""
        yield reader.result()

    def generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """Send one generation and return the whole result; raises as ``stream_generate``."""
        for item in self.stream_generate(request, timeout=timeout):
            if isinstance(item, GenerateResult):
                return item
        raise AssertionError("stream_generate ended without a result")  # pragma: no cover

    def continue_reply(
        self, request: GenerateRequest, prefill: str, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """Raises ConfigError: see ``_Base.no_continuation``."""
        raise self.no_continuation()


class AsyncTransport(_Base):
    """The asyncio twin of ``Transport``."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings)
        self._http = httpx.AsyncClient(**self._client_args, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def facts(self, model: str) -> ModelFacts:
        """See ``Transport.facts``."""
        with _mapped_errors(self.host, model, self.settings.api_key):
            response = await self._http.get(self._models_url)
        return self._facts(response, model)

    async def model_digest(self, model: str) -> str | None:
        """See ``Transport.model_digest``."""
        return None

    async def stream_generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> AsyncGenerator[Delta | GenerateResult, None]:
        """See ``Transport.stream_generate``."""
        model = request.get("model", "")
        reader, splitter = ChatReader(host=self.host, model=model), LineSplitter()
        with _mapped_errors(self.host, model, self.settings.api_key):
            while True:
                response = await self._http.send(self._chat(request, timeout), stream=True)
                if response.status_code < 400:
                    break
                try:
                    body = (await response.aread())[:MAX_ERROR_BODY]
                finally:
                    await response.aclose()
                self._refused(response, body, request)
            try:
                if not request.get("stream", True):
                    reader.feed_object(_json(await response.aread(), self.host), "message")
                else:
                    async for data in response.aiter_bytes():
                        for text in self._reader_feed(reader, splitter, data):
                            yield text, ""
            finally:
                await response.aclose()
        if reader.text and not request.get("stream", True):
            yield reader.text, ""
        yield reader.result()

    async def generate(
        self, request: GenerateRequest, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """See ``Transport.generate``."""
        items = self.stream_generate(request, timeout=timeout)
        try:
            async for item in items:
                if isinstance(item, GenerateResult):
                    return item
        finally:
            await items.aclose()
        raise AssertionError("stream_generate ended without a result")  # pragma: no cover

    async def continue_reply(
        self, request: GenerateRequest, prefill: str, *, timeout: httpx.Timeout | None = None
    ) -> GenerateResult:
        """Raises ConfigError: see ``_Base.no_continuation``."""
        raise self.no_continuation()


def _json(body: bytes, host: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ServerError("the reply is not JSON", status=200, host=host) from None
