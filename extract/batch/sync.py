"""Async code from sync code: an event loop of its own on a daemon thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Literal, TypeVar

T = TypeVar("T")

# Items the loop thread may hand over before the caller takes them: bounds memory.
BUFFER = 64


class LoopThread:
    """An event loop running on a daemon thread, for sync faces over async engines.

    The loop lives until :meth:`close`, so what runs on it (connections, host windows) carries
    over from one call to the next. A daemon: a caller that never closes it must not keep the
    process alive.
    """

    def __init__(self, name: str = "extract-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def closed(self) -> bool:
        return self.loop.is_closed()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result here (its errors are raised here)."""
        return asyncio.run_coroutine_threadsafe(_awaited(coro), self.loop).result(timeout)

    def iterate(self, make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """Iterate ``make()`` on the loop and yield what it yields, a bounded buffer between.

        Its errors are raised here. Closing this iterator (or leaving a for loop early)
        cancels the async generator, so its ``finally`` blocks run, and waits for that.
        """
        handed: queue.Queue[tuple[Literal["item", "error", "end"], Any]] = queue.Queue()
        # One ticket per item in the hand-over queue; the caller gives it back on taking one.
        tickets = asyncio.Semaphore(BUFFER)

        async def pump() -> None:
            agen = make()
            try:
                async for item in agen:
                    await tickets.acquire()
                    handed.put(("item", item))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # everything reaches the caller, KeyboardInterrupt too
                handed.put(("error", exc))
            else:
                handed.put(("end", None))
            finally:
                await agen.aclose()  # type: ignore[attr-defined]

        task = asyncio.run_coroutine_threadsafe(pump(), self.loop)
        try:
            while True:
                kind, item = handed.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                self.loop.call_soon_threadsafe(tickets.release)
                yield item
        finally:
            task.cancel()
            # Its error, if any, was raised above; a cancelled pump is the point.
            with contextlib.suppress(concurrent.futures.CancelledError, Exception):
                task.result()

    def close(self) -> None:
        """Stop the loop and join the thread (again: nothing)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
