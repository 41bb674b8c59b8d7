"""Iterate an async generator from sync code: its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, TypeVar

T = TypeVar("T")

# Items the loop thread may hand over before the caller takes them: bounds memory.
BUFFER = 64


def iterate_in_thread(make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Run ``make()`` on a new event loop in a daemon thread and yield what it yields.

    Its errors are raised here. Closing this iterator (or leaving a for loop early) cancels
    the async generator, so its ``finally`` blocks run, and waits for the thread to end.
    """
    handed: queue.Queue[tuple[Literal["item", "error", "end"], Any]] = queue.Queue()
    # One ticket per item in the hand-over queue; the caller gives it back on taking the item.
    tickets = asyncio.Semaphore(BUFFER)
    loop = asyncio.new_event_loop()

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

    task = loop.create_task(pump())
    # A daemon: a caller that drops this iterator unclosed must not keep the process alive.
    thread = threading.Thread(target=_serve, args=(loop, task), name="extract-loop", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = handed.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            loop.call_soon_threadsafe(tickets.release)
            yield item
    finally:
        # The loop is closed here, after the thread, so these calls never meet a closed loop.
        loop.call_soon_threadsafe(task.cancel)
        thread.join()
        loop.close()


def _serve(loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
