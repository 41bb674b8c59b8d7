"""The host pool and its adaptive windows, on a fake clock (no server needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tenacity

from extract import AsyncExtractor, ConnectError, ServerBusy, ServerError
from extract.batch import hosts as hosts_module
from extract.batch.hosts import (
    FAILURES_TO_SET_ASIDE,
    SET_ASIDE_FIRST,
    Host,
    HostPool,
    Window,
)

pytestmark = pytest.mark.anyio

BUSY = ServerBusy("busy", status=503)
DOWN = ConnectError("refused")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def grow(window: Window, replies: int, seconds: float = 0.1, start: float = 0.0) -> None:
    for i in range(replies):
        window.on_reply(seconds, start + i, saturated=True)


def test_window_slow_starts_then_grows_additively() -> None:
    window = Window(start=1, ceiling=32)
    grow(window, 3)
    assert window.size == 4  # slow start: one more slot per reply while latency is flat
    window.on_reply(0.4, 3.0, saturated=True)  # queueing shows: slow start ends, no growth
    assert window.size == 4
    grow(window, 30, start=4)
    assert 4 < window.size < 12  # then about one more slot per window's worth of replies
    grow(window, 1000, start=40)
    assert window.size == 32  # never above the ceiling


def test_window_does_not_grow_when_it_was_not_full() -> None:
    window = Window(start=2, ceiling=8)
    for i in range(20):
        window.on_reply(0.1, float(i), saturated=False)
    assert window.size == 2


def test_window_shrinks_when_latency_climbs() -> None:
    window = Window(start=8, ceiling=8)
    grow(window, 3, seconds=0.1)
    for i in range(10):
        window.on_reply(1.0, 10.0 + i * 2, saturated=True)
    assert window.size < 8
    assert window.size >= 1


def test_busy_halves_once_per_round_trip_and_never_below_one() -> None:
    window = Window(start=8, ceiling=8)
    grow(window, 1, seconds=1.0)
    window.on_busy(now=10.0)
    assert window.size == 4
    window.on_busy(now=10.5)  # replies to requests sent before the cut: no new information
    assert window.size == 4
    window.on_busy(now=11.5)
    assert window.size == 2
    for t in range(20):
        window.on_busy(now=20.0 + t * 2)
    assert window.size == 1


def test_fixed_concurrency_starts_at_its_ceiling() -> None:
    assert Window(start=4, ceiling=4).size == 4
    assert Window(start=1, ceiling=32).size == 1


@pytest.fixture
def extractor() -> AsyncExtractor:
    return AsyncExtractor("tiny", host="http://127.0.0.1:9")


def make_pool(extractor: AsyncExtractor, *sizes: int) -> tuple[HostPool, list[Host], Clock]:
    clock = Clock()
    hosts = [Host(f"h{i}", extractor, Window(size, size)) for i, size in enumerate(sizes)]
    return HostPool(hosts, clock=clock), hosts, clock


async def test_least_loaded_host_is_chosen(extractor: AsyncExtractor) -> None:
    pool, (a, b), _ = make_pool(extractor, 2, 4)
    chosen = [await pool.acquire() for _ in range(6)]
    assert chosen.count(a) == 2
    assert chosen.count(b) == 4
    assert a.in_flight == 2
    assert b.in_flight == 4


async def test_acquire_waits_for_a_release(extractor: AsyncExtractor) -> None:
    pool, (a,), _ = make_pool(extractor, 1)
    first = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    pool.answered(first, 0.1)
    pool.release(first)
    assert await asyncio.wait_for(waiter, 1) is a


async def test_repeated_failures_set_a_host_aside_then_it_is_probed(
    extractor: AsyncExtractor,
) -> None:
    pool, (a, b), clock = make_pool(extractor, 2, 2)
    for _ in range(FAILURES_TO_SET_ASIDE):
        pool.note(a, DOWN)
    assert not pool.usable(a)
    assert a.window.size == 1
    assert [await pool.acquire() for _ in range(2)] == [b, b]
    clock.now += SET_ASIDE_FIRST + 0.01
    assert pool.usable(a)
    assert await pool.acquire() is a
    pool.answered(a, 0.1)
    pool.release(a)
    assert a.failures == 0


async def test_set_aside_time_doubles_while_failures_continue(extractor: AsyncExtractor) -> None:
    pool, (a,), clock = make_pool(extractor, 1)
    for _ in range(FAILURES_TO_SET_ASIDE):
        pool.note(a, DOWN)
    first = a.aside_until - clock.now
    clock.now = a.aside_until
    pool.note(a, DOWN)
    assert a.aside_until - clock.now == pytest.approx(2 * first)


async def test_acquire_waits_out_a_set_aside_host(
    extractor: AsyncExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hosts_module, "SET_ASIDE_FIRST", 0.05)
    pool = HostPool([Host("h", extractor, Window(1, 1))])
    (host,) = pool.hosts
    for _ in range(FAILURES_TO_SET_ASIDE):
        pool.note(host, DOWN)
    assert not pool.usable(host)
    # Woken when the set-aside ends, not by a release: nothing else is in flight.
    assert await asyncio.wait_for(pool.acquire(), 2) is host


async def test_woken_waiters_are_served_first_come_first_served(
    extractor: AsyncExtractor,
) -> None:
    pool, (a,), _ = make_pool(extractor, 1)
    first = await pool.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        host = await pool.acquire()
        order.append(n)
        pool.release(host)

    waiters = [asyncio.create_task(wait(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    pool.release(first)
    await asyncio.wait_for(asyncio.gather(*waiters), 2)
    assert order == [0, 1, 2, 3, 4]
    assert a.in_flight == 0


async def test_a_cancelled_waiter_passes_its_turn_on(extractor: AsyncExtractor) -> None:
    pool, (a,), _ = make_pool(extractor, 1)
    first = await pool.acquire()
    doomed = asyncio.create_task(pool.acquire())
    patient = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(first)  # wakes `doomed`...
    doomed.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(patient, 2) is a


async def test_an_answer_resets_failures_and_lifts_a_pause(extractor: AsyncExtractor) -> None:
    pool, (a,), clock = make_pool(extractor, 4)
    host = await pool.acquire()
    pool.note(a, BUSY)
    pool.note(a, DOWN)
    pool.answered(host, None)
    pool.release(host)
    assert (a.failures, a.busy_streak, a.in_flight) == (0, 0, 0)
    assert a.ready(clock.now)


async def test_busy_pauses_the_host_and_shrinks_its_window(extractor: AsyncExtractor) -> None:
    pool, (a, b), clock = make_pool(extractor, 4, 1)
    pool.note(a, BUSY)
    assert a.window.size == 2
    assert a.paused_until > clock.now
    assert pool.usable(a)  # busy is not broken: retries may go on
    assert await pool.acquire() is b
    assert a.failures == 0


async def test_server_errors_count_towards_setting_aside(extractor: AsyncExtractor) -> None:
    pool, (a,), _ = make_pool(extractor, 1)
    host = await pool.acquire()
    pool.note(host, ServerError("boom", status=500))
    pool.release(host)
    assert a.failures == 1
    assert a.in_flight == 0


async def failing(policy: tenacity.AsyncRetrying, error: Exception) -> int:
    """Run a call that always raises ``error`` under ``policy``; the number of calls made."""
    calls = 0
    try:
        async for attempt in policy:
            with attempt:
                calls += 1
                raise error
    except type(error):
        return calls
    raise AssertionError("the policy swallowed the error")


async def test_policy_reports_each_failed_try_and_stops_on_a_set_aside_host(
    extractor: AsyncExtractor,
) -> None:
    pool, (a,), _ = make_pool(extractor, 4)
    seen: list[Any] = []
    base = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(10),
        retry=tenacity.retry_if_exception_type(ConnectError),
        before_sleep=lambda state: seen.append(state.attempt_number),
        reraise=True,
    )
    calls = await failing(pool.policy(a, base), ConnectError("refused"))
    # Set aside after FAILURES_TO_SET_ASIDE tries; one more try was already scheduled.
    assert calls == FAILURES_TO_SET_ASIDE + 1
    assert seen == list(range(1, FAILURES_TO_SET_ASIDE + 1))  # the user's hook still runs


async def test_policy_chains_an_async_hook(extractor: AsyncExtractor) -> None:
    pool, (a,), _ = make_pool(extractor, 4)
    seen: list[int] = []

    async def hook(state: tenacity.RetryCallState) -> None:
        seen.append(state.attempt_number)

    base = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(3), before_sleep=hook, reraise=True
    )
    await failing(pool.policy(a, base), ServerBusy("busy", status=503))
    assert seen == [1, 2]
    assert a.busy_streak == 2
