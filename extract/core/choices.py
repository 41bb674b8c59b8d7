"""The options of a choice field: what a schema allows at a location, when it is a short list.

A choice field is one whose values can be listed: an ``enum``, a ``const``, a boolean, or
``anyOf``/``oneOf`` alternatives that are all of these (Optional ones included, so ``null`` can
be an option). Confidence and calibration weigh these options against each other; a field
whose values cannot be listed (free text, numbers) is not a choice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from referencing.exceptions import Unresolvable

from .schema_walk import Parts, SchemaIndex

if TYPE_CHECKING:
    from .schema_walk import Scope

MAX_DEPTH = 64  # references followed at one location before giving up
_TYPE_OF = {bool: "boolean", str: "string", type(None): "null", dict: "object", list: "array"}


def option_key(value: Any) -> str:
    """An option's identity: its canonical JSON (so ``true`` and ``1`` stay apart).

    >>> option_key(True), option_key(1), option_key("a")
    ('true', '1', '"a"')
    """
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def options_at(index: SchemaIndex, parts: Parts) -> tuple[Any, ...] | None:
    """The options the schema allows at ``parts`` (a location in a value), in schema order.

    None when the location is not a choice field, or when the schema there is too involved to
    list its values (several branches of an ``anyOf`` leading there, ``allOf`` with choices).
    """
    nodes = _nodes_at(index, index.root, index.resolver, parts)
    if nodes is None or len(nodes) != 1:
        return None
    node, resolver = nodes[0]
    found = _options(index, node, resolver, 0)
    if found is None or len(found) < 2:
        return None
    return tuple({option_key(v): v for v in found}.values())


def node_at(index: SchemaIndex, parts: Parts) -> Any | None:
    """The one subschema that governs ``parts`` (``$ref`` followed), or None when none or
    several do, or one cannot be followed."""
    nodes = _nodes_at(index, index.root, index.resolver, parts)
    if nodes is None or len(nodes) != 1:
        return None
    return nodes[0][0]


def _resolved(
    index: SchemaIndex, node: Any, resolver: Scope, depth: int
) -> tuple[Any, Scope] | None:
    """``node`` with a bare ``$ref`` followed (siblings of a ``$ref`` are kept only when alone)."""
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        if depth > MAX_DEPTH:
            return None
        resolver = index.enter(node, resolver)
        try:
            target, resolver, _ = index.resolve(node["$ref"], resolver)
        except Unresolvable:
            return None
        extra = {k: v for k, v in node.items() if k not in ("$ref", "description", "title")}
        if extra:  # a $ref with constraints beside it: too involved to list
            return None
        node, depth = target, depth + 1
    if isinstance(node, Mapping):
        resolver = index.enter(node, resolver)
    return node, resolver


def _nodes_at(
    index: SchemaIndex, node: Any, resolver: Scope, parts: Parts
) -> list[tuple[Any, Scope]] | None:
    """The subschemas that govern ``parts`` below ``node``; None when one cannot be followed."""
    resolved = _resolved(index, node, resolver, 0)
    if resolved is None:
        return None
    node, resolver = resolved
    if not parts:
        return [(node, resolver)]
    if not isinstance(node, Mapping) or "allOf" in node:
        return None
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list) and not any(k in node for k in ("properties", "items")):
        found: list[tuple[Any, Scope]] = []
        for branch in branches:
            below = _nodes_at(index, branch, resolver, parts)
            if below is None:
                return None
            found.extend(below)
        return found
    head, rest = parts[0], parts[1:]
    child = _child(node, head)
    if child is None:
        return []  # this branch cannot hold the location (say, the null of an Optional)
    return _nodes_at(index, child, resolver, rest)


def _child(node: Mapping[str, Any], head: str | int) -> Any | None:
    if isinstance(head, str):
        properties = node.get("properties")
        if isinstance(properties, Mapping) and head in properties:
            return properties[head]
        extra = node.get("additionalProperties")
        return extra if isinstance(extra, Mapping) else None
    prefix = node.get("prefixItems")
    items = node.get("items")
    if isinstance(items, list):  # draft 4-7 tuple form
        prefix, items = items, node.get("additionalItems")
    if isinstance(prefix, list) and head < len(prefix):
        return prefix[head]
    return items if isinstance(items, Mapping) else None


def _options(index: SchemaIndex, node: Any, resolver: Scope, depth: int) -> list[Any] | None:
    resolved = _resolved(index, node, resolver, depth)
    if resolved is None:
        return None
    node, resolver = resolved
    if not isinstance(node, Mapping) or "allOf" in node:
        return None
    kinds = _kinds(node.get("type"))
    if "const" in node:
        values = [node["const"]]
    elif isinstance(node.get("enum"), list):
        values = list(node["enum"])
    elif isinstance(branches := node.get("anyOf") or node.get("oneOf"), list):
        values = []
        for branch in branches:
            found = _options(index, branch, resolver, depth + 1)
            if found is None:
                return None
            values.extend(found)
    elif kinds and set(kinds) <= {"boolean", "null"}:
        values = ([True, False] if "boolean" in kinds else []) + ([None] if "null" in kinds else [])
    else:
        return None
    if kinds:  # "type" beside an enum narrows it
        values = [v for v in values if _type_name(v) in kinds or _is_integral(v, kinds)]
    return values


def _kinds(kind: Any) -> list[str]:
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def _type_name(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return _TYPE_OF.get(type(value), "")


def _is_integral(value: Any, kinds: list[str]) -> bool:
    return "integer" in kinds and _type_name(value) == "number" and float(value).is_integer()
