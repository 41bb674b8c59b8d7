"""Reading Ollama's replies, without I/O: NDJSON lines, the reply they add up to, and the
error a status and body mean.

``LineSplitter`` cuts bytes into lines (capped), ``ReplyReader`` joins /api/generate lines into
one ``GenerateResult`` (text, logprobs, metrics), ``error_for_status`` maps a status and
Ollama's ``{"error": ...}`` body onto the error tree. The transports only move bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from ....core.wire import GenerateResult, Metrics, TokenLogprob, parse_logprobs
from ....errors import (
    BadRequest,
    DocumentTooLong,
    ExtractError,
    ModelNotFound,
    RequestRejected,
    RunawayOutput,
    ServerBusy,
    ServerError,
    StreamError,
    TruncatedOutput,
)

# A reply line past this size is not a reply: a broken or hostile server. Bounds memory.
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_ERROR_BODY = 4096
# A whole reply (and any small endpoint's body) past this is not a reply either.
MAX_REPLY_BYTES = 64 * 1024 * 1024
# Ollama sends a token per line; this many lines in a row without text is a stuck stream.
MAX_EMPTY_LINES = 1000


class LineSplitter:
    """Split a byte stream into lines, refusing any line longer than ``max_bytes``.

    >>> s = LineSplitter()
    >>> s.feed(b'{"a":1}\\n{"b"'), s.feed(b':2}\\n'), s.flush()
    ([b'{"a":1}'], [b'{"b":2}'], None)
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES, max_total: int = MAX_REPLY_BYTES) -> None:
        self._pending: list[bytes] = []  # the start of an unfinished line
        self._pending_size = 0
        self._total = 0
        self._max, self._max_total = max_bytes, max_total

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines ``data`` finishes; raises RunawayOutput past either cap."""
        self._total += len(data)
        if self._total > self._max_total:
            raise RunawayOutput(f"the reply exceeded {self._max_total} bytes; it was cut off")
        lines: list[bytes] = []
        start = 0
        # Only the new bytes are searched, so a long line costs O(its length), not O(n²).
        while (end := data.find(b"\n", start)) != -1:
            line = data[start:end]
            if self._pending:
                line = b"".join([*self._pending, line])
                self._pending, self._pending_size = [], 0
            self._check(len(line))
            if line.strip():
                lines.append(line)
            start = end + 1
        if start < len(data):
            self._pending.append(data[start:])
            self._pending_size += len(data) - start
            self._check(self._pending_size)
        return lines

    def flush(self) -> bytes | None:
        rest = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        return rest if rest.strip() else None

    def _check(self, size: int) -> None:
        if size > self._max:
            raise RunawayOutput(f"a reply line exceeded {self._max} bytes; the stream was cut off")


class ReplyReader:
    """Reads /api/generate reply lines (streamed or not) into one ``GenerateResult``.

    Text is appended from every line, the done line included; an ``{"error"}`` line is a
    ``StreamError``; a reply that ends without ``done: true`` is ``TruncatedOutput``.
    ``logprobs`` are joined across lines the same way; malformed ones void them all, quietly.
    """

    def __init__(self, *, host: str, model: str) -> None:
        self._host, self._model = host, model
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._final: dict[str, Any] | None = None
        self._empty_lines = 0
        self._logprobs: list[TokenLogprob] | None = None  # None until a line carries some
        self._logprobs_void = False

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed_line(self, line: bytes) -> tuple[str, str]:
        """Read one line; return its (response, thinking) text."""
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            raise StreamError(
                f"the server sent a line that is not JSON: {line[:120]!r}",
                host=self._host,
                model=self._model,
            ) from None
        if not isinstance(obj, dict):
            raise StreamError(
                f"the server sent a non-object line: {line[:120]!r}",
                host=self._host,
                model=self._model,
            )
        if "error" in obj:
            raise StreamError(str(obj["error"]), host=self._host, model=self._model)
        delta, thinking = obj.get("response") or "", obj.get("thinking") or ""
        if not isinstance(delta, str) or not isinstance(thinking, str):
            raise StreamError("the server sent a non-text response field", host=self._host)
        if delta:
            self._text.append(delta)
        if thinking:
            self._thinking.append(thinking)
        if obj.get("logprobs") is not None:
            self._add_logprobs(obj["logprobs"])
        if obj.get("done") is True:
            self._final = obj
        elif delta or thinking:
            self._empty_lines = 0
        else:
            self._empty_lines += 1
            if self._empty_lines > MAX_EMPTY_LINES:
                raise RunawayOutput(
                    f"the server sent {MAX_EMPTY_LINES} lines in a row without text; cut off",
                    raw=self.text,
                )
        return delta, thinking

    def _add_logprobs(self, value: Any) -> None:
        entries = parse_logprobs(value)
        if entries is None:
            self._logprobs_void = True
        else:
            self._logprobs = self._logprobs if self._logprobs is not None else []
            self._logprobs.extend(entries)

    def result(self) -> GenerateResult:
        """The finished reply; raises TruncatedOutput when no done line arrived."""
        if self._final is None:
            raise TruncatedOutput(
                "the reply ended without a done line (the server stopped generating, "
                "often a repeated-token loop)",
                raw=self.text,
            )
        final = self._final
        context = final.get("context")
        return GenerateResult(
            text=self.text,
            thinking="".join(self._thinking),
            done=True,
            done_reason=final.get("done_reason"),
            metrics=Metrics.from_wire(final),
            context=context if isinstance(context, list) else None,
            logprobs=None if self._logprobs_void or self._logprobs is None else (*self._logprobs,),
        )


# Ollama's runner says the first; servers running llama-server (0.30+) pass on its own message.
_TOO_LONG = re.compile(
    r"input length exceeds the context length|\((?P<tokens>\d+) tokens\) exceeds the available "
    r"context size|exceeds the available context size"
)


def error_for_status(status: int, body: bytes, *, host: str, model: str | None) -> ExtractError:
    """Map an HTTP error status and Ollama's ``{"error": ...}`` body to the error tree."""
    message = _error_message(body) or httpx.codes.get_reason_phrase(status) or "error"
    if status == 404:
        return (
            ModelNotFound(host=host, model=model, detail=message)
            if model
            else (RequestRejected(message, status=status, host=host))
        )
    if status == 503:
        return ServerBusy(message, status=status, host=host, model=model)
    if status == 400 and (too_long := _TOO_LONG.search(message)):
        tokens = too_long.group("tokens")
        return DocumentTooLong(
            f"the prompt is longer than the model's context, and the server refused to cut it "
            f"({message}); split the document (chunk=), raise num_ctx, or shorten it [{host}]",
            tokens=int(tokens) if tokens else None,
        )
    # Ollama answers a wrong option type or an invalid `format` with 500; resending cannot help.
    if status == 500 and message.startswith(("option ", "invalid format", "invalid JSON schema")):
        return BadRequest(message, status=status, host=host, model=model)
    if status >= 500:
        return ServerError(message, status=status, host=host, model=model)
    if status == 400:
        return BadRequest(message, status=status, host=host, model=model)
    if status in (401, 403):
        hint = "check OLLAMA_API_KEY, or the Host header of a loopback-bound server"
        return RequestRejected(f"{message} ({hint})", status=status, host=host, model=model)
    return RequestRejected(message, status=status, host=host, model=model)


def _error_message(body: bytes) -> str:
    text = body[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):  # the OpenAI dialect nests it
            err = err.get("message")
        if err is not None:
            return str(err)
    return text
