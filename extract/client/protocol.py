"""One extraction as the steps a driver performs: sans-I/O, shared by both extractors.

:func:`steps` is a generator: it yields what needs doing and gets the outcome back, and
returns the ``Extraction``. A driver (``Extractor`` waits, ``AsyncExtractor`` awaits) performs:

- :class:`Ask`: one small request under the call's transport retries — the backend's facts
  of the server and model, or a reply that is not streamed (the content-free prior); answered
  with what the transport returns;
- :class:`Continue`: one deciding step of a choice field (``core.decide``): the request with
  its reply begun, for one token; answered with what the server added;
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
from collections.abc import Generator, Sequence
from typing import Any

from ..core.calibration import CONTENT_FREE_DOCUMENT, LearnedPrior, domain_documents
from ..core.decide import decide, step_request
from ..core.result import Extraction
from ..core.wire import GenerateRequest, GenerateResult, Metrics
from ..errors import ExtractionFailed, OutputError
from .calls import Call, CallOptions, Planner
from .combine import calibrated, merged, pieces, reported, sample_options, voted


@dataclasses.dataclass(frozen=True, slots=True)
class Ask:
    """Fetch the backend's facts (``facts``), or send ``request`` whole; under ``call``'s
    retries."""

    call: Call
    facts: bool = False
    request: GenerateRequest | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Continue:
    """Send ``request`` with its reply begun as ``prefill``, under ``call``'s retries;
    answered with None when the server refuses it."""

    call: Call
    request: GenerateRequest
    prefill: str


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


Step = Ask | Continue | Nested | Attempts
Steps = Generator[Step, Any, Extraction[Any]]


def facts(planner: Planner, call: Call) -> Generator[Step, Any, None]:
    """Ask for the server facts calls need, when ``planner`` does not know them yet."""
    if planner.facts is None:
        planner.facts = yield Ask(call, facts=True)


def steps(planner: Planner, text: str, schema: Any, options: CallOptions) -> Steps:
    """The steps of ``planner.extract(text, schema, **options)``; returns the Extraction.

    Raises as ``extract`` does (planning errors before the first step).
    """
    call = planner.plan(text, schema, options)
    yield from facts(planner, call)
    call = planner.fit(call)
    if call.chunk is not None and (parts_of := pieces(call, planner.context(call))) is not None:
        each: CallOptions = {**options, "chunk": None}
        parts: list[Extraction[Any]] = []
        failures: list[ExtractionFailed] = []
        for piece in parts_of:
            try:
                parts.append((yield Nested(piece.text, schema, each)))
            except ExtractionFailed as exc:
                failures.append(exc)
        return reported(call, merged(call, parts, failures, planner.model, planner.settings.host))
    if call.samples > 1:
        samples: list[Extraction[Any]] = []
        failure: ExtractionFailed | None = None
        for number in range(call.samples):
            try:
                samples.append((yield Nested(text, schema, sample_options(call, options, number))))
            except ExtractionFailed as exc:
                failure = exc
        return reported(call, voted(call, samples, failure, planner.model, planner.settings.host))
    decided = yield from decide_choices(planner, call)
    done: Extraction[Any] = decided if decided is not None else (yield Attempts(call))
    return (yield from settle(planner, call, done))


def decide_choices(planner: Planner, call: Call) -> Generator[Step, Any, Extraction[Any] | None]:
    """``call``'s reply written by extract with each choice field decided from one token
    (``core.decide``), as the attempt loop would have recorded it; None where that is not
    done (see ``Planner.decides``) or a field could not be decided, and the reply is then
    generated whole."""
    plan = planner.decides(call)
    if plan is None:
        return None
    flow = planner.flow(call)
    request = step_request(flow.request())
    decider = decide(plan)
    prefill = next(decider)
    usage = Metrics()
    while True:
        try:
            reply: GenerateResult | None = yield Continue(call, request, prefill)
        except OutputError:
            return None
        if reply is None:
            planner.continuation_refused = True
            return None
        usage += reply.metrics
        entry = reply.logprobs[0] if reply.logprobs else None
        try:
            prefill = decider.send(entry)
        except StopIteration as stop:
            outcome = stop.value
            break
    if outcome is None:
        return None
    text, scores = outcome
    try:
        done = flow.record(GenerateResult(text, done_reason="stop", metrics=usage))
    except ExtractionFailed:
        return None
    if done is None:
        return None  # extract's own text did not validate (say, a grounded field)
    confidence = {path: s.confidence for path, s in scores.items()}
    return dataclasses.replace(done, choices=scores, confidence=confidence)


def settle(planner: Planner, call: Call, done: Extraction[Any]) -> Steps:
    """``done`` with its choice fields calibrated: the content-free prior is asked for once
    per model, prompt head and schema, and only of a server whose reply had log-probabilities."""
    key = planner.prior_key(call)
    if key is None or not done.choices:
        return reported(call, done)
    prior = planner.priors.get(key)
    if prior is None:
        replies = yield from content_free(planner, call, [CONTENT_FREE_DOCUMENT])
        # Kept even when empty (no reply had scores), so later calls do not ask again.
        prior = planner.read_prior(call, replies)
        planner.priors.put(key, prior)
    return reported(call, calibrated(call, done, prior))


def learn_prior(
    planner: Planner, texts: Sequence[str], schema: Any, options: CallOptions
) -> Generator[Step, Any, LearnedPrior | None]:
    """The steps of ``planner.learn_prior``: the in-domain prior of ``schema`` under
    ``options``, from documents of random words of ``texts`` (``core.calibration``), kept for
    the later calls it applies to.

    None, and nothing kept, when those calls are not calibrated (no choice field,
    ``calibrate=False``, a server without log-probabilities) or no reply had scores.
    """
    documents = domain_documents(texts)
    if not documents:
        return None
    call = planner.plan(documents[0], schema, options)
    yield from facts(planner, call)
    call = planner.fit(call)
    key = planner.prior_key(call)
    if key is None:
        return None
    replies = yield from content_free(planner, call, documents)
    prior = planner.read_prior(call, replies)
    if not prior.fields:
        return None
    planner.priors.put(key, prior)
    usage = sum((reply.metrics for reply in replies), Metrics())
    return LearnedPrior(prior, len(replies), usage)


def content_free(
    planner: Planner, call: Call, documents: Sequence[str]
) -> Generator[Step, Any, list[GenerateResult]]:
    """``call``'s request for each of ``documents`` in its place, sent whole; the replies (an
    unusable one left out)."""
    replies: list[GenerateResult] = []
    for document in documents:
        blank = planner.fit(planner.plan(document, call.schema, {**call.given, "chunk": None}))
        request = planner.flow(blank).request()
        request["stream"] = False
        try:
            replies.append((yield Ask(call, request=request)))
        except OutputError:
            continue
    return replies
