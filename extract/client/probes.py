"""What a host can do, found out by asking it: the facts ``extract doctor`` checks.

A server may look like Ollama and not be one (any web server answers ``GET /``), may send no
log-probabilities (then there is no confidence and no calibration), and may accept a ``format``
and ignore it (Ollama's MLX and cloud models do): each is probed here and kept in one
:class:`ServerFacts`. The readers of each answer are pure; :func:`probe_server` does the asking.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx

from ..core.wire import GenerateRequest, GenerateResult
from ..errors import ConnectError, ModelNotFound, OutputError, TransportError
from .backends.ollama.facts import supports_schema_format
from .backends.ollama.transport import START_SERVER_HINT, Transport
from .config import Settings

# The format probe asks for a word while its schema allows only an integer: a server that
# enforces `format` returns the integer, one that ignores it returns the word.
FORMAT_PROBE_PROMPT = "In one word, what colour is the sky on a clear day?"
FORMAT_PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
}
LOGPROBS_PROBE_PROMPT = "Say yes."
# Enough tokens for `{"answer": 12345}` and for a few words; the probes stay cheap.
PROBE_NUM_PREDICT = 24
# How much of an unexpected answer a fact keeps, to show it.
SHOWN_CHARS = 80


@dataclasses.dataclass(frozen=True, slots=True)
class ServerFacts:
    """What a host said about itself and about one model.

    ``problem`` says why the host is not Ollama-compatible (None: it is). The model's facts
    are None when they were not asked (no model given, or the host failed before them):
    ``capabilities`` from /api/show, ``logprobs`` whether a generation asked for
    log-probabilities got them, ``format_enforced`` whether a ``format`` the prompt works
    against was kept (``format_sent`` says which: ``"schema"``, or ``"json"`` for a server
    older than schema formats), with ``format_reply`` the text it got.
    """

    host: str
    version: str | None = None
    problem: str | None = None
    models: tuple[str, ...] = ()
    model: str | None = None
    model_present: bool | None = None
    capabilities: tuple[str, ...] | None = None
    logprobs: bool | None = None
    format_sent: str | None = None
    format_enforced: bool | None = None
    format_reply: str = ""

    @property
    def compatible(self) -> bool:
        return self.problem is None

    @property
    def schema_format(self) -> bool:
        """Whether the server's version takes a JSON Schema as ``format`` (0.5.0 and later)."""
        return self.version is not None and supports_schema_format(self.version)


def read_version(response: httpx.Response) -> tuple[str | None, str | None]:
    """(version, problem) from the answer to ``GET /api/version``: Ollama answers
    ``{"version": "0.12.3"}``; anything else is the problem, in words.

    >>> read_version(httpx.Response(200, json={"version": "0.12.3"}))
    ('0.12.3', None)
    >>> read_version(httpx.Response(404, text="<html>File not found</html>"))[1]
    '/api/version answered HTTP 404 (text/plain; charset=utf-8), not JSON'
    """
    data, problem = _json_of(response, "/api/version")
    if problem is not None:
        return None, problem
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.strip():
        return None, f"/api/version answered {_shown(response.text)}, without a version"
    return version.strip(), None


def read_tags(response: httpx.Response) -> tuple[tuple[str, ...], str | None]:
    """(model names, problem) from the answer to ``GET /api/tags``: Ollama answers
    ``{"models": [{"name": ...}, ...]}``.

    >>> read_tags(httpx.Response(200, json={"models": [{"name": "llama3.2:latest"}]}))
    (('llama3.2:latest',), None)
    """
    data, problem = _json_of(response, "/api/tags")
    if problem is not None:
        return (), problem
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return (), f"/api/tags answered {_shown(response.text)}, without a list of models"
    names = (m.get("name") or m.get("model") for m in models if isinstance(m, dict))
    return tuple(str(n) for n in names if n), None


def _json_of(response: httpx.Response, path: str) -> tuple[Any, str | None]:
    kind = response.headers.get("content-type", "no content type")
    if response.status_code != 200:
        return None, f"{path} answered HTTP {response.status_code} ({kind}), not JSON"
    try:
        return response.json(), None
    except (ValueError, RecursionError):
        return None, f"{path} answered {_shown(response.text)} ({kind}), not JSON"


def _shown(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= SHOWN_CHARS else flat[:SHOWN_CHARS] + "…")


