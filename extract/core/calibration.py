"""Calibrated choices: the model's bias toward some options, measured and taken out.

A small model leans toward some options whatever the document says (the first one listed,
one it saw often). Its lean is measured by asking the same prompt about a document with no
content, ``N/A`` ("content-free", as in Zhao et al. 2021, *Calibrate Before Use*): the option
scores it gives then are its prior. The calibrated choice is the option whose score rose most
over that prior, ``argmax(score - prior)``; its confidence is the softmax of those differences.
A batch knows more than ``N/A``: a typical document of its own leans differently from an empty
one. The in-domain prior (Fei et al. 2023, *Mitigating Label Biases for In-context Learning*)
is the mean score over a few documents of random words drawn from the batch
(:func:`domain_documents`): in-domain, but about nothing. Unlike the batch's mean score
(:class:`RunningPrior` over real documents), it does not assume the labels are balanced.

Scores are the normalised option log-probabilities of ``core.confidence``. Priors are keyed by
the field's place in the schema (``$.items[].kind``), so one prior serves every item of an
array. Everything here is pure; the client makes the ``N/A`` request and keeps a
:class:`PriorCache`. A value changed by calibration must be validated again by the caller.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .choices import option_key
from .confidence import ChoiceScores
from .prompt import prompt_head
from .schema import Schema
from .schema_walk import Parts
from .wire import Metrics

CONTENT_FREE_DOCUMENT = "N/A"
DEFAULT_CACHE_SIZE = 256
# The in-domain prior: how many documents of random words it averages (its spread over such
# documents is about 0.3 nats for SmolLM2-135M, so 16 put its mean within about 0.08), one per
# four texts drawn from below that (a small batch should not pay more for its prior than for
# its records), and the longest one (200 random words say what more would).
DOMAIN_DOCUMENTS = 16
DOMAIN_MIN_DOCUMENTS = 4
DOMAIN_MAX_WORDS = 200
# How far from 0 and 1 a confidence is kept, so that its log-odds stay finite.
_EDGE = 1e-9

PriorKey = tuple[str, str, str]
"""(model, prompt without its document, schema fingerprint)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Prior:
    """The model's lean per field: field key → option (canonical JSON) → mean log-probability."""

    fields: Mapping[str, Mapping[str, float]]

    @classmethod
    def from_scores(cls, scores: Iterable[ChoiceScores]) -> Prior:
        """The prior from the scores of one reply (a content-free one) or of many (a batch):
        each option's log-probability averaged over every occurrence of its field."""
        running = RunningPrior()
        running.add(scores)
        return running.prior()


@dataclasses.dataclass(frozen=True, slots=True)
class LearnedPrior:
    """An in-domain prior as learned: the prior, the documents it was read from, and the
    server's counters summed over their requests (its cost)."""

    prior: Prior
    documents: int
    usage: Metrics


class RunningPrior:
    """Mean option scores over the replies seen so far: the batch prior, kept as it grows.

    Not shared between threads without a lock of the caller's.
    """

    def __init__(self) -> None:
        self._sums: dict[str, dict[str, float]] = collections.defaultdict(dict)
        self._counts: dict[str, int] = collections.defaultdict(int)

    def add(self, scores: Iterable[ChoiceScores]) -> None:
        """Count the scored fields of one more reply (``score_choices(...).values()``)."""
        for field in scores:
            sums = self._sums[field.key]
            for option, logprob in field.by_option().items():
                sums[option] = sums.get(option, 0.0) + logprob
            self._counts[field.key] += 1

    def prior(self) -> Prior:
        """The mean of each option's log-probability over the fields counted so far."""
        fields = {
            key: {o: s / self._counts[key] for o, s in sums.items()}
            for key, sums in self._sums.items()
        }
        return Prior(fields)


