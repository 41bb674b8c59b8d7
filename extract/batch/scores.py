"""What a record reports beside its value, and how the cache keeps it.

A record's ``scores`` hold, for each scored choice field (by JSON path), the calibrated
probability of every option the schema allows: ``{"$.category": {"billing": 0.71, ...}}``.
Options are keyed as class labels: a string option as it is, any other (a boolean, a number,
null) as its JSON. The chosen option's probability is the field's ``confidence``; when a
confidence temperature rescales that confidence, the other options share what is left in the
proportions the model gave them, so each distribution still sums to 1.

The cache stores a value together with this report (``confidence``, ``scores``, ``samples``,
``chunks``), so a record served from the cache says what the record that filled it said.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from ..core.choices import option_key
from ..core.confidence import ChoiceScores

Distributions = dict[str, dict[str, float]]
DIGITS = 4  # decimals kept in the output line


def option_label(option: Any) -> str:
    """An option as a key of ``scores``: a string as it is, anything else as its JSON.

    >>> option_label("billing"), option_label(True), option_label(None)
    ('billing', 'true', 'null')
    """
    return option if isinstance(option, str) else option_key(option)


def distributions(
    choices: Mapping[str, ChoiceScores], confidence: Mapping[str, float]
) -> Distributions:
    """Each scored choice field's probability per option, agreeing with ``confidence``.

    ``choices`` are an Extraction's (calibrated) option scores; ``confidence`` its reported
    confidences, which a confidence temperature may have moved away from the chosen option's
    probability: the chosen option then gets the reported confidence and the others are
    rescaled to share the rest. A field without a reported confidence keeps its scores.

    >>> s = ChoiceScores(("c",), ("a", "b", "c"), tuple(map(math.log, (0.5, 0.3, 0.2))), 0)
    >>> rounded(distributions({"$.c": s}, {"$.c": 0.75}))
    {'$.c': {'a': 0.75, 'b': 0.15, 'c': 0.1}}
    """
    out: Distributions = {}
    for path, field in choices.items():
        probs = [math.exp(lp) for lp in field.logprobs]
        chosen = probs[field.chosen]
        reported = confidence.get(path, chosen)
        rest = 1.0 - chosen
        for i, p in enumerate(probs):
            if i == field.chosen:
                probs[i] = reported
            elif rest > 0:
                probs[i] = p * (1.0 - reported) / rest
            else:  # the model gave the others nothing: they share what the temperature freed
                probs[i] = (1.0 - reported) / (len(probs) - 1)
        out[path] = {option_label(o): p for o, p in zip(field.options, probs, strict=True)}
    return out


def rounded(scores: Mapping[str, Mapping[str, float]]) -> Distributions:
    """``scores`` with every probability rounded as the output line writes it."""
    return {path: {k: round(p, DIGITS) for k, p in d.items()} for path, d in scores.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """What a record says about its value: per-field confidence, option scores, samples
    voted on and pieces read. The cache stores it beside the value."""

    confidence: Mapping[str, float] = dataclasses.field(default_factory=dict)
    scores: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    samples: int = 1
    chunks: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": dict(self.confidence),
            "scores": {path: dict(d) for path, d in self.scores.items()},
            "samples": self.samples,
            "chunks": self.chunks,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Report | None:
        """The report a cache entry holds; None when it holds none or one this code cannot
        read (the entry is then computed again)."""
        if not isinstance(data, Mapping):
            return None
        try:
            confidence = {str(k): float(v) for k, v in data.get("confidence", {}).items()}
            scores = {
                str(path): {str(k): float(p) for k, p in d.items()}
                for path, d in data.get("scores", {}).items()
            }
            samples, chunks = int(data.get("samples", 1)), int(data.get("chunks", 1))
        except (AttributeError, TypeError, ValueError):
            return None
        return cls(confidence, scores, samples, chunks)


def salted_key(key: str, scoring: Mapping[str, Any]) -> str:
    """A cache key that also depends on how confidence is scored (confidence on or off,
    calibration and its prior, the temperature, samples): the report differs with them, and
    so may the value, since calibration can change a choice.

    >>> salted_key("k", {"samples": 1}) == salted_key("k", {"samples": 1})
    True
    >>> salted_key("k", {"samples": 1}) == salted_key("k", {"samples": 3})
    False
    """
    blob = json.dumps({"key": key, "scoring": scoring}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
