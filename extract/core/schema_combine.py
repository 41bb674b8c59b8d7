"""Combining grammar-form fragments: allOf parts, ``$ref`` siblings, anyOf bases.

Every function here takes converted (grammar-safe) schemas and returns one; they raise
:class:`Never` when the parts admit no value at all, and :class:`Conflict` when they constrain
the same keyword in ways the grammar cannot express together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

# Any JSON value. A bare {} means "any object" to the converter, so spell every type out.
ANY: dict[str, Any] = {"type": ["string", "number", "boolean", "object", "array", "null"]}
# Keywords that settle which values a node admits: without one, the converter reads a node's
# properties, items or pattern as "an object", "an array" or "a string", where JSON Schema
# admits every other type too, so such a node gets ANY's types.
_DECIDING = ("type", "enum", "anyOf", "$ref")


# Alternatives longer than this (characters of JSON) are compared by identity only.
MAX_COMPARED = 4000


class Never(Exception):
    """No value can match here (a ``false`` subschema, an empty enum, disjoint types)."""


class Conflict(Exception):
    """Two parts constrain ``key`` differently and no single form expresses both."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def types_of(value: Any) -> list[str]:
    """The type names a ``type`` keyword allows, as a list."""
    if isinstance(value, str):
        return [value]
    return [t for t in value or () if isinstance(t, str)] if isinstance(value, list) else []


