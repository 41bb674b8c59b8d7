"""A batch run's progress bar and end-of-run summary, both on stderr."""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import TYPE_CHECKING, Any, TextIO

from ..core.calibration import LearnedPrior
from ..core.wire import Metrics

if TYPE_CHECKING:
    from .records import Record


@dataclasses.dataclass
class Tally:
    """What a run has produced so far: counts by outcome, tokens, and time.

    >>> t = Tally(started=0.0)
    >>> t.records, t.ok
    (0, 0)
    """

    started: float = dataclasses.field(default_factory=time.monotonic)
    records: int = 0
    ok: int = 0
    cached: int = 0
    failed: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    prompt_tokens: int = 0
    output_tokens: int = 0
    resumed: int = 0
    resumed_failed: int = 0
    review: int = 0
    unscored: int = 0
    accepted: int = 0
    not_accepted: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    calibration: Metrics = dataclasses.field(default_factory=Metrics)
    calibration_requests: int = 0
    format_fallbacks: int = 0

    def add_prior(self, learned: LearnedPrior) -> None:
        """Count the requests an in-domain prior took (they belong to no record)."""
        self.calibration_requests += learned.documents
        self.calibration = self.calibration + learned.usage

    def add(self, record: Record, *, review: bool = False, unscored: bool = False) -> None:
        """Count one record: ``review`` when it is marked for review, ``unscored`` when it is
        ok but lacks the confidence the run asked for."""
        self.records += 1
        self.review += review
        self.unscored += unscored
        if record.accepted is not None:
            self.accepted += record.accepted
            self.not_accepted += not record.accepted
        self.cached += record.cached
        if record.ok:
            self.ok += 1
        else:
            self.failed[type(record.error).__name__] += 1
        self.format_fallbacks += record.format_fallback is not None
        self.prompt_tokens += record.usage.prompt_eval_count or 0
        self.output_tokens += record.usage.eval_count or 0

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    def summary(self, now: float | None = None) -> str:
        """Lines for the end of a run.

        >>> t = Tally(started=0.0, records=4, ok=3, failed=collections.Counter(InputError=1))
        >>> t.output_tokens = 30
        >>> print(t.summary(now=2.0))
        records 4: 3 ok, 1 failed (InputError 1), 0 cached
        tokens 0 prompt + 30 output; 15.0 output tokens/s
        wall time 2.0 s; 2.0 docs/s
        """
        wall = max((time.monotonic() if now is None else now) - self.started, 1e-9)
        kinds = ", ".join(f"{name} {n}" for name, n in self.failed.most_common())
        failed = f"{self.failures} failed" + (f" ({kinds})" if kinds else "")
        lines = [
            f"records {self.records}: {self.ok} ok, {failed}, {self.cached} cached",
            f"tokens {self.prompt_tokens} prompt + {self.output_tokens} output; "
            f"{self.output_tokens / wall:.1f} output tokens/s",
            f"wall time {wall:.1f} s; {self.records / wall:.1f} docs/s",
        ]
        if self.calibration_requests:
            used = self.calibration
            lines.append(
                f"calibration: {self.calibration_requests} requests for the in-domain prior, "
                f"{used.prompt_eval_count or 0} prompt + {used.eval_count or 0} output tokens, "
                f"{(used.total_duration or 0) / 1e9:.1f} s of server time"
            )
        if self.unscored:
            lines.append(
                f"ok records without confidence: {self.unscored} (the server scored none of "
                "their fields: no log-probabilities, or a document read in pieces; under "
                "--min-confidence they are marked for review)"
            )
        if self.accepted or self.not_accepted:
            lines.append(
                f"accepted under the guaranteed threshold: {self.accepted}; "
                f"not accepted: {self.not_accepted}"
            )
        if self.format_fallbacks:
            lines.append(
                f'format: {self.format_fallbacks} records sent with format "json" after the '
                "server refused the schema as format (each record's format_fallback says why); "
                "their values were validated against the schema all the same"
            )
        if self.review:
            lines.append(f"marked for review (under --min-confidence): {self.review}")
        if duplicates := self.failed["DuplicateId"]:
            lines.append(
                f"lines repeating an earlier line's id: {duplicates}, not labelled "
                "(--allow-duplicate-ids --retry-failed labels them)"
            )
        if self.resumed:
            lines.append(
                f"already in the output: {self.resumed} records ({self.resumed_failed} failed"
                + ("; --retry-failed labels them again)" if self.resumed_failed else ")")
            )
        lines.extend(self.notes)
        return "\n".join(lines)


class Progress:
    """A tqdm bar (rate, ETA, ok/failed) when ``show`` is true; always a ``Tally``."""

    def __init__(self, *, stream: TextIO, show: bool, total: int | None, tally: Tally) -> None:
        self.tally = tally
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=tally.resumed,
                unit="doc",
                file=stream,
                dynamic_ncols=True,
                smoothing=0.05,
            )

    def update(self, record: Record, *, review: bool = False, unscored: bool = False) -> None:
        self.tally.add(record, review=review, unscored=unscored)
        if self._bar is not None:
            self._bar.set_postfix_str(
                f"ok={self.tally.ok} failed={self.tally.failures}", refresh=False
            )
            self._bar.update()

    def close(self) -> None:
        """End the bar (again: nothing)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
