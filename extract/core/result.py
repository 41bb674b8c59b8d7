"""What an extraction returns: the value, every attempt, and the usage they add up to."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from ..errors import ExtractError
from .confidence import ChoiceScores
from .grounding import Span
from .wire import Metrics

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """One model call: its reply text, what went wrong (if anything), and its counters."""

    number: int
    raw: str
    error: ExtractError | None = None
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    done_reason: str | None = None
    transport_retries: int = 0
    # Why this attempt sent format "json" in place of the schema: the server's refusal.
    format_fallback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the raw reply is left out; it can be long)."""
        out: dict[str, Any] = {"number": self.number, "ok": self.ok, **self.metrics.to_dict()}
        if self.error is not None:
            out["error"] = self.error.to_dict()
        if self.done_reason:
            out["done_reason"] = self.done_reason
        if self.format_fallback:
            out["format_fallback"] = self.format_fallback
        return out


def format_fallback(attempts: Sequence[Attempt]) -> str | None:
    """Why these attempts sent format "json" in place of the schema, or None when none did."""
    return next((a.format_fallback for a in attempts if a.format_fallback), None)


def total_usage(attempts: Sequence[Attempt]) -> Metrics:
    """Counters summed over every attempt, failed ones included."""
    total = Metrics()
    for attempt in attempts:
        total = total + attempt.metrics
    return total


@dataclasses.dataclass(frozen=True, slots=True)
class Extraction(Generic[T]):
    """A validated value and how it was obtained.

    ``value`` is an instance of the Pydantic model when the schema was one, else plain JSON data.
    ``usage`` sums the counters of every attempt, including failed ones. ``chunks`` is the
    number of pieces a long document was read in (1: whole); ``spans`` says where each value of
    a grounded field (``x-grounded``) occurs in the document.

    ``confidence`` maps the JSON path of each choice field (enum, boolean, const) to the
    model's own probability for the chosen option against the others, from the server's
    log-probabilities (after calibration when it was on); with ``samples``, it maps every
    field to the share of samples that agreed with the value. It is the model's belief, not a
    guarantee, and empty when the server gave no log-probabilities. ``choices`` holds each
    choice field's option scores; ``samples`` the number of samples voted on.
    """

    value: T
    raw: str
    attempts: tuple[Attempt, ...]
    model: str
    host: str
    chunks: int = 1
    spans: tuple[Span, ...] = ()
    confidence: Mapping[str, float] = dataclasses.field(default_factory=dict)
    choices: Mapping[str, ChoiceScores] = dataclasses.field(default_factory=dict)
    samples: int = 1

    @property
    def usage(self) -> Metrics:
        return total_usage(self.attempts)

    def data(self) -> Any:
        """The value as plain JSON data (a Pydantic model is dumped in JSON mode)."""
        dump = getattr(self.value, "model_dump", None)
        return dump(mode="json") if callable(dump) else self.value


@dataclasses.dataclass(frozen=True, slots=True)
class Partial(Generic[T]):
    """The value as it forms during attempt ``attempt``: fields may still be missing."""

    value: T
    attempt: int


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt's reply was unusable; the partials that follow belong to a new attempt."""

    attempt: Attempt
