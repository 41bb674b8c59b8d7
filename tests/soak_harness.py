"""The fault soak's harness: a seeded fault plan, the scripted server it drives, the figures.

``tests/test_soak.py`` runs it at CI size, ``tests/test_crash_resume.py`` reuses its plan for
the ``extract label`` command, and ``bench/soak.py`` runs both at full size.

A scripted server answers each request with a fault or the right reply, chosen by a seeded RNG
from the document id (read back out of the prompt) and the number of requests that document
has made so far, so the same run always meets the same faults and a retry can succeed. A few
documents are doomed: every request they make meets the same fault, so the run also has
failures to explain.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import gc
import json
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import tenacity
from conftest import rss

from extract import (
    ConnectError,
    ExtractError,
    Extraction,
    InvalidJSON,
    Labeling,
    Record,
    RequestTimeout,
    RunawayOutput,
    SchemaMismatch,
    ServerBusy,
    ServerError,
    StreamError,
    TransportError,
    TruncatedOutput,
)
from extract.batch.records import Document
from extract.core.flow import AttemptFlow
from extract.server import Reply, ScriptedEngine, serve
from extract.server.scripted import split_chunks

CI_DOCS = 2_000
SEED = 7_2026
FAULT_RATE = 0.2
DOOMED_RATE = 0.005
SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
    "additionalProperties": False,
}
DOC_MARK = re.compile(r"\[doc (\d+)\]")
OK = "ok"


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """One kind of fault: how the server plays it, and what the client must report for it."""

    name: str
    error: type[ExtractError]
    transport: bool  # True: resent as is after a back-off; False: re-asked with the error
    weight: float
    reply: Callable[[int, float], Reply]


def good_reply(doc: int) -> str:
    return json.dumps({"n": doc})


FAULTS = {
    f.name: f
    for f in (
        Fault("connection reset", ConnectError, True, 1.0, lambda d, h: Reply.reset()),
        Fault("reset mid-stream", ConnectError, True, 1.0, lambda d, h: Reply.reset(['{"n": '])),
        Fault(
            "HTTP 500",
            ServerError,
            True,
            1.0,
            lambda d, h: Reply.status(500, "model runner has unexpectedly stopped"),
        ),
        Fault("HTTP 503 busy", ServerBusy, True, 1.0, lambda d, h: Reply.status(503)),
        Fault(
            "error line mid-stream",
            StreamError,
            True,
            1.0,
            lambda d, h: Reply.mid_stream_error(['{"n": '], "llama runner process has terminated"),
        ),
        Fault(
            "stream cut, no done line",
            TruncatedOutput,
            False,
            1.0,
            lambda d, h: Reply.cut(['{"n": ', str(d)]),
        ),
        Fault(
            "done: false",
            TruncatedOutput,
            False,
            1.0,
            lambda d, h: Reply.cut(split_chunks(good_reply(d))),
        ),
        Fault("whitespace flood", RunawayOutput, False, 1.0, lambda d, h: Reply.whitespace(400)),
        Fault(
            "malformed JSON",
            InvalidJSON,
            False,
            1.0,
            lambda d, h: Reply.text("Sure! The number you want is seven."),
        ),
        Fault(
            "schema-invalid JSON",
            SchemaMismatch,
            False,
            1.0,
            lambda d, h: Reply.text('{"n": "seven"}'),
        ),
        # Rarer: each one costs a whole read timeout.
        Fault("slow first byte", RequestTimeout, True, 0.25, lambda d, h: Reply.hang(h)),
    )
}


@dataclasses.dataclass(frozen=True, slots=True)
class SoakConfig:
    """One soak run: its size, its faults, and the client's budgets."""

    docs: int = CI_DOCS
    seed: int = SEED
    fault_rate: float = FAULT_RATE
    doomed_rate: float = DOOMED_RATE
    hosts: int = 2
    concurrency: int = 8  # requests in flight per host
    read_timeout: float = 0.5
    max_attempts: int = 3  # model calls per document (re-asks after unusable output)
    transport_tries: int = 4  # sends of one request (retries after transport faults)
    faults: tuple[str, ...] = tuple(FAULTS)  # the kinds to inject


