"""Shared fixtures and helpers: a clean environment for every test, scripted Ollama servers on
demand, the batch and server tests' common pieces, and skips for extras that are not installed.

Larger helpers shared by a few modules live beside this file, in modules that are not tests:
``soak_harness`` (the fault soak), ``fuzzing`` (hypothesis strategies), ``grammar_support``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import tenacity
from pydantic import BaseModel

from extract import ConfigError, TransportError
from extract.server import Final, Job, Reply, ScriptedEngine, default_model_path, serve

MARK = re.compile(r"<<(\d+)(?::(\w+))?>>")
ENV_VARS = ("OLLAMA_HOST", "OLLAMA_API_KEY", "EXTRACT_MODEL", "EXTRACT_CACHE", "XDG_CACHE_HOME")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No host, key, model or cache location leaks in from the machine running the tests."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # Whatever a test caches lands in a temporary directory, never in ~/.cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


def rss() -> int:
    """This process's resident memory in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


@dataclasses.dataclass
class Scripted:
    """A running scripted server: its engine (script, requests) and its URL."""

    engine: ScriptedEngine
    url: str

    def generates(self) -> list[dict[str, Any]]:
        """The bodies of the /api/generate requests it received."""
        return [r.body for r in self.engine.requests if r.path == "/api/generate"]


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    """Start scripted servers: ``scripted(slots=2, latency=0.01, responder=...)``.

    Keyword arguments go to ``ScriptedEngine`` (the model is ``tiny`` unless given); every
    server started stops when the test ends.
    """
    with contextlib.ExitStack() as stack:

        def start(**engine_args: Any) -> Scripted:
            engine = ScriptedEngine(**{"models": ("tiny",), **engine_args})
            server = stack.enter_context(serve(engine))
            return Scripted(engine, server.url)

        yield start


def logprob_entry(token: str, **alternatives: float) -> dict[str, Any]:
    """One wire logprob entry: ``token``, chosen, with ``alternatives`` as its top list."""
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives.items()]
    chosen = alternatives.get(token, -0.01)
    return {"token": token, "logprob": chosen, "bytes": list(token.encode()), "top_logprobs": top}


def sentiment_reply(positive: float, negative: float, chosen: str = "positive") -> Reply:
    """A ``{"sentiment": ...}`` reply whose value token weighs the two options as given."""
    chunks = ['{"sentiment": "', chosen, '"}']
    logprobs = [
        [logprob_entry('{"sentiment": "')],
        [logprob_entry(chosen, positive=positive, negative=negative)],
        [logprob_entry('"}')],
    ]
    return Reply.text("".join(chunks), chunks=chunks, logprobs=logprobs)


class Responder:
    """``<<n>>`` → ``{"n": n}``. Kinds: bad (never JSON), busy/cut/reset (that fault on the
    first try, then fine), reject (400), late (slower for smaller n), fail (500 always)."""

    def __init__(self) -> None:
        self.tries: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        found = MARK.search(str(body.get("prompt", "")))
        if found is None:
            return Reply.text("{}")
        n, kind = int(found[1]), found[2]
        with self._lock:
            self.tries[found[0]] += 1
            first = self.tries[found[0]] == 1
        good = json.dumps({"n": n})
        if kind == "bad":
            return Reply.text("not JSON at all")
        if kind == "busy" and first:
            return Reply.status(503)
        if kind == "cut" and first:
            return Reply.mid_stream_error(['{"n'], "model runner has unexpectedly stopped")
        if kind == "reset" and first:
            return Reply.reset()
        if kind == "reject":
            return Reply.status(400, "the input is too long")
        if kind == "fail":
            return Reply.status(500, "internal error")
        if kind == "late":
            return Reply.text(good, first_byte_delay=0.004 * (20 - n % 20))
        return Reply.text(good)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the loop extract targets."""
    return "asyncio"


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


# -- shared by the batch tests: the ``<<n>>`` schema, a quick retry policy, a scripted server --

N_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
# No other keys: Arrow can type the value as a struct.
N_CLOSED = {**N_SCHEMA, "additionalProperties": False}


class N(BaseModel):
    """``N_SCHEMA`` as a pydantic model."""

    n: int


class Person(BaseModel):
    """A small model for the extraction tests."""

    name: str
    age: int


def fast_retry(tries: int = 3) -> tenacity.Retrying:
    """``tries`` sends of a request after transport faults, 10 ms apart (a sync policy, which
    the async engines accept too)."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(tries),
        wait=tenacity.wait_fixed(0.01),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )


