"""Where each document goes: a pool of hosts, each with its own adaptive in-flight limit.

Ollama serves ``OLLAMA_NUM_PARALLEL`` requests at once (default 1) and queues the rest, so
sending more only adds waiting. Each host's ``Window`` starts at what the server is known to
run, grows by about one per window of replies while requests do not wait, and shrinks when
they wait (latency stretches past the server's own compute time) or the server answers 503
(its queue is full). A host that keeps failing is set aside for a while, then tried again with
one request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import tenacity

from ..errors import ServerBusy, TransportError

if TYPE_CHECKING:
    from ..client.extractor import AsyncExtractor

# Ollama's default OLLAMA_NUM_PARALLEL: the only number of slots a client can count on.
DEFAULT_START = 1
DEFAULT_CEILING = 32
# Stretch = latency / the server's compute time for the request, smoothed. Near 1 nothing
# waits; the window grows until a small queue keeps every slot busy (GROW_BELOW) and shrinks
# once requests wait about as long as they run (SHRINK_ABOVE).
GROW_BELOW = 1.5
SHRINK_ABOVE = 2.0
LATENCY_CUT = 0.75
BUSY_CUT = 0.5
SMOOTHING = 0.2
# Without server timings, latency is compared to its recent low instead; the low drifts up
# slowly so that longer documents (not queuing) become the new normal.
LOW_DRIFT = 0.005
# Below this, time is noise from the client itself, not the server.
LATENCY_FLOOR = 0.005
FAILURES_TO_SET_ASIDE = 3
SET_ASIDE_FIRST = 1.0
SET_ASIDE_MAX = 30.0
# How often a document that avoids its failed host looks again for room elsewhere.
AVOID_RECHECK = 0.05
BUSY_PAUSE_FIRST = 0.1
BUSY_PAUSE_MAX = 5.0


class Window:
    """An AIMD in-flight limit driven by how long requests wait, and by 503s. Pure: time is
    passed in.

    >>> w = Window(start=1, ceiling=4)
    >>> for now in range(6):  # replies that took as long as the server computed: no queue
    ...     w.on_reply(0.1, now, saturated=True, service=0.1)
    >>> w.size  # slow start: one more slot per reply until the first cut
    4
    >>> w.on_busy(now=10.0)
    >>> w.size
    2
    """

    def __init__(self, start: int, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(min(start, ceiling))
        self.latency: float | None = None
        self.stretch: float | None = None
        self._low: float | None = None
        self._cut_at = -math.inf
        # Until the first sign of queueing, grow by one per reply (doubling per round trip):
        # a batch of thousands should not spend its first minute probing one slot at a time.
        self._slow_start = True

    @property
    def size(self) -> int:
        return max(1, int(self.limit))

    def on_reply(
        self, seconds: float, now: float, *, saturated: bool, service: float | None = None
    ) -> None:
        """One model call took ``seconds``, of which the server computed for ``service`` (None
        when it did not say); ``saturated`` when the window was full."""
        seconds = max(seconds, LATENCY_FLOOR)
        stretch = seconds / max(service, LATENCY_FLOOR) if service else self._over_low(seconds)
        self.latency = _smooth(self.latency, seconds)
        self.stretch = _smooth(self.stretch, stretch)
        if self.stretch > SHRINK_ABOVE:
            self._cut(LATENCY_CUT, now)
        elif self.stretch < GROW_BELOW and saturated:
            # Additive increase: about one more slot per window's worth of replies.
            step = 1.0 if self._slow_start else 1.0 / self.limit
            self.limit = min(float(self.ceiling), self.limit + step)
        elif self.stretch >= GROW_BELOW:
            self._slow_start = False

    def _over_low(self, seconds: float) -> float:
        if self._low is None or seconds < self._low:
            self._low = seconds
        else:
            self._low += LOW_DRIFT * (seconds - self._low)
        return seconds / self._low

    def on_busy(self, now: float) -> None:
        """The server said 503: its queue is full."""
        self._cut(BUSY_CUT, now)

    def restart(self) -> None:
        """Back to one request, to probe a host that was set aside."""
        self.limit = 1.0
        self.latency = self.stretch = self._low = None
        self._slow_start = True

    def _cut(self, factor: float, now: float) -> None:
        # One cut per round trip: replies to requests sent before the cut say nothing new.
        if now - self._cut_at < (self.latency or 0.0):
            return
        self.limit = max(1.0, self.limit * factor)
        self._cut_at = now
        self._slow_start = False


def _smooth(average: float | None, sample: float) -> float:
    return sample if average is None else average + SMOOTHING * (sample - average)


@dataclasses.dataclass(eq=False)
class Host:
    """One Ollama host as the pool sees it."""

    url: str
    extractor: AsyncExtractor
    window: Window
    in_flight: int = 0
    failures: int = 0
    set_asides: int = 0
    aside_until: float = 0.0
    busy_streak: int = 0
    paused_until: float = 0.0

    def set_aside(self, now: float) -> bool:
        return now < self.aside_until

    def ready(self, now: float) -> bool:
        return (
            not self.set_aside(now)
            and now >= self.paused_until
            and self.in_flight < self.window.size
        )

    @property
    def load(self) -> float:
        return self.in_flight / self.window.size


class HostPool:
    """Hands out the healthiest, least-loaded ready host; learns from how each request went.

    All methods run on one event loop; none is thread-safe.
    """

    def __init__(self, hosts: Sequence[Host], *, clock: Callable[[], float] = time.monotonic):
        if not hosts:
            raise ValueError("a pool needs at least one host")
        self.hosts = list(hosts)
        self._clock = clock
        # Waiting acquirers, first come first served; each release wakes as many as it freed
        # room for, not all of them.
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, avoid: Host | None = None) -> Host:
        """Wait for a ready host and count one request in flight on it.

        Healthy hosts come first, then the least loaded. ``avoid`` (the host a document just
        failed on) is only used when no other host is usable.
        """
        woken = False
        while True:
            now = self._clock()
            host = self._pick(now, avoid)
            if host is not None:
                host.in_flight += 1
                return host
            # Woken, but someone took the room first: keep this waiter's place at the front.
            # (Not one that avoids a host: a room it cannot use would stop at it every time.)
            woken = await self._wait(front=woken and avoid is None, recheck=avoid is not None)
            if not woken and avoid is not None:
                # Room this waiter cannot use (on the avoided host) may be going unused.
                self._wake()

    def _pick(self, now: float, avoid: Host | None) -> Host | None:
        usable = [h for h in self.hosts if not h.set_aside(now)]
        if any(h is not avoid for h in usable):
            usable = [h for h in usable if h is not avoid]
        ready = [h for h in usable if h.ready(now)]
        return min(ready, key=lambda h: (h.failures, h.load)) if ready else None

    async def _wait(self, *, front: bool, recheck: bool) -> bool:
        """Wait to be woken (True), or with ``recheck`` for AVOID_RECHECK seconds (False)."""
        waiter = asyncio.get_running_loop().create_future()
        (self._waiters.appendleft if front else self._waiters.append)(waiter)
        try:
            async with asyncio.timeout(AVOID_RECHECK if recheck else None):
                await waiter
        except TimeoutError:
            return False
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, then cancelled: the room goes to the next waiter
            raise
        finally:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        return True

    def _wake(self) -> None:
        now = self._clock()
        room = sum(h.window.size - h.in_flight for h in self.hosts if h.ready(now))
        while room > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1

    def answered(self, host: Host, seconds: float | None, service: float | None = None) -> None:
        """The host answered a request (still in flight): per model call, ``seconds`` of
        latency and ``service`` seconds of server compute, when known."""
        # Healthy, and the finished request frees room in it.
        host.failures = host.set_asides = host.busy_streak = 0
        host.paused_until = 0.0
        if seconds is not None:
            saturated = host.in_flight >= host.window.size
            host.window.on_reply(seconds, self._clock(), saturated=saturated, service=service)

    def release(self, host: Host) -> None:
        """A request on ``host`` is over (after ``answered`` or ``note`` said how it went)."""
        host.in_flight -= 1
        self._wake()

    def note(self, host: Host, error: BaseException | None) -> None:
        """Learn from a failed try: 503 shrinks the window, other failures count to set aside."""
        now = self._clock()
        if isinstance(error, ServerBusy):
            host.window.on_busy(now)
            pause = min(BUSY_PAUSE_MAX, BUSY_PAUSE_FIRST * 2**host.busy_streak)
            host.paused_until = max(host.paused_until, now + pause)
            host.busy_streak += 1
            self._wake_at(host.paused_until - now)
        elif isinstance(error, TransportError):
            host.failures += 1
            if host.failures >= FAILURES_TO_SET_ASIDE and not host.set_aside(now):
                aside = min(SET_ASIDE_MAX, SET_ASIDE_FIRST * 2**host.set_asides)
                host.aside_until = now + aside
                host.set_asides += 1
                host.window.restart()
                self._wake_at(aside)

    def _wake_at(self, delay: float) -> None:
        # The host's room comes back with time, not with a release: wake waiters for it then.
        asyncio.get_running_loop().call_later(delay, self._wake)

    def usable(self, host: Host) -> bool:
        """Whether retrying on ``host`` makes sense (it has not been set aside)."""
        return not host.set_aside(self._clock())

    def policy(self, host: Host, base: tenacity.BaseRetrying) -> tenacity.BaseRetrying:
        """``base`` that also reports each failed try to the pool and stops on a set-aside host."""
        user_hook = base.before_sleep
        hook: Callable[[tenacity.RetryCallState], Any]
        if user_hook is not None and inspect.iscoroutinefunction(user_hook):

            async def hook(state: tenacity.RetryCallState) -> None:
                self._observe(host, state)
                await user_hook(state)

        else:

            def hook(state: tenacity.RetryCallState) -> None:
                self._observe(host, state)
                if user_hook is not None:
                    user_hook(state)

        keep_going = tenacity.retry_if_exception(lambda _: self.usable(host))
        return base.copy(retry=tenacity.retry_all(base.retry, keep_going), before_sleep=hook)

    def _observe(self, host: Host, state: tenacity.RetryCallState) -> None:
        if state.outcome is not None and state.outcome.failed:
            self.note(host, state.outcome.exception())
