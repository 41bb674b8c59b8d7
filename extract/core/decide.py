"""Choice fields decided without generating them: extract writes the JSON, and the model is
asked only for the one token where a field's options part. No I/O.

For a schema whose every field is a choice (``core.choices``: enum, const, boolean, and
``anyOf``/``oneOf`` of these, inside objects at any depth), a reply is fixed text around the
choices: ``{"label": "negative"}`` is ``{"label": `` + one option + ``}``. So instead of
generating it token by token, :func:`decide` asks the server to continue a reply already
written up to the next deciding token (a prefill), for one token, with the most likely tokens
at that place (``top_logprobs``), and reads the options' weights from them:

- The prefill holds the punctuation every option opens with (the quote of string options),
  not more: a shared word cut short would split where the model's own tokens do not.
- The listed tokens are matched against the options exactly as ``core.confidence`` matches a
  generated reply's tokens (its ``_consistent``): a token may begin an option, or hold all of
  it and JSON punctuation; one that fits several options shares its probability evenly; one
  fits none is what a schema grammar would have forbidden.
- The option taken is that of the most likely listed token that fits one: what greedy
  decoding under the grammar would have taken. When that token still fits several options
  (they share a prefix beyond it: ``"feature_request"``, ``"feature_flag"``), the prefill
  grows by it and the next token is asked for; the options left behind get their share where
  they leave, renormalised over the options still open, as in ``core.confidence``, and a
  token all open options share moves nothing. So a field costs one request for options that
  differ from their first token, and one more per token of a shared prefix.
- An option missing from the listed tokens where it leaves gets the lowest listed probability.

The result is the reply's text and each field's ``ChoiceScores``, as ``score_choices`` would
give for the same reply generated whole with the same log-probabilities (so calibration and
confidence apply unchanged). Whatever cannot be read this way (no listed alternatives, no
listed token that fits an option, options that never part) gives None: the caller generates
the reply as before.

The requests go without ``format``: a schema grammar starts at the beginning of a reply, so
under one a prefilled reply would be constrained as if it started over (Ollama passes
``format`` to the runner for the generated tokens only, ``server/routes.go`` ChatHandler).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Generator, Mapping
from typing import Any

from .choices import node_at, option_key, options_at
from .confidence import ChoiceScores, _consistent, part
from .schema import Schema
from .schema_walk import Parts, json_path
from .wire import GenerateRequest, TokenLogprob

# Alternatives asked per deciding token: Ollama's most.
TOP_LOGPROBS = 20
# Requests one field may take before it is given up on (options sharing long prefixes).
MAX_STEPS = 8
_WS = " \t\n\r"


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One choice field of a layout: where it is and its options, as JSON text."""

    parts: Parts
    options: tuple[Any, ...]
    spelled: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """A reply as fixed JSON text (``str`` items) around choice fields, in order."""

    items: tuple[str | Field, ...]

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(i for i in self.items if isinstance(i, Field))


Decision = tuple[str, dict[str, ChoiceScores]]
Decider = Generator[str, TokenLogprob | None, Decision | None]


def layout(schema: Schema) -> Layout | None:
    """The layout of ``schema``'s replies when every field of it is a choice; else None.

    Objects must list every property as required (so the reply holds each one, in the
    schema's order) and allow nothing else in a way that would change that.

    >>> s = Schema.load({"type": "object", "properties": {"ok": {"type": "boolean"}},
    ...                  "required": ["ok"]})
    >>> layout(s).items
    ('{"ok": ', Field(parts=('ok',), options=(True, False), spelled=('true', 'false')), '}')
    """
    items = _walk(schema, ())
    if items is None or not any(isinstance(i, Field) for i in items):
        return None
    merged: list[str | Field] = []
    for item in items:
        if isinstance(item, str) and merged and isinstance(merged[-1], str):
            merged[-1] += item
        else:
            merged.append(item)
    return Layout(tuple(merged))


