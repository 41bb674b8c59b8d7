"""Request bodies to :class:`Job`, with Ollama's checks, statuses and messages.

Ollama checks in this order, and so do we: the body binds to its Go struct (400),
``top_logprobs`` is within 0-20 (400), the model exists (404), raw mode conflicts (400),
capabilities (400), option types (500); an empty prompt then only loads the model, and
``format`` is checked last (500).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any

from ..core.wire import OPTION_KINDS, REQUEST_FIELDS
from ._duration import parse_duration
from ._engine import Engine, Fault, Format, Job, ModelEntry, find_model
from ._logprobs import MAX_TOP_LOGPROBS

log = logging.getLogger("extract.server")

_GO_TYPES = {
    "string": "string",
    "bool": "bool",
    "int": "int",
    "ints": "[]int",
    "images": "[]api.ImageData",
    "object": "map[string]interface {}",
    "list": "[]api.Message",
}

# The fields each body binds, with the JSON shape Ollama's Go struct gives each: from the one
# table of request fields the client plans with (keep_alive, think and format have checks of
# their own below).
_GENERATE_FIELDS = {f.name: f.kind for f in REQUEST_FIELDS if f.kind in _GO_TYPES}
_CHAT_SHARED = ("model", "stream", "options", "truncate", "shift", "logprobs", "top_logprobs")
_CHAT_FIELDS = {name: _GENERATE_FIELDS[name] for name in _CHAT_SHARED} | {"messages": "list"}
_MESSAGE_FIELDS = {"role": "string", "content": "string", "images": "images", "thinking": "string"}
# How Ollama's messages name an option's type.
_OPTION_TYPE_NAMES = {"strings": "array"}

_THINK_LEVELS = ("high", "medium", "low")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        Fault: 400 when the body is empty, not JSON, or not an object.
    """
    if not raw.strip():
        raise Fault(400, "missing request body")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Fault(400, f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise Fault(400, f"json: cannot unmarshal {_json_kind(body)} into Go value of type object")
    return body


def generate_job(body: Mapping[str, Any], engine: Engine) -> Job:
    """Validate a /api/generate body.

    Raises:
        Fault: 400, 404 or 500 with Ollama's message.
    """
    _check_fields("GenerateRequest", body, _GENERATE_FIELDS)
    keep_alive, think = _keep_alive(body), _think(body)
    images = body.get("images") or []
    _check_images("GenerateRequest.images", images)
    _check_top_logprobs(body)
    entry = _model(body, engine)
    raw = bool(body.get("raw"))
    if raw and (body.get("template") or body.get("system") or body.get("context")):
        raise Fault(400, "raw mode does not support template, system, or context")
    needs = ["insert"] if body.get("suffix") else []
    _check_capabilities(entry, body, needs, think)
    return Job(
        api="generate",
        model=entry.name,
        requested_model=body["model"],
        body=body,
        stream=body.get("stream") is not False,
        prompt=body.get("prompt") or "",
        system=body.get("system"),
        template=body.get("template"),
        suffix=body.get("suffix") or "",
        context=tuple(body.get("context") or ()),
        raw=raw,
        format=_format_unchecked(body),
        options=_options(body.get("options") or {}),
        think=think,
        keep_alive=keep_alive,
        truncate=body.get("truncate") is not False,
        logprobs=body.get("logprobs") is True,
        top_logprobs=body.get("top_logprobs") or 0,
    )


def chat_job(body: Mapping[str, Any], engine: Engine) -> Job:
    """Validate a /api/chat body.

    Raises:
        Fault: 400, 404 or 500 with Ollama's message.
    """
    _check_fields("ChatRequest", body, _CHAT_FIELDS)
    messages = body.get("messages") or []
    for message in messages:
        if not isinstance(message, dict):
            raise Fault(400, _unmarshal_error(message, "ChatRequest.messages", "api.Message"))
        _check_fields("ChatRequest.messages", message, _MESSAGE_FIELDS)
        _check_images("ChatRequest.messages.images", message.get("images") or [])
    keep_alive, think = _keep_alive(body), _think(body)
    _check_top_logprobs(body)
    entry = _model(body, engine)
    _check_capabilities(entry, body, ["tools"] if body.get("tools") else [], think)
    return Job(
        api="chat",
        model=entry.name,
        requested_model=body["model"],
        body=body,
        stream=body.get("stream") is not False,
        messages=tuple(messages),
        format=_format_unchecked(body),
        options=_options(body.get("options") or {}),
        think=think,
        keep_alive=keep_alive,
        truncate=body.get("truncate") is not False,
        logprobs=body.get("logprobs") is True,
        top_logprobs=body.get("top_logprobs") or 0,
    )


def openai_job(body: Mapping[str, Any], engine: Engine) -> Job:
    """Validate a /v1/chat/completions body into the same job /api/chat would make.

    Raises:
        Fault: 400 for a malformed body, 404 for an unknown model.
    """
    checks = {"model": str, "stream": bool, "seed": int, "max_tokens": int}
    for field, kind in checks.items():
        if body.get(field) is not None and not _is(body[field], kind):
            raise Fault(400, f"invalid value for {field!r}: expected {kind.__name__}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Fault(400, "invalid message format: messages must be a non-empty array")
    entry = _model(body, engine)
    options: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0}
    for source, target in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
        ("seed", "seed"),
        ("max_tokens", "num_predict"),
        ("max_completion_tokens", "num_predict"),
    ):
        if body.get(source) is not None:
            options[target] = body[source]
    stop = body.get("stop")
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else stop
    try:
        converted = _options(options)
    except Fault as exc:
        raise Fault(400, exc.message) from None
    return Job(
        api="openai",
        model=entry.name,
        requested_model=body["model"],
        body=body,
        stream=body.get("stream") is True,
        messages=tuple(_openai_message(m) for m in messages),
        format=_response_format(body.get("response_format")),
        options=converted,
    )


