"""The server's own account of what a run cost: every generation it ran, with its counters.

A record of ``extract label`` carries the usage of its own attempts, but the content-free request
a calibrated run makes once (the same prompt about the document ``N/A``) belongs to no record.
:class:`MeteredEngine` wraps the llama.cpp engine and logs every generation it finishes: its
prompt (so the content-free one can be told apart) and the counters of its done line. The log
also checks the records: what the server ran must equal what the records say plus that request.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from extract.core.calibration import CONTENT_FREE_DOCUMENT
from extract.server import Event, Final, Job, LlamaEngine, ModelEntry

_CONTENT_FREE_TAIL = f"<document>\n{CONTENT_FREE_DOCUMENT}\n</document>"


@dataclasses.dataclass(frozen=True, slots=True)
class Cost:
    """Server time and tokens of some generations."""

    requests: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.requests + other.requests,
            self.seconds + other.seconds,
            self.prompt_tokens + other.prompt_tokens,
            self.output_tokens + other.output_tokens,
        )

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> Cost:
        """One generation's cost from its counters (Ollama's names, nanoseconds)."""
        return cls(
            1,
            int(metrics.get("total_duration") or 0) / 1e9,
            int(metrics.get("prompt_eval_count") or 0),
            int(metrics.get("eval_count") or 0),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Generation:
    """One finished generation: whether it was about the content-free document, and its cost."""

    content_free: bool
    cost: Cost


class MeteredEngine:
    """The llama.cpp engine, with a log of every generation it finished (thread-safe)."""

    def __init__(self, inner: LlamaEngine) -> None:
        self.inner = inner
        self._log: list[Generation] = []
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.inner.version

    def models(self) -> Sequence[ModelEntry]:
        return self.inner.models()

    def loaded(self) -> Sequence[ModelEntry]:
        return self.inner.loaded()

    def observe(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        self.inner.observe(path, body, headers)

    def load(self, model: str, keep_alive: float | None) -> str:
        return self.inner.load(model, keep_alive)

    def close(self) -> None:
        self.inner.close()

    def generate(self, job: Job, stop: threading.Event) -> Generator[Event, None, None]:
        for event in self.inner.generate(job, stop):
            if isinstance(event, Final):
                generation = Generation(
                    job.prompt.rstrip().endswith(_CONTENT_FREE_TAIL), Cost.of(event.metrics)
                )
                with self._lock:
                    self._log.append(generation)
            yield event

    def take(self) -> list[Generation]:
        """The generations logged since the last call, and a fresh log."""
        with self._lock:
            log, self._log = self._log, []
        return log
