"""Fault soak: a batch against a server that fails about one request in five, of every kind.

The promise to a data team is "nothing lost, every failure explained". The fault plan, the
scripted server and the figures are in ``soak_harness``.

Checked as the records stream out (nothing per document is kept, so memory can be measured):
exactly one record per input, in input order; an ok record carries its own document's value;
a failed record carries the typed error that its last fault calls for, after its retry budget
was spent; no other exception ends the run; memory stays flat. ``bench/soak.py`` runs the same
soak at 10k documents and prints the figures.
"""

from __future__ import annotations

import collections
import json

import httpx
import pytest
import tenacity
from soak_harness import FAULTS, SCHEMA, SoakConfig, good_reply, run_soak

from extract import Extractor, TransportError


@pytest.mark.soak
def test_fault_soak_loses_nothing_and_explains_every_failure() -> None:
    config = SoakConfig()
    figures = run_soak(config)
    print(f"\nfault soak, {config.docs} documents:\n{figures.table()}")
    assert figures.problems == []
    assert figures.records == figures.docs == config.docs
    assert figures.lost == 0
    # Every kind of fault happened, at about the planned rate.
    assert set(figures.injected) == set(FAULTS)
    assert 0.15 < sum(figures.injected.values()) / figures.requests < 0.35
    # Every document that met a fault was retried to success, or failed with its budget spent.
    assert figures.retried_to_success + sum(figures.failed.values()) == figures.docs_hit
    assert figures.retried_to_success > 0
    # Every doomed document failed, explained like the rest.
    assert figures.doomed == figures.planned_doomed > 0
    # Nothing is kept per document: the objects alive are those of the in-flight window (twice
    # the requests in flight), a handful each.
    assert figures.most_live < 20 * config.hosts * config.concurrency
    assert figures.rss_growth < 32 * 2**20


def flaky_endpoints(failures: collections.Counter[str]) -> httpx.MockTransport:
    """/api/version and /api/show each fail once (a reset, then a 500) before answering."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        failures[path] += 1
        if path in ("/api/version", "/api/show") and failures[path] == 1:
            raise httpx.ConnectError("connection reset by peer")
        if path in ("/api/version", "/api/show") and failures[path] == 2:
            return httpx.Response(500, json={"error": "model runner has unexpectedly stopped"})
        if path == "/api/version":
            return httpx.Response(200, json={"version": "0.33.0"})
        if path == "/api/show":
            return httpx.Response(200, json={"capabilities": ["completion"]})
        line = {"response": good_reply(1), "done": True, "done_reason": "stop"}
        return httpx.Response(200, content=json.dumps(line).encode() + b"\n")

    return httpx.MockTransport(handler)


def test_transient_faults_before_the_first_generate_are_retried_too() -> None:
    # The server's facts are one request to the policy (/api/version, then /api/show; a version
    # that answered is not asked again): two faults on each take five sends.
    retry = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_none(),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )
    failures: collections.Counter[str] = collections.Counter()
    transport = flaky_endpoints(failures)
    with Extractor("tiny", host="http://flaky:1", transport=transport, retry=retry) as extractor:
        assert extractor.extract("a document", SCHEMA).value == {"n": 1}
    assert failures == {"/api/version": 3, "/api/show": 3, "/api/generate": 1}
