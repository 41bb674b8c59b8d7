"""How sure the model was of each choice field, read from the reply's token log-probabilities.

A server asked for ``logprobs`` (and ``top_logprobs``) sends, for every generated token, its
log-probability and the most likely tokens at its place, all taken from the model's raw
distribution before the grammar or the sampler (see ``extract/server/_logprobs.py``). For a
choice field (``core.choices``) the options are weighed where they part ways:

- The tokens that spell the value are walked in order. At each one, every listed token is
  matched against the options: the text so far plus that token must start an option's JSON
  (``"billing"``, ``true``) or hold all of it followed by JSON punctuation. A token that fits
  no option is ignored (the grammar forbids it); one that fits every option still open (the
  opening quote alone, a space) says nothing and is ignored too; a token that fits several
  options shares its probability among them evenly.
- Where the chosen token leaves some options behind, each of them gets its share of the
  probability there, renormalised over the options still open; the walk goes on with the
  options the chosen token still fits, until one is left. So ``"feature_request"`` against
  ``"feature_flag"`` is decided at ``_request``, and against ``"billing"`` at the first token.
- An option missing from the listed tokens where it leaves gets the lowest listed
  probability (the most it can have), so confidence errs low, never high.

The result is each option's log-probability, normalised over the options: the confidence is
that of the chosen one. A field that cannot be scored is left out: no logprobs, no listed
alternatives, a reply that needed repair (its text no longer matches its tokens), a token
that does not line up with the text. Nothing here raises on what a server sends.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from .choices import option_key, options_at
from .json_spans import Span, scalar_spans
from .schema import Schema
from .schema_walk import Parts, json_path
from .wire import TokenLogprob

# The version of how confidences are computed here and calibrated (``calibration``). A
# threshold set on confidences of one version means nothing for another: bump it whenever a
# change moves the numbers, so labeling configs tuned before it are refused.
SCORING_VERSION = 1

_WS = " \t\n\r"
_AFTER_VALUE = ("", ",", "}", "]")


@dataclasses.dataclass(frozen=True, slots=True)
class ChoiceScores:
    """How one reply weighed the options of one choice field.

    ``options`` are the schema's, in its order; ``logprobs`` their log-probabilities,
    normalised over the options; ``chosen`` the index of the option the reply holds.
    """

    parts: Parts
    options: tuple[Any, ...]
    logprobs: tuple[float, ...]
    chosen: int

    @property
    def path(self) -> str:
        """The field's JSON path in the value, e.g. ``$.items[2].kind``."""
        return json_path(self.parts)

    @property
    def key(self) -> str:
        """The field's place in the schema: its path with array indexes as ``[]``."""
        return field_key(self.parts)

    @property
    def confidence(self) -> float:
        """The probability of the chosen option against the others."""
        return math.exp(self.logprobs[self.chosen])

    def by_option(self) -> dict[str, float]:
        """Each option's log-probability, keyed by the option's canonical JSON."""
        return {option_key(o): lp for o, lp in zip(self.options, self.logprobs, strict=True)}


def field_key(parts: Parts) -> str:
    """A location's path with every array index as ``[]``: the same field in every item.

    >>> field_key(("entities", 3, "type"))
    '$.entities[].type'
    """
    return json_path(tuple(p if isinstance(p, str) else -1 for p in parts)).replace("[-1]", "[]")


def score_choices(
    schema: Schema, text: str, logprobs: Sequence[TokenLogprob] | None
) -> dict[str, ChoiceScores]:
    """The scores of every choice field of a reply that can be scored, by JSON path.

    ``text`` is the reply as generated and ``logprobs`` its entries (``GenerateResult.logprobs``);
    the reply should already be valid. Never raises on what the server sent: a field that
    cannot be scored is simply absent, and no logprobs give ``{}``.
    """
    if not logprobs:
        return {}
    spans = scalar_spans(text)
    if spans is None:
        return {}
    starts = _offsets(text, logprobs)
    scored: dict[str, ChoiceScores] = {}
    for span in spans:
        options = options_at(schema.index, span.parts)
        if options is None:
            continue
        chosen = _index_of(options, span.value)
        if chosen is None:
            continue
        logprob = _walk(text, span, options, chosen, starts, logprobs)
        if logprob is not None:
            scored[json_path(span.parts)] = ChoiceScores(span.parts, options, logprob, chosen)
    return scored


def confidences(
    schema: Schema, text: str, logprobs: Sequence[TokenLogprob] | None
) -> dict[str, float]:
    """The confidence of every choice field that can be scored, by JSON path; see
    :func:`score_choices`."""
    return {path: s.confidence for path, s in score_choices(schema, text, logprobs).items()}


