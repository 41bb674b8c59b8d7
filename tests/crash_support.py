"""An engine whose process dies on a marked document, for the process-isolation tests.

It runs inside an :class:`~extract.server.IsolatedEngine` child (which imports it by name), so
the crash it causes is a real one: the child is killed by SIGSEGV, as a fault in llama.cpp would.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Mapping
from typing import Any

from extract.server import IsolatedEngine, Reply, ScriptedEngine
from extract.server._engine import DEFAULT_VERSION
from extract.server._isolated import spec_for

CRASH_MARK = "<<crash>>"
_NUMBER = re.compile(r"<<(\d+)>>")


def crashing_engine(model: str) -> ScriptedEngine:
    """A scripted engine answering ``{"n": N}`` for ``<<N>>``; it kills its own process with
    SIGSEGV when the prompt holds :data:`CRASH_MARK`."""

    def respond(body: Mapping[str, Any]) -> Reply:
        prompt = str(body.get("prompt") or json.dumps(body.get("messages")))
        if CRASH_MARK in prompt:
            os.kill(os.getpid(), signal.SIGSEGV)
        found = _NUMBER.findall(prompt)
        return Reply.text(json.dumps({"n": int(found[-1]) if found else 0}))

    return ScriptedEngine(models=(model,), responder=respond)


def isolated_crashing_engine() -> IsolatedEngine:
    """:func:`crashing_engine` for the model ``tiny``, in a child process."""
    models = ScriptedEngine(models=("tiny",)).models()
    return IsolatedEngine(spec_for(crashing_engine, {}), models, DEFAULT_VERSION)