def logprobs_request(model: str, *, think_off: bool = False) -> GenerateRequest:
    """A tiny generation that asks for log-probabilities."""
    request: GenerateRequest = {
        "model": model,
        "prompt": LOGPROBS_PROBE_PROMPT,
        "stream": False,
        "logprobs": True,
        "top_logprobs": 1,
        "options": {"temperature": 0, "num_predict": 4},
    }
    if think_off:
        request["think"] = False
    return request


def format_request(model: str, *, schema: bool, think_off: bool = False) -> GenerateRequest:
    """The format probe: the prompt asks for a word; ``format`` (the integer schema, or
    ``"json"`` for a server older than schema formats) forbids one."""
    request: GenerateRequest = {
        "model": model,
        "prompt": FORMAT_PROBE_PROMPT,
        "stream": False,
        "format": FORMAT_PROBE_SCHEMA if schema else "json",
        "options": {"temperature": 0, "num_predict": PROBE_NUM_PREDICT},
    }
    if think_off:
        request["think"] = False
    return request


def format_held(text: str, *, schema: bool) -> bool:
    """Whether the format probe's reply kept the format: an object with an integer
    ``answer`` (schema), or any JSON object (``"json"``).

    >>> format_held('{"answer": 3}', schema=True), format_held("Blue.", schema=True)
    (True, False)
    >>> format_held('{"answer": "blue"}', schema=True), format_held('{"a": 1}', schema=False)
    (False, True)
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False
    if not isinstance(value, dict):
        return False
    answer = value.get("answer")
    return not schema or (isinstance(answer, int) and not isinstance(answer, bool))


def probe_server(
    settings: Settings, model: str | None, *, transport: httpx.BaseTransport | None = None
) -> ServerFacts:
    """Ask the host at ``settings.host`` what it is and, given ``model``, what the model does.

    /api/version and /api/tags are read as they came (a 404 or an HTML page is a problem, not
    a very old Ollama); then, for a compatible host and a present model, one tiny generation
    asks for log-probabilities and one probes the format. Raises ConnectError when nothing
    answers, TransportError when the host fails mid-way, and RequestRejected when it refuses
    a probe (a 400 or 500 it sends for a ``format`` it cannot use, say).
    """
    client = httpx.Client(
        base_url=settings.host,
        headers=settings.headers(),
        timeout=settings.timeout,
        transport=transport,
    )
    with client, Transport(settings, transport=transport) as ollama:
        facts = ServerFacts(host=ollama.host)
        try:
            version, problem = read_version(client.get("/api/version"))
            models: tuple[str, ...] = ()
            if problem is None:
                models, problem = read_tags(client.get("/api/tags"))
        except httpx.ConnectError as exc:
            raise ConnectError(
                f"connection failed: {exc}; {START_SERVER_HINT}", host=ollama.host
            ) from None
        except httpx.HTTPError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", host=ollama.host) from None
        facts = dataclasses.replace(facts, version=version, problem=problem, models=models)
        if problem is not None or model is None:
            return facts
        return _model_facts(ollama, facts, model)


def _model_facts(ollama: Transport, facts: ServerFacts, model: str) -> ServerFacts:
    facts = dataclasses.replace(facts, model=model)
    try:
        show = ollama.show(model)
    except ModelNotFound:
        return dataclasses.replace(facts, model_present=False)
    caps = show.get("capabilities")
    capabilities = tuple(str(c) for c in caps) if isinstance(caps, list) else None
    facts = dataclasses.replace(facts, model_present=True, capabilities=capabilities)
    # A thinking model would put its answer in `thinking`, and `response` would be empty.
    think_off = "thinking" in (capabilities or ())
    scored = ollama.generate(logprobs_request(model, think_off=think_off))
    facts = dataclasses.replace(facts, logprobs=bool(scored.logprobs))
    schema = facts.schema_format
    try:
        reply: GenerateResult | None = ollama.generate(
            format_request(model, schema=schema, think_off=think_off)
        )
    except OutputError:
        reply = None  # cut off or runaway: the format did not hold the reply to an answer
    text = reply.text if reply is not None else ""
    return dataclasses.replace(
        facts,
        format_sent="schema" if schema else "json",
        format_enforced=reply is not None and format_held(text, schema=schema),
        format_reply=_shown(text) if text else "(no usable reply)",
    )
