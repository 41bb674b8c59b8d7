"""Shared fixtures: a clean environment for every test, and scripted Ollama servers on demand."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from extract.server import Reply, ScriptedEngine, serve

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