def _index_of(options: tuple[Any, ...], value: Any) -> int | None:
    key = option_key(value)
    return next((i for i, o in enumerate(options) if option_key(o) == key), None)


def _offsets(text: str, entries: Sequence[TokenLogprob]) -> list[int]:
    """Where each token starts in ``text``, up to the first that does not line up (a character
    split over tokens arrives as replacement characters and stops the mapping there)."""
    starts: list[int] = []
    at = 0
    for entry in entries:
        if not text.startswith(entry.token, at):
            break
        starts.append(at)
        at += len(entry.token)
    return starts


def _spelled(option: Any, span: Span, text: str, chosen: bool) -> str:
    # The chosen option is spelled as the reply spelled it (escapes and all).
    if chosen:
        return text[span.start : span.end]
    return option_key(option)


def _walk(
    text: str,
    span: Span,
    options: tuple[Any, ...],
    chosen: int,
    starts: list[int],
    entries: Sequence[TokenLogprob],
) -> tuple[float, ...] | None:
    spelled = [_spelled(o, span, text, i == chosen) for i, o in enumerate(options)]
    first = next((k for k, s in enumerate(starts) if s + len(entries[k].token) > span.start), None)
    if first is None:
        return None
    live = frozenset(range(len(options)))
    path = 0.0  # log-probability of the text so far, among the options
    final: dict[int, float] = {}
    for k in range(first, len(starts)):
        if len(live) == 1:
            break
        fits = _Fits(text, span.start, starts[k], spelled, live)
        entry = entries[k]
        kept = fits(entry.token)
        if not kept:
            return None  # the reply's own token fits none of its options: it does not line up
        if kept == live:
            continue  # not where the options part
        if not entry.top:
            return None
        path = part(_mass(entry, fits, live), entry, live, kept, final, path)
        live = kept
    if live != {chosen}:
        return None
    final[chosen] = path
    return tuple(final[i] for i in range(len(options)))


def part(
    mass: dict[int, float],
    entry: TokenLogprob,
    live: frozenset[int],
    kept: frozenset[int],
    final: dict[int, float],
    path: float,
) -> float:
    """Split the probability at a token where the options part: each option left behind
    (``live - kept``) gets its final log-probability in ``final``, from its share of ``mass``
    (an option missing from the top alternatives gets the least listed one's, not zero); the
    log-probability of going on with ``kept`` is returned."""
    floor = math.exp(min(t.logprob for t in entry.top))
    for option in live - kept:
        mass[option] = mass.get(option) or floor
    total = sum(mass.get(o, 0.0) for o in live)
    for option in live - kept:
        final[option] = path + math.log(mass[option] / total)
    return path + math.log(sum(mass.get(o, 0.0) for o in kept) / total)


def _mass(entry: TokenLogprob, fits: _Fits, live: frozenset[int]) -> dict[int, float]:
    """Each open option's probability at this token, from every listed token that tells them
    apart (the chosen one included, since the grammar may have forced it off the list)."""
    listed = {t.token: t.logprob for t in entry.top}
    listed.setdefault(entry.token, entry.logprob)
    mass: dict[int, float] = {}
    for token, logprob in listed.items():
        group = fits(token)
        if not group or group == live:
            continue
        share = math.exp(logprob) / len(group)
        for option in group:
            mass[option] = mass.get(option, 0.0) + share
    return mass


class _Fits:
    """Which open options a token at ``at`` would keep, given the value starts at ``start``."""

    def __init__(
        self, text: str, start: int, at: int, spelled: list[str], live: frozenset[int]
    ) -> None:
        self.spelled = spelled
        self.live = live
        # A token may begin before the value (``:"`` or `` "``): that part must match, bar the
        # whitespace before the value, which JSON leaves free.
        self.head = text[at:start].rstrip(_WS) if at < start else ""
        self.before = at < start
        self.done = text[start:at] if at >= start else ""

    def __call__(self, token: str) -> frozenset[int]:
        if self.before:
            if not token.startswith(self.head):
                # A token that stops inside the part before the value says nothing yet.
                return self.live if self.head.startswith(token) else frozenset()
            candidate = token[len(self.head) :].lstrip(_WS)
            if not candidate:
                return self.live
        else:
            candidate = self.done + token
        return frozenset(o for o in self.live if _consistent(candidate, self.spelled[o]))


def _consistent(candidate: str, spelled: str) -> bool:
    """Whether text ``candidate`` can begin a reply whose value is ``spelled``."""
    if spelled.startswith(candidate):
        return True
    return candidate.startswith(spelled) and candidate[len(spelled) :].lstrip(_WS)[:1] in (
        _AFTER_VALUE
    )