class FaultPlan:
    """The scripted server's responder: a fault or the right reply, by (document, request).

    Every request is logged per document until ``take`` collects that document's history.
    """

    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        # Far past the read timeout: even a client stalled for a moment must have given up.
        self.hang = config.read_timeout * 4
        self._names = list(config.faults)
        self._weights = [FAULTS[n].weight for n in self._names]
        self._lock = threading.Lock()
        self._served: dict[int, list[str]] = {}
        self.injected: collections.Counter[str] = collections.Counter()
        self.requests = 0

    def doom(self, doc: int) -> str | None:
        """The fault every request of a doomed document meets, else None."""
        rng = random.Random(f"{self.config.seed}/doom/{doc}")
        if rng.random() < self.config.doomed_rate:
            return rng.choices(self._names, self._weights)[0]
        return None

    def kind(self, doc: int, request: int) -> str:
        """What the ``request``-th request (0-based) of ``doc`` meets: a fault's name or OK."""
        doomed = self.doom(doc)
        if doomed is not None:
            return doomed
        rng = random.Random(f"{self.config.seed}/{doc}/{request}")
        if rng.random() < self.config.fault_rate:
            return rng.choices(self._names, self._weights)[0]
        return OK

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        # A re-ask carries the original prompt, so the first mark is always the document's.
        found = DOC_MARK.search(str(body.get("prompt", "")))
        assert found is not None, "every soak prompt names its document"
        doc = int(found[1])
        with self._lock:
            history = self._served.setdefault(doc, [])
            kind = self.kind(doc, len(history))
            history.append(kind)
            self.requests += 1
            if kind != OK:
                self.injected[kind] += 1
        return Reply.text(good_reply(doc)) if kind == OK else FAULTS[kind].reply(doc, self.hang)

    def planned_doomed(self) -> int:
        """How many of the documents are doomed."""
        return sum(self.doom(doc) is not None for doc in range(self.config.docs))

    def seen(self, doc: int) -> int:
        """How many requests ``doc`` has made so far."""
        with self._lock:
            return len(self._served.get(doc, ()))

    def take(self, doc: int) -> list[str]:
        """What ``doc``'s requests met, in order; forgotten afterwards."""
        with self._lock:
            return self._served.pop(doc, [])


