"""One extraction as the steps a driver performs: sans-I/O, shared by both extractors.

:func:`steps` is a generator: it yields what needs doing and gets the outcome back, and
returns the ``Extraction``. A driver (``Extractor`` waits, ``AsyncExtractor`` awaits) performs:

- :class:`Ask`: one small request under the call's transport retries — a server fact
  (``version``, ``show``) or a reply that is not streamed (the content-free prior); answered
  with what the transport returns;
- :class:`Nested`: another extraction (a piece of a long document, or one sample); answered
  with its ``Extraction``;
- :class:`Attempts`: the attempt loop of ``core.flow`` for a planned call (send, feed the
  streamed text, re-ask); answered with its ``Extraction``.

An ``OutputError`` or ``ExtractionFailed`` a step raised is thrown back in at the ``yield``
(where a failed sample or an unusable prior reply is handled); anything else ends the
extraction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

from ..core.calibration import CONTENT_FREE_DOCUMENT
from ..core.result import Extraction
from ..core.wire import GenerateRequest, GenerateResult
from ..errors import ExtractionFailed, OutputError
from .calls import Call, CallOptions, Fact, Planner
from .combine import calibrated, merged, pieces, sample_options, voted


@dataclasses.dataclass(frozen=True, slots=True)
class Ask:
    """Fetch a server ``fact``, or send ``request`` whole; under ``call``'s retries."""

    call: Call
    fact: Fact | None = None
    request: GenerateRequest | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Nested:
    """Extract ``text`` with ``options`` (a piece, or a sample)."""

    text: str
    schema: Any
    options: CallOptions


@dataclasses.dataclass(frozen=True, slots=True)
class Attempts:
    """Run the attempt loop for ``call``."""

    call: Call


Step = Ask | Nested | Attempts
Steps = Generator[Step, Any, Extraction[Any]]


def facts(planner: Planner, call: Call) -> Generator[Step, Any, None]:
    """Ask for the server facts ``call`` needs that ``planner`` does not know yet."""
    for fact in planner.missing(call):
        planner.learn(fact, (yield Ask(call, fact=fact)))


def steps(planner: Planner, text: str, schema: Any, options: CallOptions) -> Steps:
    """The steps of ``planner.extract(text, schema, **options)``; returns the Extraction.

    Raises as ``extract`` does (planning errors before the first step).
    """
    call = planner.plan(text, schema, options)
    yield from facts(planner, call)
    if call.chunk is not None and (parts_of := pieces(call, planner.context(call))) is not None:
        each: CallOptions = {**options, "chunk": None}
        parts: list[Extraction[Any]] = []
        failures: list[ExtractionFailed] = []
        for piece in parts_of:
            try:
                parts.append((yield Nested(piece.text, schema, each)))
            except ExtractionFailed as exc:
                failures.append(exc)
        return merged(call, parts, failures, planner.model, planner.settings.host)
    if call.samples > 1:
        samples: list[Extraction[Any]] = []
        failure: ExtractionFailed | None = None
        for number in range(call.samples):
            try:
                samples.append((yield Nested(text, schema, sample_options(call, options, number))))
            except ExtractionFailed as exc:
                failure = exc
        return voted(call, samples, failure, planner.model, planner.settings.host)
    done: Extraction[Any] = yield Attempts(call)
    return (yield from settle(planner, call, done))


def settle(planner: Planner, call: Call, done: Extraction[Any]) -> Steps:
    """``done`` with its choice fields calibrated: the content-free prior is asked for once
    per model, prompt head and schema, and only of a server whose reply had log-probabilities."""
    key = planner.prior_key(call)
    if key is None or not done.choices:
        return done
    prior = planner.priors.get(key)
    if prior is None:
        blank = planner.plan(CONTENT_FREE_DOCUMENT, call.schema, {**call.given, "chunk": None})
        request = planner.flow(blank).request()
        request["stream"] = False
        try:
            reply: GenerateResult | None = yield Ask(call, request=request)
        except OutputError:
            reply = None
        prior = planner.learn_prior(key, call, reply)
    return calibrated(call, done, prior)
