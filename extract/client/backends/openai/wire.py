"""Translating extract's request into a /v1/chat/completions body, and reading the reply's
server-sent events back into one ``GenerateResult``. No I/O.

What maps: ``prompt`` and ``system`` become the messages, ``format`` becomes
``response_format`` (``json_schema``, else ``json_object``), the sampling options their OpenAI
names, ``logprobs``/``top_logprobs`` as they are. What has no OpenAI field (``template``,
``raw``, ``context``, ``suffix``, ``keep_alive``, ``think``, ``images``, ``truncate``,
``shift``, options such as ``num_ctx``) is a ConfigError naming it: never dropped quietly.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from ....core.wire import GenerateRequest, GenerateResult, Metrics, TokenLogprob, parse_logprobs
from ....errors import ConfigError, StreamError, TruncatedOutput

# Request fields only Ollama's /api/generate has.
OLLAMA_ONLY = ("template", "raw", "context", "suffix", "keep_alive", "think", "images")
OLLAMA_ONLY_FLAGS = ("truncate", "shift")
# Ollama option → OpenAI body field (top_k, min_p and repeat_penalty are the extensions vLLM,
# SGLang and llama.cpp's servers all take).
OPTION_FIELDS = {
    "num_predict": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "top_k": "top_k",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
}
SchemaStyle = Literal["json_schema", "json_object"]


def check_request(request: GenerateRequest) -> None:
    """Raise ConfigError naming the first field or option of ``request`` that the openai
    backend cannot send."""
    for name in (*OLLAMA_ONLY, *OLLAMA_ONLY_FLAGS):
        if request.get(name) is not None:
            raise ConfigError(
                f"{name}= is an Ollama request field: the openai backend has no such field "
                "(/v1/chat/completions); leave it out, or use backend='ollama'"
            )
    for option in request.get("options") or {}:
        if option not in OPTION_FIELDS:
            raise ConfigError(
                f"options={{{option!r}: ...}} is an Ollama option the openai backend cannot "
                f"send; it takes {', '.join(sorted(OPTION_FIELDS))} (the server sets the "
                "context size when it starts)"
            )


def chat_body(request: GenerateRequest, style: SchemaStyle) -> dict[str, Any]:
    """The /v1/chat/completions body for ``request``; a schema ``format`` is sent in ``style``:
    ``json_schema`` (OpenAI's form) or ``json_object`` with a ``schema`` key (llama.cpp's
    servers, and llama-cpp-python's only form). Raises ConfigError as ``check_request``."""
    check_request(request)
    messages = [{"role": "user", "content": request.get("prompt", "")}]
    if request.get("system"):
        messages.insert(0, {"role": "system", "content": request.get("system", "")})
    body: dict[str, Any] = {"model": request.get("model", ""), "messages": messages}
    for option, value in (request.get("options") or {}).items():
        body[OPTION_FIELDS[option]] = value
    fmt = request.get("format")
    if fmt == "json":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        if style == "json_schema":
            spec = {"name": "extract", "schema": fmt, "strict": True}
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            body["response_format"] = {"type": "json_object", "schema": fmt}
    if request.get("logprobs"):
        body["logprobs"] = True
        if request.get("top_logprobs"):
            body["top_logprobs"] = request.get("top_logprobs")
    body["stream"] = bool(request.get("stream", True))
    if body["stream"]:
        # vLLM, SGLang and llama-server then end the stream with the usage; others ignore it.
        body["stream_options"] = {"include_usage": True}
    return body


class ChatReader:
    """Reads a chat completion (SSE ``data:`` lines, or one JSON body) into a GenerateResult.

    ``usage`` becomes the metrics' token counts; a stream without it (llama-cpp-python's) is
    counted a token per content event, as these servers stream. Durations come from the
    server's own ``timings`` where it sends them (llama-server), else from the wall time this
    reader saw: ``total_duration`` and ``eval_duration`` are then measured client-side.
    """

    def __init__(self, *, host: str, model: str) -> None:
        self._host, self._model = host, model
        self._text: list[str] = []
        self._logprobs: list[TokenLogprob] | None = None
        self._void = False
        self._finish: str | None = None
        self._usage: dict[str, Any] = {}
        self._timings: dict[str, Any] = {}
        self._started = time.perf_counter_ns()
        self._done = False
        self._events = 0

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed_line(self, line: bytes) -> str:
        """Read one SSE line; return its text delta."""
        line = line.strip()
        if not line.startswith(b"data:"):
            return ""  # comments, event names, keep-alives
        data = line[5:].strip()
        if data == b"[DONE]":
            self._done = True
            return ""
        return self.feed_object(self._load(data), "delta")

    def feed_object(self, obj: Any, key: Literal["delta", "message"]) -> str:
        """Read one chunk (``delta``) or a whole reply (``message``); return its text."""
        if not isinstance(obj, dict):
            raise StreamError("the server sent a non-object reply", host=self._host)
        if "error" in obj:
            error = obj["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise StreamError(str(message), host=self._host, model=self._model)
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        if isinstance(obj.get("timings"), dict):
            self._timings = obj["timings"]
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""
        choice = choices[0]
        part = choice.get(key)
        text = part.get("content") if isinstance(part, dict) else None
        if text is not None and not isinstance(text, str):
            raise StreamError("the server sent a non-text content field", host=self._host)
        if text:
            self._text.append(text)
            self._events += 1
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and logprobs.get("content") is not None:
            entries = parse_logprobs(logprobs["content"])
            if entries is None:
                self._void = True
            else:
                self._logprobs = [*(self._logprobs or []), *entries]
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
            if key == "message":
                self._done = True
        return text or ""

    def result(self) -> GenerateResult:
        """The finished reply; raises TruncatedOutput when the server never said it finished
        (no ``finish_reason``), and the flow reads ``length`` as hitting the token limit."""
        if self._finish is None:
            raise TruncatedOutput(
                "the reply ended without a finish_reason (the server stopped generating)",
                raw=self.text,
            )
        return GenerateResult(
            text=self.text,
            thinking="",
            done=True,
            done_reason=self._finish,
            metrics=self._metrics(),
            context=None,
            logprobs=None if self._void or self._logprobs is None else (*self._logprobs,),
        )

    def _metrics(self) -> Metrics:
        usage, timings = self._usage, self._timings
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        wall = time.perf_counter_ns() - self._started
        prompt_ms, predicted_ms = timings.get("prompt_ms"), timings.get("predicted_ms")
        return Metrics(
            total_duration=wall,
            prompt_eval_count=prompt if type(prompt) is int else None,
            prompt_eval_duration=_nanos(prompt_ms),
            eval_count=completion if type(completion) is int else (self._events or None),
            eval_duration=_nanos(predicted_ms) if predicted_ms is not None else wall,
        )

    def _load(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise StreamError(
                f"the server sent an event that is not JSON: {data[:120]!r}",
                host=self._host,
                model=self._model,
            ) from None


def _nanos(ms: Any) -> int | None:
    return int(ms * 1e6) if isinstance(ms, int | float) and ms >= 0 else None


def model_ids(reply: Any) -> tuple[list[str], int | None]:
    """The model ids a /v1/models reply lists, and the served context (vLLM's
    ``max_model_len``) of the first that states one."""
    data = reply.get("data") if isinstance(reply, dict) else None
    entries = [m for m in data or [] if isinstance(m, dict)]
    lengths = [m["max_model_len"] for m in entries if type(m.get("max_model_len")) is int]
    return [str(m.get("id")) for m in entries], (lengths[0] if lengths else None)