@pytest.fixture
def server(scripted: Callable[..., Scripted]) -> Scripted:
    """A scripted server with four slots that answers by ``Responder``."""
    return scripted(slots=4, responder=Responder())


@pytest.fixture
def engine() -> ScriptedEngine:
    """A scripted engine serving ``tiny``, and ``thinker``, a model that can only think; a
    module overrides it for other models."""
    return ScriptedEngine(models=("tiny", "thinker"), capabilities={"thinker": ["thinking"]})


@pytest.fixture
def url(engine: ScriptedEngine) -> Iterator[str]:
    """The URL of a server running ``engine``."""
    with serve(engine) as srv:
        yield srv.url


# -- shared by the server tests: an HTTP client, a generate call, a streamed reply's lines ----

BUSY = "server busy, please try again.  maximum pending requests exceeded"


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    """An HTTP client for the server at ``url``."""
    with httpx.Client(base_url=url, timeout=10) as c:
        yield c


def stream_lines(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The NDJSON lines of a streamed reply, which must be chunked and succeed."""
    with client.stream("POST", path, json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/x-ndjson"
        assert reply.headers["transfer-encoding"] == "chunked"
        return [json.loads(line) for line in reply.iter_lines()]


def generate(client: httpx.Client, **fields: Any) -> httpx.Response:
    """POST /api/generate for ``tiny`` with a short prompt, ``fields`` added or replaced."""
    return client.post("/api/generate", json={"model": "tiny", "prompt": "hi there", **fields})


# -- shared by the Ray tests: error cells, and servers that gauge their load -----------------


def error_type(text: Any) -> str | None:
    """The class name of an error cell's JSON, or None for a null cell (None, or pandas' NA)."""
    return str(json.loads(text)["type"]) if isinstance(text, str) else None


class Gauge(ScriptedEngine):
    """Records the most generate requests it ever held at once.

    A request counts from its arrival until just before its done line is written: within the
    time the client itself counts it in flight, so a client within its bound never shows more.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.now = self.peak = 0
        self._gauge = threading.Lock()

    def generate(self, job: Job, stop: threading.Event) -> Generator[Any, None, None]:
        with self._gauge:
            self.now += 1
            self.peak = max(self.peak, self.now)
        counted = True
        try:
            for event in super().generate(job, stop):
                if isinstance(event, Final):
                    counted = self._leave()
                yield event
        finally:
            if counted:
                self._leave()

    def _leave(self) -> bool:
        with self._gauge:
            self.now -= 1
        return False


@pytest.fixture
def gauges() -> Iterator[list[tuple[Gauge, str]]]:
    """Two hosts that each run two requests at once (a third waits for a slot)."""
    engines = [
        Gauge(models=("tiny",), slots=2, latency=0.005, responder=Responder()) for _ in range(2)
    ]
    servers = [serve(e) for e in engines]
    try:
        yield [(e, s.url) for e, s in zip(engines, servers, strict=True)]
    finally:
        for s in servers:
            s.stop()


# -- optional extras: without them their tests skip, saying what to install -------------------

# The top-level module of each optional dependency the tests meet, and how to install it.
EXTRAS = {
    "llama_cpp": "llama-cpp-python: pip install '.[local]'",
    "ray": "ray: pip install '.[ray]'",
    "pyarrow": "pyarrow: pip install '.[ray]'",
}


def real_model_missing() -> str | None:
    """Why the real-model tests cannot run here (what to install), or None when they can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"needs {EXTRAS['llama_cpp']}"
    try:
        default_model_path()
    except ConfigError as exc:
        return f"needs the model file: {exc.message}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if "real_model" in item.keywords]
    if not marked or (reason := real_model_missing()) is None:
        return
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=f"real model: {reason}"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name the extras that are not installed: the package modules that import them are
    skipped by the doctest collector with a bare "unable to import module"."""
    missing = [hint for name, hint in EXTRAS.items() if importlib.util.find_spec(name) is None]
    if missing:
        terminalreporter.write_sep("-", "optional extras not installed: their tests were skipped")
        for hint in missing:
            terminalreporter.write_line(hint)
