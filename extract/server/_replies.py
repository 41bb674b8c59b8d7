"""The JSON bodies the server writes: reply lines per dialect, errors, and model listings."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.wire import METRIC_FIELDS
from ._engine import Api, Final, Job, LogprobEntry, ModelEntry, Piece

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"


def created_at() -> str:
    """Now, in UTC, as Ollama writes ``created_at``."""
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    """Ollama's ``{"error": message}``, or the OpenAI dialect's error object."""
    if api != "openai":
        return {"error": message}
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class Shaper:
    """Builds every line of one reply, so a stream's lines share an id and a timestamp, and the
    done line knows which ``logprobs`` entries the streamed lines already carried."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._created = int(time.time())
        self._id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        self._logprobs_sent = 0

    @property
    def content_type(self) -> str:
        """The streaming Content-Type of this dialect."""
        return EVENT_STREAM if self.job.api == "openai" else NDJSON

    def chunk(self, text: str) -> dict[str, Any]:
        """A streamed line carrying ``text``."""
        if self.job.api == "openai":
            return self._openai_chunk({"role": "assistant", "content": text}, None)
        entries = text.logprobs if isinstance(text, Piece) else ()
        self._logprobs_sent += len(entries)
        return {**self._head(), **self._text(text), "done": False, **_logprobs(entries)}

    def final(self, final: Final) -> dict[str, Any]:
        """The streamed done line."""
        if self.job.api == "openai":
            delta = {"role": "assistant", "content": final.text}
            return self._openai_chunk(delta, _finish_reason(final))
        rest = (final.logprobs or ())[self._logprobs_sent :]
        return {**self._head(), **self._text(final.text), **self._done(final), **_logprobs(rest)}

    def whole(self, text: str, final: Final | None) -> dict[str, Any]:
        """The single reply of a non-streamed request; ``final`` is None when none came."""
        if self.job.api == "openai":
            return self._openai_whole(text, final)
        if final is None:
            return {**self._head(), **self._text(text), "done": False}
        joined = _logprobs(final.logprobs or ())
        return {**self._head(), **self._text(text + final.text), **self._done(final), **joined}

    def load(self, done_reason: str) -> dict[str, Any]:
        """The reply to a request that only loads or unloads the model."""
        empty = self._text("") if self.job.api == "chat" else {"response": ""}
        return {**self._head(), **empty, "done": True, "done_reason": done_reason}

    def _head(self) -> dict[str, Any]:
        return {"model": self.job.requested_model, "created_at": created_at()}

    def _text(self, text: str) -> dict[str, Any]:
        if self.job.api == "chat":
            return {"message": {"role": "assistant", "content": text}}
        return {"response": text}

    def _done(self, final: Final) -> dict[str, Any]:
        line: dict[str, Any] = {"done": True, "done_reason": final.done_reason}
        if self.job.api == "generate" and final.context is not None:
            line["context"] = list(final.context)
        line.update(wire_metrics(final.metrics))
        return line

    def _openai_chunk(self, delta: Mapping[str, Any], reason: str | None) -> dict[str, Any]:
        return {
            **self._openai_head("chat.completion.chunk"),
            "choices": [{"index": 0, "delta": dict(delta), "finish_reason": reason}],
        }

    def _openai_whole(self, text: str, final: Final | None) -> dict[str, Any]:
        content = text + (final.text if final else "")
        metrics = final.metrics if final else {}
        prompt, completion = metrics.get("prompt_eval_count", 0), metrics.get("eval_count", 0)
        return {
            **self._openai_head("chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": _finish_reason(final) if final else None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _openai_head(self, kind: str) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": kind,
            "created": self._created,
            "model": self.job.requested_model,
            "system_fingerprint": "fp_ollama",
        }


def _logprobs(entries: Sequence[LogprobEntry]) -> dict[str, Any]:
    # Ollama leaves an empty list off the line (omitempty).
    return {"logprobs": list(entries)} if entries else {}


def _finish_reason(final: Final) -> str:
    return "length" if final.done_reason == "length" else "stop"


def wire_metrics(metrics: Mapping[str, int]) -> dict[str, int]:
    """The counters Ollama would send: known fields only, zeros left off.

    >>> wire_metrics({"eval_count": 3, "load_duration": 0, "other": 1})
    {'eval_count': 3}
    """
    return {k: int(metrics[k]) for k in METRIC_FIELDS if metrics.get(k)}


def _details(entry: ModelEntry) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": entry.family,
        "families": [entry.family],
        "parameter_size": entry.parameter_size,
        "quantization_level": entry.quantization_level,
    }


def _listing(entry: ModelEntry) -> dict[str, Any]:
    return {
        "name": entry.tag,
        "model": entry.tag,
        "modified_at": entry.modified_at,
        "size": entry.size,
        "digest": entry.digest,
        "details": _details(entry),
    }


def tags_body(models: Sequence[ModelEntry]) -> dict[str, Any]:
    """The body of ``GET /api/tags``."""
    return {"models": [_listing(m) for m in models]}


def ps_body(models: Sequence[ModelEntry]) -> dict[str, Any]:
    """The body of ``GET /api/ps``: loaded models, kept in memory until the server stops."""
    return {
        "models": [
            {
                **_listing(m),
                "expires_at": "2318-01-01T00:00:00Z",
                "size_vram": 0,
                "context_length": m.context_length,
            }
            for m in models
        ]
    }


def show_body(entry: ModelEntry) -> dict[str, Any]:
    """The body of ``POST /api/show``."""
    return {
        "license": "",
        "modelfile": f"FROM {entry.tag}\n",
        "parameters": entry.parameters,
        "template": entry.template,
        "details": _details(entry),
        "model_info": {
            "general.architecture": entry.family,
            "general.basename": entry.name.partition(":")[0],
            f"{entry.family}.context_length": entry.context_length,
        },
        "capabilities": list(entry.capabilities),
        "modified_at": entry.modified_at,
    }


def openai_models_body(models: Sequence[ModelEntry]) -> dict[str, Any]:
    """The body of ``GET /v1/models``."""
    return {
        "object": "list",
        "data": [
            {"id": m.tag, "object": "model", "created": 0, "owned_by": "library"} for m in models
        ],
    }
