"""Extractions made of others: a long document read in pieces, and samples of one document.

Both end the same way: one value from several (``chunking.merge`` or a caller's ``merge``;
``consensus.vote``), validated again, with the parts' attempts (and so their usage) summed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core import chunking
from ..core.calibration import Prior, calibrate, scaled
from ..core.consensus import vote
from ..core.result import Extraction
from ..errors import ExtractionFailed, SchemaMismatch
from .calls import CHARS_PER_TOKEN, MIN_CHUNK, Call, CallOptions, reply_reserve

# Chunking: the share of each piece repeated in the next.
CHUNK_OVERLAP = 0.1


def pieces(call: Call, context: int) -> list[chunking.Piece] | None:
    """The pieces to read ``call``'s document in, or None to read it whole (it fits).

    ``chunk="auto"`` sizes them to ``context`` tokens less the reply's share and the prompt.
    """
    size = call.chunk
    if size == "auto":
        reply = reply_reserve(call.request.get("options", {}), context)
        head = len(call.request.get("prompt", "")) - len(call.text)
        size = max(int((context - reply) * CHARS_PER_TOKEN) - head, MIN_CHUNK)
    if size is None or len(call.text) <= size:
        return None
    return chunking.split(call.text, size, int(size * CHUNK_OVERLAP))


def sample_options(call: Call, options: CallOptions, number: int) -> CallOptions:
    """The options of sample ``number``: one sample each, and a seed of its own when the call
    gave one (else the server draws one)."""
    each: CallOptions = {**options, "samples": 1}
    seed = call.request.get("options", {}).get("seed")
    if isinstance(seed, int) and seed >= 0:
        each["options"] = {**(options.get("options") or {}), "seed": seed + number}
    return each


def calibrated(call: Call, extraction: Extraction[Any], prior: Prior) -> Extraction[Any]:
    """``extraction`` with each choice field decided against the model's ``prior`` lean (see
    ``core.calibration``) and its confidence the calibrated one; as it was when a changed
    choice does not validate."""
    result = calibrate(extraction.data(), dict(extraction.choices), prior)
    value = extraction.value
    if result.changed:
        try:
            value = call.schema.validate(result.value)
        except SchemaMismatch:
            return extraction
    confidence = {path: scores.confidence for path, scores in result.scores.items()}
    return dataclasses.replace(
        extraction, value=value, choices=result.scores, confidence=confidence
    )


def reported(call: Call, extraction: Extraction[Any]) -> Extraction[Any]:
    """``extraction`` with each confidence under the call's ``confidence_temperature``."""
    t = call.confidence_temperature
    if t == 1.0 or not extraction.confidence:
        return extraction
    confidence = {path: scaled(p, t) for path, p in extraction.confidence.items()}
    return dataclasses.replace(extraction, confidence=confidence)


def merged(
    call: Call,
    parts: list[Extraction[Any]],
    failures: list[ExtractionFailed],
    model: str,
    host: str,
) -> Extraction[Any]:
    """One Extraction from the values of the pieces that gave one (``call.merge``, else
    ``chunking.merge``); a failed piece adds only its attempts.

    Raises the last piece's ExtractionFailed when every piece failed, and ExtractionFailed when
    the merged value breaks the schema.
    """
    if not parts:
        raise failures[-1]
    merge = call.merge or chunking.merge
    value = merge([part.data() for part in parts])
    what = f"the values of {len(parts)} pieces merge into"
    failed = tuple(a for failure in failures for a in failure.attempts)
    done = _combined(call, parts, value, what, model, host)
    pieces_read = len(parts) + len(failures)
    return dataclasses.replace(done, attempts=(*done.attempts, *failed), chunks=pieces_read)


def voted(
    call: Call,
    parts: list[Extraction[Any]],
    failure: ExtractionFailed | None,
    model: str,
    host: str,
) -> Extraction[Any]:
    """One Extraction from the samples that succeeded: each field's majority value, and the
    share of them that agreed as its confidence.

    Raises the last sample's ExtractionFailed when none succeeded, and ExtractionFailed when
    the voted value breaks the schema.
    """
    if not parts:
        assert failure is not None
        raise failure
    ballot = vote([part.data() for part in parts])
    what = f"the majority of {len(parts)} samples is"
    return _combined(call, parts, ballot.value, what, model, host, ballot.agreement)


def _combined(
    call: Call,
    parts: list[Extraction[Any]],
    value: Any,
    what: str,
    model: str,
    host: str,
    agreement: dict[str, float] | None = None,
) -> Extraction[Any]:
    attempts = tuple(a for part in parts for a in part.attempts)
    try:
        checked = call.schema.validate(value)
    except SchemaMismatch as exc:
        raise ExtractionFailed(
            f"{what} a value that breaks the schema: {exc.message}",
            attempts=attempts,
            last_error=exc,
        ) from None
    chunks = len(parts) if agreement is None else max(p.chunks for p in parts)
    return Extraction(
        checked,
        parts[-1].raw,
        attempts,
        model,
        host,
        chunks,
        tuple(call.schema.ground(value, call.text)[0]),
        confidence=agreement if agreement is not None else {},
        samples=1 if agreement is None else len(parts),
    )