def scaled(confidence: float, temperature: float) -> float:
    """``confidence`` with its log-odds divided by ``temperature``: ``T < 1`` sharpens
    confidences that run low, ``T > 1`` softens them; 0.5 and the order of confidences stay.

    >>> round(scaled(0.75, 1.0), 6), round(scaled(0.75, 0.5), 6)
    (0.75, 0.9)
    """
    if temperature == 1.0:
        return confidence
    p = min(max(confidence, _EDGE), 1 - _EDGE)
    z = math.log(p / (1 - p)) / temperature
    # The logistic, written so that neither side overflows.
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def fit_temperature(points: Sequence[tuple[float, bool]]) -> float:
    """The temperature, to two decimals between 0.01 and 100, under which ``points``
    ((confidence, right) pairs from labeled records) have the least log-loss.

    The log-loss is convex in ``1 / T`` (a logistic fit of one weight), so a ternary search
    finds its minimum. Raises ValueError for no points.

    Nine right of ten at 0.6: the temperature that makes 0.6 read 0.9.

    >>> fit_temperature([(0.6, True)] * 9 + [(0.6, False)])
    0.18
    """
    if not points:
        raise ValueError("fitting a temperature needs at least one labeled confidence")
    odds = [
        (math.log(p / (1 - p)), right)
        for c, right in points
        for p in (min(max(c, _EDGE), 1 - _EDGE),)
    ]

    def loss(weight: float) -> float:
        # -log σ(±w·x), written to stay finite for large |w·x|.
        return sum(_softplus(-weight * x if right else weight * x) for x, right in odds)

    low, high = 0.01, 100.0
    for _ in range(100):
        a, b = low + (high - low) / 3, high - (high - low) / 3
        low, high = (low, b) if loss(a) <= loss(b) else (a, high)
    return min(max(round(2 / (low + high), 2), 0.01), 100.0)


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def domain_documents(texts: Sequence[str], count: int | None = None, seed: int = 0) -> list[str]:
    """``count`` documents of words drawn at random (with ``seed``) from ``texts``, each as long
    as the median text (at most :data:`DOMAIN_MAX_WORDS`); none when ``texts`` has no word.
    By default one per four texts, between ``DOMAIN_MIN_DOCUMENTS`` and ``DOMAIN_DOCUMENTS``.

    Words are split on whitespace; texts written without spaces (most have fewer than three
    words) are drawn from character by character instead.

    >>> domain_documents(["a b c", "d e f"], count=2)
    ['f e c', 'b d c']
    """
    spaced = bool(texts) and statistics.median(len(text.split()) for text in texts) >= 3
    pieces = [text.split() if spaced else list("".join(text.split())) for text in texts]
    units = [unit for piece in pieces for unit in piece]
    if not units:
        return []
    length = max(1, min(int(statistics.median(len(piece) for piece in pieces)), DOMAIN_MAX_WORDS))
    if count is None:
        count = min(max(len(texts) // 4, DOMAIN_MIN_DOCUMENTS), DOMAIN_DOCUMENTS)
    draw = random.Random(seed)
    glue = " " if spaced else ""
    return [glue.join(draw.choices(units, k=length)) for _ in range(count)]


def calibrated(scores: ChoiceScores, prior: Prior) -> ChoiceScores | None:
    """``scores`` with the prior taken out: the options' ``score - prior`` renormalised, and the
    chosen option now the best of them (the reply's own choice on a tie).

    None when the prior does not cover the field or one of its options.
    """
    lean = prior.fields.get(scores.key)
    if lean is None:
        return None
    keys = [option_key(o) for o in scores.options]
    if any(k not in lean for k in keys):
        return None
    shifted = [lp - lean[k] for lp, k in zip(scores.logprobs, keys, strict=True)]
    top = max(shifted)
    norm = top + math.log(sum(math.exp(s - top) for s in shifted))
    normalised = tuple(s - norm for s in shifted)
    best = scores.chosen
    for i, s in enumerate(normalised):
        if s > normalised[best]:
            best = i
    return dataclasses.replace(scores, logprobs=normalised, chosen=best)


@dataclasses.dataclass(frozen=True, slots=True)
class Calibration:
    """A value after calibration: the value, the calibrated scores, the paths whose value
    changed (validate the value again when any did)."""

    value: Any
    scores: dict[str, ChoiceScores]
    changed: tuple[str, ...]


def calibrate(value: Any, scores: Mapping[str, ChoiceScores], prior: Prior) -> Calibration:
    """Calibrate every scored field of ``value`` (JSON data) against ``prior``.

    Fields the prior does not cover keep their value and their scores. ``value`` itself is not
    changed: a changed field is written into a copy (see :func:`replace_at`).
    """
    out: dict[str, ChoiceScores] = {}
    changed: list[str] = []
    for path, field in scores.items():
        fixed = calibrated(field, prior)
        if fixed is None:
            out[path] = field
            continue
        out[path] = fixed
        if fixed.chosen != field.chosen:
            value = replace_at(value, field.parts, fixed.options[fixed.chosen])
            changed.append(path)
    return Calibration(value, out, tuple(changed))


def replace_at(value: Any, parts: Parts, new: Any) -> Any:
    """A copy of ``value`` with the item at ``parts`` replaced by ``new``; the containers along
    the path are copied, the rest shared. Raises KeyError or IndexError when there is no item
    at ``parts``.

    >>> replace_at({"a": [1, 2]}, ("a", 1), 5)
    {'a': [1, 5]}
    """
    if not parts:
        return new
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict) and isinstance(head, str):
        return {**value, head: replace_at(value[head], rest, new)}
    if isinstance(value, list) and isinstance(head, int):
        copy = list(value)
        copy[head] = replace_at(value[head], rest, new)
        return copy
    raise KeyError(head)


def prior_key(model: str, prompt: str, schema: Schema) -> PriorKey:
    """What a content-free prior depends on: the model, the prompt before its document (task,
    shape, examples) and the schema."""
    return (model, prompt_head(prompt), schema.fingerprint)


class PriorCache:
    """The last ``size`` priors by :data:`PriorKey`, least recently used dropped first.

    Each method is one or two dict operations, so threads may share a cache: at worst two of
    them ask for the same prior once each.
    """

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.size = size
        self._items: collections.OrderedDict[PriorKey, Prior] = collections.OrderedDict()

    def get(self, key: PriorKey) -> Prior | None:
        """The prior kept for ``key``, or None."""
        prior = self._items.get(key)
        if prior is not None:
            with contextlib.suppress(KeyError):  # dropped by another thread meanwhile
                self._items.move_to_end(key)
        return prior

    def put(self, key: PriorKey, prior: Prior) -> None:
        """Keep ``prior`` for ``key``, dropping the oldest beyond ``size``."""
        self._items[key] = prior
        while len(self._items) > self.size:
            try:
                self._items.popitem(last=False)
            except KeyError:
                break

    def __len__(self) -> int:
        return len(self._items)