def check_format(job: Job) -> Format:
    """The job's ``format`` once Ollama would check it: ``"json"``, a schema object, or None.

    Raises:
        Fault: 500 ``invalid format`` for anything else, as Ollama's runner answers.
    """
    value = job.format
    if value is None or value == "json" or isinstance(value, dict):
        return value
    quoted = json.dumps(json.dumps(value, ensure_ascii=False), ensure_ascii=False)
    raise Fault(500, f'invalid format: {quoted}; expected "json" or a valid JSON Schema object')


def _format_unchecked(body: Mapping[str, Any]) -> Any:
    value = body.get("format")
    return None if value in (None, "") else value


def _check_top_logprobs(body: Mapping[str, Any]) -> None:
    if not 0 <= (body.get("top_logprobs") or 0) <= MAX_TOP_LOGPROBS:
        raise Fault(400, f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")


def _model(body: Mapping[str, Any], engine: Engine) -> ModelEntry:
    name = body.get("model") or ""
    entry = find_model(engine, name)
    if entry is None:
        raise Fault(404, f"model '{name}' not found")
    return entry


def _check_capabilities(
    entry: ModelEntry, body: Mapping[str, Any], needs: list[str], think: bool | str | None
) -> None:
    if think not in (None, False):
        needs.append("thinking")
    for capability in needs:
        if capability not in entry.capabilities:
            raise Fault(400, f'"{body["model"]}" does not support {capability}')


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        kind = OPTION_KINDS.get(key)
        if kind is None:
            log.warning("invalid option provided: %s", key)
            continue
        if value is None:
            continue
        out[key] = _option_value(key, kind, value)
    return out


def _option_value(key: str, kind: str, value: Any) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer" and number:
        return int(value)
    if kind == "float32" and number:
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "strings" and isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise Fault(500, f'option "{key}" must be of an array of strings')
        return list(value)
    raise Fault(500, f'option "{key}" must be of type {_OPTION_TYPE_NAMES.get(kind, kind)}')


def _keep_alive(body: Mapping[str, Any]) -> float | None:
    value = body.get("keep_alive")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Fault(400, f"Unsupported type: '{_json_kind(value)}'")
    return float(value) if not isinstance(value, str) else parse_duration(value)


def _think(body: Mapping[str, Any]) -> bool | str | None:
    value = body.get("think")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _THINK_LEVELS:
        return value
    if isinstance(value, str):
        raise Fault(
            400,
            f'invalid think value: "{value}" (must be "high", "medium", "low", true, or false)',
        )
    raise Fault(400, "think must be a boolean or string")


def _check_fields(struct: str, body: Mapping[str, Any], fields: Mapping[str, str]) -> None:
    for field, kind in fields.items():
        value = body.get(field)
        if value is not None and not _fits(kind, value):
            raise Fault(400, _unmarshal_error(value, f"{struct}.{field}", _GO_TYPES[kind]))


def _fits(kind: str, value: Any) -> bool:
    match kind:
        case "string":
            return isinstance(value, str)
        case "bool":
            return isinstance(value, bool)
        case "int":
            return _is(value, int)
        case "ints":
            return isinstance(value, list) and all(_is(v, int) for v in value)
        case "images":
            return isinstance(value, list) and all(isinstance(v, str) for v in value)
        case "object":
            return isinstance(value, dict)
        case "list":
            return isinstance(value, list)
    return True


def _check_images(where: str, images: list[str]) -> None:
    for image in images:
        try:
            base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
            at = next((i for i, c in enumerate(image) if c not in alphabet), len(image))
            raise Fault(400, f"illegal base64 data at input byte {at} in {where}") from None


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _unmarshal_error(value: Any, field: str, go_type: str) -> str:
    return (
        f"json: cannot unmarshal {_json_kind(value)} into Go struct field {field} of type {go_type}"
    )


def _openai_message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise Fault(400, "invalid message format: each message needs a string role")
    content = message.get("content")
    if isinstance(content, list):
        parts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        content = "".join(str(p) for p in parts)
    elif content is None:
        content = ""
    elif not isinstance(content, str):
        raise Fault(400, "invalid message content type: expected a string or an array of parts")
    return {"role": message["role"], "content": content}


def _response_format(value: Any) -> Format:
    if not isinstance(value, dict):
        return None
    kind = str(value.get("type", "")).strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else None
    return None
