"""The batch engine against scripted servers: order, exactly-once, cache, back-off, hosts.

Replies are derived from each document's text (``<<n>>`` → ``{"n": n}``, ``<<n:kind>>`` →
a fault), never from arrival order, so concurrent runs stay deterministic.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tenacity
from conftest import N_SCHEMA, N, Responder, Scripted, fast_retry

from extract import (
    BadRequest,
    Cache,
    ConfigError,
    ConnectError,
    ExtractionFailed,
    InputError,
    Labeling,
    ModelNotFound,
    Record,
    SchemaError,
)
from extract.server import Reply

Labeler = Callable[..., list[Record]]


@pytest.fixture
def label(server: Scripted) -> Labeler:
    """``label(records, schema=N_SCHEMA, **options)``: every record of one session's run on
    ``server``, with a quick retry policy unless ``options`` give one."""

    def run(records: Any, schema: Any = N_SCHEMA, **options: Any) -> list[Record]:
        with Labeling(
            schema, model="tiny", hosts=server.url, **{"retry": fast_retry(4), **options}
        ) as session:
            return list(session.results(records))

    return run


def docs(*specs: str) -> list[dict[str, Any]]:
    return [{"id": f"d{i}", "text": f"Ticket <<{spec}>> please"} for i, spec in enumerate(specs)]


def test_records_come_in_input_order(label: Labeler) -> None:
    inputs = docs(*(f"{n}:late" for n in range(30)))
    records = label(inputs, concurrency=4)
    assert [r.id for r in records] == [d["id"] for d in inputs]
    assert [r.value for r in records] == [{"n": n} for n in range(30)]
    assert all(r.ok and r.attempts == 1 and not r.cached for r in records)
    assert all((r.usage.eval_count or 0) > 0 for r in records)


def test_unordered_gives_each_record_once(label: Labeler) -> None:
    inputs = docs(*(f"{n}:late" for n in range(30)))
    records = label(inputs, concurrency=4, ordered=False)
    assert sorted(r.value["n"] for r in records) == list(range(30))
    assert len({r.id for r in records}) == 30


def test_one_record_per_input_with_failures_as_values(label: Labeler, server: Scripted) -> None:
    specs = ["0", "1:bad", "2:busy", "3:cut", "4:reset", "5:reject", "6", "7:bad"]
    inputs: list[Any] = [*docs(*specs), {"id": "empty", "text": "  "}, {"id": "notext"}, 42]
    records = label(inputs, concurrency=3, max_attempts=2)
    assert [r.id for r in records] == [*(f"d{i}" for i in range(8)), "empty", "notext", None]
    assert [r.line for r in records] == list(range(1, 12))
    outcome = {r.id: (type(r.error).__name__ if r.error else "ok") for r in records}
    assert outcome == {
        "d0": "ok",
        "d1": "ExtractionFailed",
        "d2": "ok",
        "d3": "ok",
        "d4": "ok",
        "d5": "BadRequest",
        "d6": "ok",
        "d7": "ExtractionFailed",
        "empty": "InputError",
        "notext": "InputError",
        None: "InputError",
    }
    failed = next(r for r in records if r.id == "d1")
    assert isinstance(failed.error, ExtractionFailed)
    assert failed.attempts == 2
    assert failed.usage.eval_count  # the failed attempts' tokens are counted
    assert failed.to_json()["error"]["type"] == "ExtractionFailed"
    rejected = next(r for r in records if r.id == "d5")
    assert isinstance(rejected.error, BadRequest)
    # Nothing was sent for the inputs that could not be sent.
    prompts = " ".join(b["prompt"] for b in server.generates())
    assert "<<" in prompts
    assert "  " not in {b["prompt"] for b in server.generates()}


def test_strings_and_passthrough_fields(label: Labeler) -> None:
    inputs = ["<<1>>", {"key": "k", "body": "<<2>>", "lang": "en"}]
    records = label(inputs, id_field="key", text_field="body")
    assert [(r.id, r.line, r.value, r.fields) for r in records] == [
        (None, 1, {"n": 1}, {}),
        ("k", 2, {"n": 2}, {"lang": "en"}),
    ]


def test_pydantic_schema_gives_instances_and_json_lines(label: Labeler) -> None:
    [record] = label(["<<5>>"], N)
    assert record.value == N(n=5)
    line = record.to_json()
    assert line["value"] == {"n": 5}
    assert line["ok"] is True
    assert line["attempts"] == 1
    assert line["cached"] is False
    assert json.dumps(line)


def test_memory_is_bounded_by_the_window(server: Scripted) -> None:
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        while True:
            pulled += 1
            yield f"<<{pulled}>>"

    with Labeling(N_SCHEMA, model="tiny", hosts=server.url, concurrency=2) as session:
        stream = session.results(endless())
        seen = [next(stream) for _ in range(50)]
        stream.close()  # type: ignore[attr-defined]
    assert [r.value["n"] for r in seen] == list(range(1, 51))
    # The window (16 at concurrency 2) plus the hand-over buffer to this thread (64).
    assert pulled <= 50 + 16 + 64


@pytest.mark.anyio
async def test_async_api_with_an_async_iterable(server: Scripted) -> None:
    async def source() -> AsyncIterator[str]:
        for n in range(12):
            yield f"<<{n}>>"

    retry = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(4), wait=tenacity.wait_fixed(0.01), reraise=True
    )
    async with Labeling(N_SCHEMA, model="tiny", hosts=server.url, retry=retry) as session:
        records = [r async for r in session.aresults(source())]
    assert [r.value for r in records] == [{"n": n} for n in range(12)]
    assert [(r.id, r.line) for r in records] == [(None, n) for n in range(1, 13)]


@pytest.mark.anyio
async def test_async_window_bounds_reading(server: Scripted) -> None:
    pulled = 0

    async def source() -> AsyncIterator[str]:
        nonlocal pulled
        for n in range(1000):
            pulled += 1
            yield f"<<{n}>>"

    async with Labeling(N_SCHEMA, model="tiny", hosts=server.url, concurrency=2) as session:
        taken = 0
        stream = session.aresults(source())
        async for _ in stream:
            taken += 1
            if taken == 20:
                break
        await stream.aclose()  # type: ignore[attr-defined]
    assert pulled <= 20 + 16 + 1


def test_cache_makes_a_rerun_free_and_a_new_schema_recomputes(
    label: Labeler, server: Scripted, cache_file: Path
) -> None:
    inputs = ["<<1>>", "<<2>>", "<<3:bad>>", "<<2>>"]
    first = label(inputs, cache=cache_file, max_attempts=1)
    sent = len(server.generates())
    assert sent == 4  # the cache is read before the run: no sharing between in-flight twins
    again = label(inputs, cache=cache_file, max_attempts=1)
    assert len(server.generates()) == sent + 1  # only the failed one is asked again
    assert [r.cached for r in again] == [True, True, False, True]
    assert [r.value for r in again] == [r.value for r in first]
    assert again[0].attempts == 0
    assert again[0].usage.eval_count is None
    with Cache(cache_file) as cache:
        typed = label(inputs[:2], N, cache=cache)
    assert [r.value for r in typed] == [N(n=1), N(n=2)]
    assert len(server.generates()) == sent + 3  # a changed schema is a new key


def test_no_cache_by_default_and_a_session_labels_batch_after_batch(server: Scripted) -> None:
    def shows() -> int:
        return [r.path for r in server.engine.requests].count("/api/show")

    with Labeling(N_SCHEMA, model="tiny", hosts=server.url) as session:
        first = list(session.results(["<<1>>"]))
        asked = shows()
        second = list(session.results(["<<1>>", "<<2>>"]))
    assert [r.value for r in [*first, *second]] == [{"n": 1}, {"n": 1}, {"n": 2}]
    assert len(server.generates()) == 3
    # What the session learned of the host carries over: the second batch asks nothing again.
    assert shows() == asked


def test_a_batch_asks_each_host_for_the_model_once(server: Scripted) -> None:
    with Labeling(N_SCHEMA, model="tiny", hosts=server.url) as session:
        records = list(session.results(["<<1>>", "<<2>>", "<<3>>"]))
    assert [r.value for r in records] == [{"n": 1}, {"n": 2}, {"n": 3}]
    # The model check before the run fills the facts every call reads.
    assert [r.path for r in server.engine.requests].count("/api/show") == 1


def test_503_shrinks_the_window_and_every_record_lands(scripted: Callable[..., Scripted]) -> None:
    # One slot and no queue: whatever exceeds one request in flight is refused with 503.
    server = scripted(slots=1, max_queue=0, latency=0.01, responder=Responder())
    inputs = [f"<<{n}>>" for n in range(40)]
    retry = fast_retry(8)
    with Labeling(N_SCHEMA, model="tiny", hosts=server.url, retry=retry, concurrency=4) as session:
        records = list(session.results(inputs))
    assert [r.value for r in records] == [{"n": n} for n in range(40)]
    assert all(r.ok for r in records)
    # Were the window stuck at 4, three of every four requests would be refused: about 120 for
    # 40 records. A window that shrinks, then probes upward again now and then (additive
    # increase), is refused far less; 40 was seen on a full run, so the bound sits between.
    refused = len(server.generates()) - 40
    assert refused < 2 * 40


def test_work_spreads_over_hosts(scripted: Callable[..., Scripted]) -> None:
    a = scripted(slots=2, latency=0.01, responder=Responder())
    b = scripted(slots=2, latency=0.01, responder=Responder())
    with Labeling(N_SCHEMA, model="tiny", hosts=[a.url, b.url]) as session:
        records = list(session.results([f"<<{n}>>" for n in range(60)]))
    assert all(r.ok for r in records)
    assert len(a.generates()) + len(b.generates()) == 60
    assert len(a.generates()) > 5
    assert len(b.generates()) > 5


def test_failing_host_is_set_aside_and_its_work_is_not_lost(
    scripted: Callable[..., Scripted],
) -> None:
    good = scripted(slots=2, responder=Responder())
    broken = scripted(slots=2, responder=lambda body: Reply.status(500, "runner crashed"))
    hosts = [broken.url, good.url]
    with Labeling(N_SCHEMA, model="tiny", hosts=hosts, retry=fast_retry(2)) as session:
        records = list(session.results([f"<<{n}>>" for n in range(30)]))
    assert [r.value for r in records] == [{"n": n} for n in range(30)]
    assert len(good.generates()) == 30
    assert len(broken.generates()) < 12


def test_a_single_dead_host_makes_error_records_not_a_crash(label: Labeler) -> None:
    records = label(["<<1>>", "<<2:fail>>", "<<3>>"], retry=fast_retry(2))
    assert [r.ok for r in records] == [True, False, True]
    assert type(records[1].error).__name__ == "ServerError"


def test_preflight_stops_the_run_for_an_unknown_model(server: Scripted) -> None:
    session = Labeling(N_SCHEMA, model="nope", hosts=server.url)
    with session, pytest.raises(ModelNotFound):
        next(session.results(["<<1>>"]))
    assert server.generates() == []


def test_preflight_stops_the_run_for_an_unreachable_host() -> None:
    session = Labeling(N_SCHEMA, model="tiny", hosts="http://127.0.0.1:9")
    with session, pytest.raises(ConnectError):
        next(session.results(["<<1>>"]))


def test_preflight_leaves_out_a_dead_host_when_others_are_up(
    server: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    hosts = [server.url, "http://127.0.0.1:9"]
    with Labeling(N_SCHEMA, model="tiny", hosts=hosts) as session:
        records = list(session.results(["<<1>>", "<<2>>"]))
    assert [r.value for r in records] == [{"n": 1}, {"n": 2}]
    assert "leaving out a host" in caplog.text
    assert "127.0.0.1:9" in caplog.text


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"concurrency": 0}, ConfigError),
        ({"retry": -1}, ConfigError),
        ({"options": {"temperature": "hot"}}, ConfigError),
        ({"schema": {"type": "nonsense"}}, SchemaError),
    ],
)
def test_bad_arguments_fail_when_the_session_is_made(
    server: Scripted, arguments: dict[str, Any], error: type[Exception]
) -> None:
    kwargs = {"schema": N_SCHEMA, **arguments}
    with pytest.raises(error):
        Labeling(model="tiny", hosts=server.url, **kwargs)
    assert server.engine.requests == []


def test_an_input_iterable_that_raises_ends_the_run_with_its_error(label: Labeler) -> None:
    def broken() -> Iterator[str]:
        yield "<<1>>"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        label(broken())


def test_breaking_out_early_stops_cleanly(server: Scripted) -> None:
    with Labeling(N_SCHEMA, model="tiny", hosts=server.url, concurrency=2) as session:
        stream = session.results([f"<<{n}>>" for n in range(500)])
        first = [next(stream) for _ in range(3)]
        stream.close()  # type: ignore[attr-defined]
    assert [r.value for r in first] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert len(server.generates()) < 500


def test_empty_input_gives_no_records(label: Labeler) -> None:
    assert label([]) == []


def test_record_to_json_of_an_error() -> None:
    record = Record("x", False, error=InputError("the document is empty"), line=3)
    assert record.to_json() == {
        "id": "x",
        "line": 3,
        "ok": False,
        "error": {"type": "InputError", "message": "the document is empty"},
        "attempts": 0,
        "usage": {},
        "cached": False,
    }
