"""A sans-I/O guard for a streaming reply: stop a runaway generation early.

Fed the reply's text deltas as they arrive, :class:`StreamGuard` raises RunawayOutput on

- a run of whitespace outside JSON strings longer than ``max_whitespace_run`` (the ``"json"``
  grammar allows unbounded whitespace, and small models fill ``num_predict`` with it);
- more than ``max_chars`` characters in total;
- a token loop: the same unit of 1 to ``max_unit`` characters repeated back to back more than
  ``max_repeats`` times and over more than ``max_loop_chars`` characters, so a looping name
  is stopped as soon as a looping letter, and a line of 100 dashes is not a loop (units made
  only of whitespace are left to the whitespace rule).

Every check is exact and incremental: the verdict depends on the text alone, never on how it
was split into deltas, and each ``feed`` costs time in proportion to its delta, not to the text
so far (a reply too short to break any rule is not scanned at all).
"""

from __future__ import annotations

import functools
import re

from ..errors import ConfigError, RunawayOutput

JSON_WHITESPACE = " \t\n\r"
_STRING_STOP = re.compile(r'["\\]')  # the characters that can end a string or escape one


class StreamGuard:
    """Watches one reply as it streams; see the module docstring for the rules.

    >>> guard = StreamGuard(max_repeats=3, max_loop_chars=1)
    >>> guard.feed('{"a": "ab')
    >>> guard.feed("ababab")
    Traceback (most recent call last):
    ...
    extract.errors.RunawayOutput: the reply repeats 'ab' 4 times in a row
    """

    def __init__(
        self,
        *,
        max_chars: int = 32_000,
        max_whitespace_run: int = 200,
        max_repeats: int = 8,
        max_loop_chars: int = 120,
        max_unit: int = 20,
    ) -> None:
        """Raises ConfigError when a limit is not a positive integer."""
        _check_limits(
            max_chars=max_chars,
            max_whitespace_run=max_whitespace_run,
            max_repeats=max_repeats,
            max_loop_chars=max_loop_chars,
            max_unit=max_unit,
        )
        self.max_chars = max_chars
        self.max_whitespace_run = max_whitespace_run
        self.max_repeats = max_repeats
        self.max_loop_chars = max_loop_chars
        self.max_unit = max_unit
        # A guard per attempt: what depends on the limits alone is worked out once for them.
        self._long_whitespace, self._need = _rules(
            max_whitespace_run, max_repeats, max_loop_chars, max_unit
        )
        self._chunks: list[str] = []  # joined lazily: most replies are never read back whole
        self._joined = ""
        self._size = 0
        # Text no longer than this breaks no rule (a whitespace run or a loop needs more), so
        # a short reply, the usual one, is never scanned; a longer one is from there on.
        self._quiet = min(max_whitespace_run, max_loop_chars)
        self._scanned = False  # whether the rules have seen the text so far
        self._failure: RunawayOutput | None = None
        # Whitespace rule: where we are in the JSON, and the whitespace run at the end.
        self._in_string = False
        self._escaped = False
        self._blank_run = 0
        # Repetition rule: the tail a loop that reaches into new text can start in, and for
        # each unit length the next global offset to sample (see _check_loops).
        self._keep = max(self._need) + max_unit
        self._recent = ""
        self._due = list(self._need[1:])
        self._next_sample = min(self._due)

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if self._chunks:
            self._joined += "".join(self._chunks)
            self._chunks.clear()
        return self._joined

    def feed(self, delta: str) -> None:
        """Take the next piece of the reply; raises RunawayOutput (``raw`` = the text so far).

        After a failure every later call raises the same error again.
        """
        if self._failure is not None:
            raise self._failure
        if not delta:
            return
        self._chunks.append(delta)
        self._size += len(delta)
        if self._size > self.max_chars:
            self._fail(f"the reply passed {self.max_chars} characters")
        if self._size <= self._quiet:
            return
        unseen = delta if self._scanned else self.text  # the first scan takes the short head too
        self._scanned = True
        self._scan_whitespace(unseen)
        self._check_loops(unseen)

    def _fail(self, message: str) -> None:
        self._failure = RunawayOutput(message, raw=self.text)
        raise self._failure

    def _scan_whitespace(self, delta: str) -> None:
        """Track string state through ``delta`` and measure whitespace outside strings."""
        pos, end = 0, len(delta)
        if self._escaped:  # a backslash ended the previous delta inside a string
            self._escaped, pos = False, 1
        while pos < end:
            if self._in_string:
                stop = _STRING_STOP.search(delta, pos)
                if stop is None:
                    return
                if stop.group() == '"':
                    self._in_string, pos = False, stop.end()
                elif stop.end() < end:
                    pos = stop.end() + 1  # skip the escaped character
                else:  # the escaped character comes with the next delta
                    self._escaped = True
                    return
            else:
                quote = delta.find('"', pos)
                self._outside(delta[pos : end if quote < 0 else quote])
                if quote < 0:
                    return
                self._in_string, self._blank_run, pos = True, 0, quote + 1

    def _outside(self, segment: str) -> None:
        if not segment:
            return
        body = segment.lstrip(JSON_WHITESPACE)
        lead = len(segment) - len(body)
        if self._blank_run + lead > self.max_whitespace_run or (
            body and self._long_whitespace.search(body)
        ):
            self._fail(
                f"the reply has more than {self.max_whitespace_run} whitespace characters"
                " in a row outside strings"
            )
        self._blank_run = (
            self._blank_run + lead if not body else len(body) - len(body.rstrip(JSON_WHITESPACE))
        )

    def _check_loops(self, delta: str) -> None:
        """Find a unit of ``p`` characters repeated back to back into a loop.

        Such a loop is a run of at least ``_need[p]`` positions ``i`` where
        ``text[i] == text[i - p]``. A run that long contains a multiple of its length, so
        checking those sample positions finds every run inside this delta; a run crossing
        into it is found from the delta's first position.
        """
        buf = self._recent + delta
        start = len(buf) - len(delta)  # where the new text begins in buf
        base = self._size - len(buf)  # global offset of buf[0]
        # Only unit lengths p whose character p back equals the first new one can continue a
        # run, and not those whose unit would be the whitespace just before the delta.
        tail = buf[max(0, start - self.max_unit) : start]
        stop = start - (len(tail) - len(tail.rstrip(JSON_WHITESPACE)))
        at = buf.find(delta[0], start - len(tail), stop)
        while at >= 0:
            self._measure(buf, start, start - at)
            at = buf.find(delta[0], at + 1, stop)
        if self._size > self._next_sample:
            for p, due in enumerate(self._due, start=1):
                if due >= self._size:
                    continue
                need = self._need[p]
                for sample in range(max(due, base + p), self._size, need):
                    if buf[sample - base] == buf[sample - base - p]:
                        self._measure(buf, sample - base, p)
                self._due[p - 1] = (self._size // need + 1) * need
            self._next_sample = min(self._due)
        self._recent = buf[-self._keep :]

    def _measure(self, buf: str, i: int, p: int) -> None:
        """Fail when the run of period ``p`` through ``buf[i]`` is a loop."""
        unit = buf[i - p : i]
        if not unit.strip(JSON_WHITESPACE):
            return  # a periodic run of whitespace: the whitespace rule's business
        need = self._need[p]
        room = len(buf) - i
        # The run cannot reach past the buffer, so it needs this much before i: check that in
        # one comparison before measuring anything.
        short = need - room
        if short > 0 and (short > i - p or buf[i - short : i] != buf[i - short - p : i - p]):
            return
        right = _common_run(buf, i, i - p, min(need, room), forward=True)
        left = _common_run(buf, i, i - p, min(need - right, i - p), forward=False)
        if left + right >= need:
            shown = unit if len(unit) <= 20 else unit[:19] + "…"
            self._fail(f"the reply repeats {shown!r} {need // p + 1} times in a row")


def _check_limits(**limits: int) -> None:
    for name, limit in limits.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"{name} must be a positive integer, not {limit!r}")


@functools.lru_cache(maxsize=16)
def _rules(
    max_whitespace_run: int, max_repeats: int, max_loop_chars: int, max_unit: int
) -> tuple[re.Pattern[str], tuple[int, ...]]:
    """The whitespace-run pattern, and for each unit length p (index p; 0 unused) how long a
    run of ``text[i] == text[i - p]`` makes a loop."""
    whitespace = re.compile(f"[{JSON_WHITESPACE}]{{{max_whitespace_run + 1},}}")
    need = (0, *(max(max_repeats * p, max_loop_chars) for p in range(1, max_unit + 1)))
    return whitespace, need


def _common_run(buf: str, a: int, b: int, limit: int, *, forward: bool) -> int:
    """How many characters match going forward from (a, b), or backward before them.

    Galloping then bisecting over slice comparisons keeps this fast for long runs.
    """
    if limit <= 0:
        return 0

    def same(n: int) -> bool:
        if forward:
            return buf[a : a + n] == buf[b : b + n]
        return buf[a - n : a] == buf[b - n : b]

    low, high = 0, 1
    while high <= limit and same(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        mid = (low + high) // 2
        if same(mid):
            low = mid
        else:
            high = mid
    return low
