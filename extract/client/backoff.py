"""The transport retry policy, consulted only when a try fails.

A ``tenacity`` policy (``Retrying`` or ``AsyncRetrying``, the user's own or the default) decides
whether to resend and how long to wait, through its public ``iter`` step. Entering tenacity's
``for attempt in retrying`` loop costs about 20 µs on every call, so a first try that succeeds
never touches the policy: ``Backoff`` copies and starts it at the first failure.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import tenacity

from ..errors import ConfigError, TransportError

Retry = int | tenacity.BaseRetrying


def check_retry(retry: object) -> tenacity.BaseRetrying:
    """The policy ``retry`` names: a number of tries (≥ 1) or a tenacity ``Retrying``.

    Raises ConfigError for anything else.
    """
    if isinstance(retry, tenacity.BaseRetrying):
        return retry
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
        raise ConfigError(f"retry={retry!r}: give a number of tries (≥ 1) or a tenacity Retrying")
    return default_policy(retry)


@functools.lru_cache(maxsize=16)
def default_policy(tries: int) -> tenacity.Retrying:
    """Up to ``tries`` tries on TransportError, with jittered exponential waits."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(tries),
        wait=tenacity.wait_exponential(multiplier=0.5, max=20) + tenacity.wait_random(0, 0.5),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )


class Backoff:
    """One request's retry state: how many tries failed, and what the policy says next.

    ``wait``/``await_wait`` take the error of a failed try and return after the policy's
    pause, or re-raise (the policy stopped, or the error is not one it retries).
    """

    def __init__(self, policy: tenacity.BaseRetrying) -> None:
        self._policy = policy
        self._state: tenacity.RetryCallState | None = None

    @property
    def retries(self) -> int:
        """Tries that failed and were retried."""
        return 0 if self._state is None else self._state.attempt_number - 1

    def _failed(self, error: BaseException) -> tenacity.RetryCallState:
        if self._state is None:
            # A policy holds the state of one loop: each request runs its own copy.
            self._policy = self._policy.copy()
            self._policy.begin()
            self._state = tenacity.RetryCallState(self._policy, fn=None, args=(), kwargs={})
        self._state.set_exception((type(error), error, error.__traceback__))
        return self._state

    def _pause(self, do: Any, error: BaseException) -> float:
        if not isinstance(do, tenacity.DoSleep):
            raise error  # a retry_error_callback answered instead of raising: nothing to resend
        assert self._state is not None
        self._state.prepare_for_next_attempt()
        return float(do)

    def wait(self, error: BaseException) -> None:
        """Sleep as the policy says before the next try; raises when there is none."""
        if isinstance(self._policy, tenacity.AsyncRetrying):
            raise ConfigError("retry: a tenacity.AsyncRetrying needs the AsyncExtractor")
        state = self._failed(error)  # first: it may swap in the policy's copy
        self._policy.sleep(self._pause(self._policy.iter(state), error))

    async def await_wait(self, error: BaseException) -> None:
        """The asyncio twin of :meth:`wait` (a sync policy's waits become asyncio sleeps)."""
        state = self._failed(error)  # first: it may swap in the policy's copy
        do = self._policy.iter(state)
        if inspect.isawaitable(do):
            do = await do
        seconds = self._pause(do, error)
        if isinstance(self._policy, tenacity.AsyncRetrying):
            await self._policy.sleep(seconds)  # type: ignore[misc]
        else:
            await asyncio.sleep(seconds)
