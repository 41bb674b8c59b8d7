"""Self-consistency: several sampled replies to one prompt, reduced to one value by vote.

Where the replies agree the value is trusted more; the share of replies that hold the voted
value is the field's confidence. Objects are voted key by key (recursively), so two replies
that differ in one field still agree on the others; any other value (a string, a number, a
list, null) is one ballot, compared as canonical JSON. Ties go to the value seen first.

The voted value mixes fields from different replies, so it can break a rule that spans fields:
validate it again, and fall back to the first reply that holds the voted choices (or the first
valid reply) when it fails.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .schema_walk import Parts, json_path

_MISSING = object()  # a key a reply left out: it takes part in the vote, and can win it
_OBJECT = "{object}"  # the ballot of every object, whose keys are then voted one by one


@dataclasses.dataclass(frozen=True, slots=True)
class Vote:
    """The voted value, and per JSON path of each voted leaf the share of replies holding it."""

    value: Any
    agreement: dict[str, float]


def vote(values: Sequence[Any]) -> Vote:
    """The majority value of ``values`` (JSON data, one per sampled reply) and its agreement.

    Raises ConfigError when ``values`` is empty.

    >>> v = vote([{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "y"}])
    >>> v.value, v.agreement
    ({'a': 1, 'b': 'y'}, {'$.a': 0.6666666666666666, '$.b': 0.6666666666666666})
    """
    if not values:
        raise ConfigError("vote needs at least one value")
    agreement: dict[str, float] = {}
    value = _vote(list(values), len(values), (), agreement)
    return Vote(value, agreement)


def _ballot(value: Any) -> str:
    if value is _MISSING:
        return ""
    if isinstance(value, dict):
        return _OBJECT
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _vote(values: list[Any], total: int, parts: Parts, agreement: dict[str, float]) -> Any:
    """The winner among ``values`` (the rest of the ``total`` replies lacked this place)."""
    counts: dict[str, int] = {}
    first: dict[str, Any] = {}
    for value in values:
        ballot = _ballot(value)
        counts[ballot] = counts.get(ballot, 0) + 1
        first.setdefault(ballot, value)
    winner = max(counts, key=lambda b: counts[b])  # max keeps the first of equals
    if winner != _OBJECT:
        if first[winner] is not _MISSING:  # a key most replies leave out stays out
            agreement[json_path(parts)] = counts[winner] / total
        return first[winner]
    objects = [v for v in values if isinstance(v, dict)]
    out: dict[str, Any] = {}
    keys = dict.fromkeys(k for obj in objects for k in obj)
    for key in keys:
        voted = _vote([obj.get(key, _MISSING) for obj in objects], total, (*parts, key), agreement)
        if voted is not _MISSING:
            out[key] = voted
    return out