def json_key(value: Any) -> str:
    """Text equal for equal JSON values, as JSON Schema compares them.

    >>> json_key([1.0, {"b": True, "a": None}]) == json_key([1, {"a": None, "b": True}])
    True
    >>> json_key(True) == json_key(1)
    False
    """

    def plain(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return json.dumps(plain(value), sort_keys=True)


def _intersect_types(a: Any, b: Any) -> str | list[str]:
    left, right = types_of(a), types_of(b)
    both = [t for t in left if t in right]
    if "integer" in left + right and "number" in left + right and "integer" not in both:
        both.append("integer")  # every integer is a number
    if not both:
        raise Never
    return both[0] if len(both) == 1 else list(dict.fromkeys(both))


def _combine(key: str, a: Any, b: Any) -> Any:
    """Both ``a`` and ``b`` constrain ``key``: the form that satisfies both."""
    if key == "type":
        return _intersect_types(a, b)
    if key == "enum":
        allowed = {json_key(v) for v in b}
        values = [v for v in a if json_key(v) in allowed]
        if not values:
            raise Never
        return values
    if key == "required":
        return list(dict.fromkeys([*a, *b]))
    if key == "properties":
        return _combine_properties(a, b)
    if key == "additionalProperties":
        if a is False or b is False:
            return False
        try:
            return finish(merge([a, b]))
        except Never:
            return False
    if key == "items":
        return finish(merge([a, b]))  # Never here: merge lets no items through
    if key in ("minLength", "minItems", "minimum"):
        return max(a, b)
    if key in ("maxLength", "maxItems", "maximum"):
        return min(a, b)
    raise Conflict(key)


def _combine_properties(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for name, sub in b.items():
        if name not in out:
            out[name] = sub
            continue
        try:
            out[name] = finish(merge([out[name], sub]))
        except Never:  # the key cannot appear; objects without it still can
            del out[name]
    return out


def merge(forms: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine converted schemas that must all hold (allOf, $ref siblings, anyOf bases)."""
    out: dict[str, Any] = {}
    for form in forms:
        for key, value in form.items():
            if key not in out or out[key] == value:
                out[key] = value
                continue
            try:
                out[key] = _combine(key, out[key], value)
            except Never:
                if key != "items":
                    raise
                out["items"], out["maxItems"] = dict(ANY), 0  # no item fits: only []
    return out


def finish(form: dict[str, Any]) -> dict[str, Any]:
    """Make a converted node one the converter recognises, and reads as JSON Schema does."""
    if "enum" in form and "type" in form:
        types = types_of(form.pop("type"))
        form["enum"] = [v for v in form["enum"] if _is_type(v, types)]
    if "enum" in form and not form["enum"]:
        raise Never
    if not any(key in form for key in _DECIDING):
        form = {**ANY, **form}
    if "enum" not in form:
        _name_required(form)
    return form


def _name_required(form: dict[str, Any]) -> None:
    """Put every required key under ``properties``: the converter writes no other required key.

    Where the converter reads ``properties`` (or ``additionalProperties``), it writes only the
    keys named there, plus extra ones for a schema-valued ``additionalProperties``; a required
    name missing from ``properties`` would make every written object invalid. The value schema
    is what such a key admits here: ``additionalProperties``, or any value.
    """
    required = form.get("required")
    if not required or ("properties" not in form and "additionalProperties" not in form):
        return
    properties = form.get("properties", {})
    extra = form.get("additionalProperties")
    value = extra if isinstance(extra, dict) else ANY
    missing = {name: dict(value) for name in required if name not in properties}
    if missing:
        form["properties"] = {**properties, **missing}


def larger_than(value: Any, limit: int) -> bool:
    """Whether ``value``'s JSON text is longer than about ``limit`` characters.

    Forms share parts (a part many references reach is one object), so their text can be
    exponentially longer than the objects: this stops counting past the limit.

    >>> larger_than({"type": "string"}, 10), larger_than({"type": "string"}, 100)
    (True, False)
    """
    left = limit

    def count(v: Any) -> None:
        nonlocal left
        if isinstance(v, dict):
            left -= 2
            for key, item in v.items():
                left -= len(key) + 4
                if left < 0:
                    return
                count(item)
        elif isinstance(v, list):
            left -= 2
            for item in v:
                if left < 0:
                    return
                count(item)
        else:
            left -= len(json.dumps(v))

    count(value)
    return left < 0


def either(forms: list[dict[str, Any]]) -> dict[str, Any]:
    """A form admitting what any of ``forms`` admits; raises Never when there are none."""
    # Equal alternatives are written once. A large form is told apart by identity only:
    # its text can be exponentially long (see larger_than).
    unique = list(
        {
            (str(id(form)) if larger_than(form, MAX_COMPARED) else json_key(form)): form
            for form in forms
        }.values()
    )
    if not unique:
        raise Never
    if ANY in unique:
        return dict(ANY)
    return unique[0] if len(unique) == 1 else collapse_optional(unique)


def _is_type(value: Any, types: list[str]) -> bool:
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int | float):
        whole = isinstance(value, int) or value.is_integer()
        return "number" in types or ("integer" in types and whole)
    return (
        (isinstance(value, str) and "string" in types)
        or (isinstance(value, list) and "array" in types)
        or (isinstance(value, dict) and "object" in types)
    )


def collapse_optional(branches: list[dict[str, Any]]) -> dict[str, Any]:
    """``anyOf: [X, {"type": "null"}]`` as X accepting null, where X allows it plainly."""
    null = {"type": "null"}
    if len(branches) == 2 and null in branches:
        other = branches[1 - branches.index(null)]
        kind = other.get("type")
        if "anyOf" in other and len(other) == 1:
            return {"anyOf": [*other["anyOf"], null]}
        if "anyOf" not in other and "$ref" not in other:
            if "enum" in other:
                none_in = any(v is None for v in other["enum"])
                return {**other, "enum": other["enum"] if none_in else [*other["enum"], None]}
            if isinstance(kind, str):
                return {**other, "type": [kind, "null"]}
            if isinstance(kind, list):
                return {**other, "type": kind if "null" in kind else [*kind, "null"]}
    return {"anyOf": branches}


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer_bounds(node: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Inclusive integer bounds from any draft's minimum/maximum/exclusive* keywords."""
    lows: list[int] = []
    highs: list[int] = []
    minimum, maximum = node.get("minimum"), node.get("maximum")
    ex_min, ex_max = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if is_number(minimum):  # draft 4 spells "exclusive" as a boolean beside the bound
        exclusive = ex_min is True and float(minimum).is_integer()
        lows.append(math.floor(minimum) + 1 if exclusive else math.ceil(minimum))
    if is_number(ex_min):
        lows.append(math.floor(ex_min) + 1)
    if is_number(maximum):
        exclusive = ex_max is True and float(maximum).is_integer()
        highs.append(math.ceil(maximum) - 1 if exclusive else math.floor(maximum))
    if is_number(ex_max):
        highs.append(math.ceil(ex_max) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)