class QuietEngine(ScriptedEngine):
    """A scripted engine that keeps no record of requests, so its memory stays flat."""

    def observe(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        return None


@dataclasses.dataclass
class Figures:
    """What a soak run did, for the assertions and for the closing table."""

    docs: int = 0
    records: int = 0
    requests: int = 0
    injected: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    docs_hit: int = 0
    retried_to_success: int = 0
    failed: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    doomed: int = 0
    planned_doomed: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    most_live: int = 0
    rss_growth: int = 0

    def tally(self, line: Mapping[str, Any], history: list[str], plan: FaultPlan) -> None:
        """Count one output line, and note it when it breaks the promise."""
        if (problem := explain(line, history, plan.config)) is not None:
            self.problems.append(problem)
        faults = [kind for kind in history if kind != OK]
        self.docs_hit += bool(faults)
        if line["ok"]:
            self.retried_to_success += bool(faults)
        else:
            self.failed[error_name(line)] += 1
            self.doomed += plan.doom(line["id"]) is not None

    @property
    def lost(self) -> int:
        return self.docs - self.records

    def table(self) -> str:
        """The figures as a plain-text table."""
        rows = [
            ("documents", self.docs),
            ("records written", self.records),
            ("model requests", self.requests),
            ("faults injected", sum(self.injected.values())),
            *((f"  {name}", self.injected[name]) for name in FAULTS),
            ("documents that met a fault", self.docs_hit),
            ("retried to success", self.retried_to_success),
            ("failed (typed error)", sum(self.failed.values())),
            *((f"  {name}", n) for name, n in sorted(self.failed.items())),
            ("  of which doomed by design", self.doomed),
            ("documents doomed by the plan", self.planned_doomed),
            ("lost", self.lost),
            ("unexplained", len(self.problems)),
            ("most per-document objects alive", self.most_live),
            ("RSS growth after warm-up (MiB)", round(self.rss_growth / 2**20, 1)),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value:>8}" for label, value in rows)


def error_name(line: Mapping[str, Any]) -> str:
    """The class that explains a failed output line: the last error of an ExtractionFailed."""
    error = line["error"]
    if error["type"] == "ExtractionFailed":
        return f"ExtractionFailed({error['last_error']['type']})"
    return str(error["type"])


def explain(line: Mapping[str, Any], history: list[str], config: SoakConfig) -> str | None:
    """Why an output line breaks the promise, given what its document's requests met; None
    when it keeps it. ``line`` is ``Record.to_json()``, as the output file holds it."""
    doc = line["id"]
    if line["ok"]:
        if line["value"] != {"n": doc}:
            return f"doc {doc}: value {line['value']!r} is another document's"
        if history and history[-1] != OK:
            return f"doc {doc}: ok although its last request met {history[-1]!r}"
        return None
    if not history:
        return f"doc {doc}: failed without a single request ({error_name(line)})"
    last = history[-1]
    if last == OK:
        return f"doc {doc}: failed ({error_name(line)}) after a good reply"
    fault = FAULTS[last]
    if fault.transport:
        if line["error"]["type"] != fault.error.__name__:
            return f"doc {doc}: {last!r} reported as {error_name(line)}"
        # The request was sent `transport_tries` times before giving up on it.
        streak = len(history) - len(_rstrip_transport(history))
        if streak < config.transport_tries:
            return (
                f"doc {doc}: gave up after {streak} sends of a request, the budget is "
                f"{config.transport_tries} (history {history})"
            )
        return None
    if error_name(line) != f"ExtractionFailed({fault.error.__name__})":
        return f"doc {doc}: {last!r} reported as {error_name(line)}"
    if line["attempts"] != config.max_attempts:
        return f"doc {doc}: failed after {line['attempts']} of {config.max_attempts} calls"
    return None


def _rstrip_transport(history: list[str]) -> list[str]:
    end = len(history)
    while end and history[end - 1] != OK and FAULTS[history[end - 1]].transport:
        end -= 1
    return history[:end]


def documents(count: int) -> Iterator[dict[str, Any]]:
    """The soak's input, generated lazily: ids 0..count-1, each text naming its id."""
    for doc in range(count):
        yield {
            "id": doc,
            "text": f"Ticket [doc {doc}]: the customer says invoice {doc * 7919 % 10007} "
            "was charged twice and asks for a refund.",
        }


# Objects that exist once per document in flight: their count must not grow with the input.
PER_DOCUMENT = (Record, Document, Extraction, AttemptFlow, asyncio.Task)


def live_objects() -> int:
    """How many per-document objects the garbage collector can see right now."""
    counts = collections.Counter(map(type, gc.get_objects()))
    return sum(counts[kind] for kind in PER_DOCUMENT)


async def _run(config: SoakConfig, urls: list[str], plan: FaultPlan, figures: Figures) -> None:
    retry = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(config.transport_tries),
        wait=tenacity.wait_none(),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )
    warm_up, sample_every = max(1, config.docs // 5), max(1, config.docs // 10)
    baseline = 0
    # The faults are stream faults: keep every request streamed, as against a real model, even
    # though the scripted server is fast enough to be sent `stream: false`.
    async with Labeling(
        SCHEMA,
        model="tiny",
        hosts=urls,
        concurrency=config.concurrency,
        retry=retry,
        max_attempts=config.max_attempts,
        timeout=config.read_timeout,
        stream=True,
    ) as session:
        async for record in session.aresults(documents(config.docs)):
            if record.id != figures.records:
                figures.problems.append(f"record {figures.records} has id {record.id!r}")
            figures.records += 1
            figures.tally(record.to_json(), plan.take(record.id), plan)
            if figures.records == warm_up:
                baseline = rss()
            if figures.records % sample_every == 0:
                figures.most_live = max(figures.most_live, live_objects())
                if figures.records > warm_up:
                    figures.rss_growth = max(figures.rss_growth, rss() - baseline)


def run_soak(config: SoakConfig) -> Figures:
    """Label ``config.docs`` documents through a faulty scripted server; return the figures."""
    plan = FaultPlan(config)
    figures = Figures(docs=config.docs, planned_doomed=plan.planned_doomed())
    with contextlib.ExitStack() as servers:
        urls = [
            servers.enter_context(
                serve(QuietEngine(slots=4 * config.concurrency, responder=plan))
            ).url
            for _ in range(config.hosts)
        ]
        asyncio.run(_run(config, urls, plan, figures))
    figures.requests = plan.requests
    figures.injected = plan.injected
    return figures