def _walk(schema: Schema, parts: Parts) -> list[str | Field] | None:
    options = options_at(schema.index, parts)
    if options is not None:
        return [Field(parts, options, tuple(option_key(o) for o in options))]
    node = node_at(schema.index, parts)
    if not isinstance(node, Mapping) or any(
        k in node for k in ("anyOf", "oneOf", "allOf", "not", "if", "patternProperties")
    ):
        return None
    properties = node.get("properties")
    required = node.get("required")
    if not isinstance(properties, Mapping) or not properties or not isinstance(required, list):
        return None
    if set(properties) != set(required):
        return None  # an optional property may be left out of a generated reply
    out: list[str | Field] = ["{"]
    for number, name in enumerate(properties):
        out.append(("" if number == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": ")
        below = _walk(schema, (*parts, name))
        if below is None:
            return None
        out.extend(below)
    out.append("}")
    return out


def decide(plan: Layout) -> Decider:
    """Decide every field of ``plan``: yields the reply text to continue for one token, and is
    sent the server's entry for that token (None when the reply had none); returns the reply's
    text and the scores of its fields by JSON path, or None when a field cannot be decided."""
    text = ""
    scores: dict[str, ChoiceScores] = {}
    for item in plan.items:
        if isinstance(item, str):
            text += item
            continue
        found = yield from _field(text, item)
        if found is None:
            return None
        chosen, logprobs = found
        text += item.spelled[chosen]
        scores[json_path(item.parts)] = ChoiceScores(item.parts, item.options, logprobs, chosen)
    return text, scores


def _field(
    head: str, field: Field
) -> Generator[str, TokenLogprob | None, tuple[int, tuple[float, ...]] | None]:
    spelled = field.spelled
    live = frozenset(range(len(spelled)))
    done = ""  # the value's text in the prefill so far
    path = 0.0  # log-probability of ``done`` among the options
    final: dict[int, float] = {}
    for _ in range(MAX_STEPS):
        if len(live) == 1:
            break
        if not done:
            done = _opening([spelled[o] for o in live])
        entry = yield head + done
        if entry is None or not entry.top:
            return None
        listed = {t.token: t.logprob for t in entry.top}
        listed.setdefault(entry.token, entry.logprob)
        groups = {token: _fits(done, token, spelled, live) for token in listed}
        fitting = [t for t in listed if groups[t]]
        if not fitting:
            return None  # the server did not continue the value (a template closed the turn)
        pick = max(fitting, key=lambda t: listed[t])
        kept = groups[pick]
        if kept == live:
            # Not where the options part (a prefix they share): take the token, ask again.
            done = _candidate(done, pick)
            if not done:
                return None  # only whitespace, which the next request would repeat
            continue
        mass: dict[int, float] = {}
        for token, logprob in listed.items():
            group = groups[token]
            if group and group != live:
                for option in group:
                    mass[option] = mass.get(option, 0.0) + math.exp(logprob) / len(group)
        path = part(mass, entry, live, kept, final, path)
        live = kept
        if len(live) > 1:
            done = _candidate(done, pick)
            if not all(spelled[o].startswith(done) for o in live):
                return None
    if len(live) != 1:
        return None
    (chosen,) = live
    final[chosen] = path
    return chosen, tuple(final[i] for i in range(len(spelled)))


def _candidate(done: str, token: str) -> str:
    # Whitespace before a value is free in JSON: a token's leading blanks there say nothing.
    return done + token if done else token.lstrip(_WS)


def _fits(done: str, token: str, spelled: tuple[str, ...], live: frozenset[int]) -> frozenset[int]:
    candidate = _candidate(done, token)
    if not candidate:
        return live
    return frozenset(o for o in live if _consistent(candidate, spelled[o]))


def _opening(texts: list[str]) -> str:
    """The punctuation every option opens with (the quote of strings): part of the prefill.
    A shared word is not, since the prefill would cut it where the model's tokens do not."""
    common = ""
    for chars in zip(*texts, strict=False):
        if len(set(chars)) > 1 or chars[0].isalnum() or chars[0] in "_-.":
            break
        common += chars[0]
    return common


def step_request(request: GenerateRequest) -> GenerateRequest:
    """``request`` as one deciding step: one token, its log-probabilities and the most likely
    alternatives, not streamed, and no ``format`` (see the module docstring)."""
    step: GenerateRequest = {k: v for k, v in request.items() if k != "format"}  # type: ignore[assignment]
    step["options"] = {**request.get("options", {}), "num_predict": 1}
    step["stream"] = False
    step["logprobs"] = True
    step["top_logprobs"] = TOP_LOGPROBS
    return step
