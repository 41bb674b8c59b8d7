"""An Ollama-compatible HTTP server on loopback, with two engines.

- :class:`ScriptedEngine` plays exact replies and faults and records every request: how the
  project's tests run without Ollama.
- :class:`LlamaEngine` runs a real GGUF model with llama.cpp (the ``local`` extra), each model
  in a child process so that a native crash fails the request (:class:`EngineCrashed`, a 500)
  instead of the server: how ``extract`` works on a fresh machine, and a fair baseline for
  benchmarks. :class:`InProcessLlamaEngine` runs it in the calling process.

Both sit behind the same HTTP layer: routes, validation with Ollama's statuses and messages,
NDJSON streams, metrics in nanoseconds.

>>> with serve(ScriptedEngine()) as srv:
...     srv.url.startswith("http://127.0.0.1:")
True
"""

from ._engine import Disconnect, Engine, EngineCrashed, Event, Fault, Final, Job, ModelEntry
from ._http import RunningServer, run_forever, serve
from ._isolated import IsolatedEngine
from .llama import DEFAULT_LOCAL_MODEL, InProcessLlamaEngine, LlamaEngine, default_model_path
from .scripted import RecordedRequest, Reply, ScriptedEngine

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "Disconnect",
    "Engine",
    "EngineCrashed",
    "Event",
    "Fault",
    "Final",
    "InProcessLlamaEngine",
    "IsolatedEngine",
    "Job",
    "LlamaEngine",
    "ModelEntry",
    "RecordedRequest",
    "Reply",
    "RunningServer",
    "ScriptedEngine",
    "default_model_path",
    "run_forever",
    "serve",
]
