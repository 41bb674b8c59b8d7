"""The grammar-safe form of a schema: what Ollama's ``format`` can turn into a grammar.

Ollama hands a ``format`` schema to llama.cpp's json-schema-to-grammar, which supports a subset
of JSON Schema, silently ignores some keywords and rejects others (an unanchored ``pattern``, a
schema it does not recognise). This module rewrites a schema into that subset: local ``$ref``s
inlined (recursive ones kept under ``$defs``), Optional ``anyOf`` collapsed, ``const`` as
``enum``, and every keyword the grammar cannot honour dropped, with a note saying so.

Dropping a keyword only loosens the grammar, and the reply is validated against the original
schema anyway. The one deliberate tightening is the converter's own: keys not named in
``properties`` are never generated unless ``additionalProperties`` is a schema. Where no
faithful rewrite exists (dynamic references, conflicting ``allOf`` parts, blow-up from
inlining) there is no grammar at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeGuard

from referencing.exceptions import Unresolvable

from .schema_combine import ANY, Conflict, Never, collapse_optional, finish, merge, types_of
from .schema_walk import Parts, SchemaIndex, json_path

if TYPE_CHECKING:
    from .schema_walk import Scope

# Repetition counts expand into one grammar rule per step; past this they are not worth it.
MAX_COUNT = 1000
# Integer bounds the converter handles safely (it parses them as 64-bit integers).
MAX_INT_BOUND = 2**53
# Inlining references can grow a schema exponentially; past this many nodes, give up.
MAX_NODES = 5000
DATE_FORMATS = frozenset({"date", "time", "date-time", "uuid"})

_NOTES = {
    "multipleOf": "multipleOf is not enforced",
    "uniqueItems": "uniqueItems is not enforced",
    "not": "not is not enforced",
    "if": "if/then/else is not enforced",
    "patternProperties": "patternProperties is not enforced",
    "propertyNames": "propertyNames is not enforced",
    "minProperties": "minProperties is not enforced",
    "maxProperties": "maxProperties is not enforced",
    "dependentRequired": "dependentRequired is not enforced",
    "dependentSchemas": "dependentSchemas is not enforced",
    "dependencies": "dependencies is not enforced",
    "unevaluatedProperties": "unevaluatedProperties is not enforced",
    "unevaluatedItems": "unevaluatedItems is not enforced",
    "contains": "contains is not enforced",
    "additionalItems": "additionalItems is not enforced",
}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
# Escapes the converter turns into literals; any other escape breaks its grammar.
_ESCAPABLE = frozenset("^$.[]()|{}*+?\\")
_CLASS_ESCAPABLE = frozenset("[]\\")
_DEF_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class _GiveUp(Exception):
    def __init__(self, reason: str, parts: Parts) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts = parts


def grammar_form(index: SchemaIndex) -> tuple[dict[str, Any] | None, list[str]]:
    """The grammar-safe schema (None when none can be derived) and what it does not enforce.

    Each note reads ``"<JSON path of the keyword>: <what is not enforced>"``.
    """
    converter = _Converter(index)
    try:
        form = converter.root()
    except _GiveUp as exc:
        where = json_path(exc.parts)
        return None, [f"{where}: {exc.reason}; no grammar, so only JSON syntax is enforced"]
    return form, list(converter.notes)


class _Converter:
    def __init__(self, index: SchemaIndex) -> None:
        self.index = index
        self.notes: dict[str, None] = {}  # ordered and deduplicated
        self.nodes = 0
        self.names: dict[int, str] = {}  # id(recursive target) -> its name under $defs
        self.targets: dict[str, tuple[Mapping[str, Any], Scope, Parts]] = {}

    def note(self, parts: Parts, message: str) -> None:
        self.notes[f"{json_path(parts)}: {message}"] = None

    def root(self) -> dict[str, Any]:
        root = self.index.root
        try:
            out = self.convert(root, self.index.resolver, (), (id(root),))
        except Never:
            raise _GiveUp("the schema matches nothing", ()) from None
        defs: dict[str, dict[str, Any]] = {}
        while todo := [name for name in self.targets if name not in defs]:
            for name in todo:
                target, resolver, parts = self.targets[name]
                try:
                    defs[name] = self.convert(target, resolver, parts, (id(target),))
                except Never:
                    raise _GiveUp("a recursive definition matches nothing", parts) from None
        return {**out, "$defs": dict(sorted(defs.items()))} if defs else out

    def sub(
        self, node: Any, resolver: Scope, parts: Parts, stack: tuple[int, ...]
    ) -> dict[str, Any]:
        """Convert a subschema that may be a boolean."""
        if node is True:
            return dict(ANY)
        if node is False:
            raise Never
        return self.convert(node, resolver, parts, stack)

    def convert(
        self, node: Mapping[str, Any], resolver: Scope, parts: Parts, stack: tuple[int, ...]
    ) -> dict[str, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _GiveUp(f"more than {MAX_NODES} subschemas after inlining $refs", parts)
        resolver = self.index.enter(node, resolver)
        for keyword in ("$dynamicRef", "$recursiveRef"):
            if keyword in node:
                raise _GiveUp(f"{keyword} cannot be expressed as a grammar", (*parts, keyword))
        forms = [self.own(node, resolver, parts, stack)]
        if isinstance(node.get("$ref"), str):
            forms.append(self.ref(node["$ref"], resolver, parts, stack))
        for i, branch in enumerate(node.get("allOf") or ()):
            forms.append(self.sub(branch, resolver, (*parts, "allOf", i), stack))
        merged = self.merged(forms, parts)
        keyword = "anyOf" if "anyOf" in node else "oneOf"
        alternatives = node.get(keyword)
        if isinstance(alternatives, list):
            if "anyOf" in node and "oneOf" in node:
                self.note((*parts, "oneOf"), "oneOf beside anyOf is not enforced")
            elif keyword == "oneOf" and len(alternatives) > 1:
                self.note((*parts, "oneOf"), "matching exactly one branch is not enforced")
            merged = self.union(merged, alternatives, resolver, (*parts, keyword), stack)
        return finish(merged)

    def merged(self, forms: list[dict[str, Any]], parts: Parts) -> dict[str, Any]:
        try:
            return merge(forms)
        except Conflict as exc:
            raise _GiveUp(f"parts of the schema disagree on {exc.key!r}", parts) from None

    def ref(
        self, ref: str, resolver: Scope, parts: Parts, stack: tuple[int, ...]
    ) -> dict[str, Any]:
        try:
            target, target_resolver, where = self.index.resolve(ref, resolver)
        except Unresolvable:  # checked at load in lexical scope; a ref reached otherwise
            raise _GiveUp(f"$ref {ref!r} cannot be resolved here", (*parts, "$ref")) from None
        if isinstance(target, bool):
            return self.sub(target, target_resolver, (*parts, "$ref"), stack)
        if where is None:
            raise _GiveUp(f"$ref {ref!r} does not point at a subschema", (*parts, "$ref"))
        if id(target) in stack:
            return {"$ref": f"#/$defs/{self.name(target, target_resolver, where)}"}
        return self.convert(target, target_resolver, where, (*stack, id(target)))

    def name(self, target: Mapping[str, Any], resolver: Scope, where: Parts) -> str:
        """The ``$defs`` name a recursive target gets in the grammar form.

        The converter splits pointers on ``/`` without unescaping, so names stay plain.
        """
        if id(target) not in self.names:
            base = _DEF_NAME.sub("-", str(where[-1])).strip("-") if where else ""
            base = base or "schema"
            name, n = base, 2
            while name in self.targets:
                name, n = f"{base}-{n}", n + 1
            self.names[id(target)] = name
            self.targets[name] = (target, resolver, where)
        return self.names[id(target)]

    def union(
        self,
        base: dict[str, Any],
        alternatives: list[Any],
        resolver: Scope,
        parts: Parts,
        stack: tuple[int, ...],
    ) -> dict[str, Any]:
        branches: list[dict[str, Any]] = []
        for i, branch in enumerate(alternatives):
            try:
                converted = self.sub(branch, resolver, (*parts, i), stack)
                combined = (
                    finish(self.merged([base, converted], (*parts, i))) if base else converted
                )
            except Never:
                continue
            if combined not in branches:
                branches.append(combined)
        if not branches:
            raise Never
        return branches[0] if len(branches) == 1 else collapse_optional(branches)

    def own(
        self, node: Mapping[str, Any], resolver: Scope, parts: Parts, stack: tuple[int, ...]
    ) -> dict[str, Any]:
        """The node's own keywords (not $ref, allOf, anyOf, oneOf) in grammar-safe form."""
        out: dict[str, Any] = {}
        for keyword in node:
            if keyword in _NOTES:
                self.note((*parts, keyword), _NOTES[keyword])
        if "type" in node:
            out["type"] = node["type"]
        if "const" in node:
            out["enum"] = [node["const"]]
        elif isinstance(node.get("enum"), list):
            out["enum"] = list(node["enum"])
        if "enum" in out:
            return out  # the values say everything the grammar needs
        self.objects(node, resolver, parts, stack, out)
        self.arrays(node, resolver, parts, stack, out)
        self.strings(node, parts, out)
        self.numbers(node, parts, out)
        return out

    def objects(
        self,
        node: Mapping[str, Any],
        resolver: Scope,
        parts: Parts,
        stack: tuple[int, ...],
        out: dict[str, Any],
    ) -> None:
        required = [r for r in node.get("required") or () if isinstance(r, str)]
        if isinstance(node.get("properties"), Mapping):
            properties: dict[str, Any] = {}
            for name, sub in node["properties"].items():
                try:
                    properties[name] = self.sub(sub, resolver, (*parts, "properties", name), stack)
                except Never:
                    if name in required:
                        raise
            out["properties"] = properties
        if required:  # kept whole: the names may be defined by a $ref or allOf sibling
            out["required"] = list(dict.fromkeys(required))
        extra = node.get("additionalProperties")
        if extra is False:
            out["additionalProperties"] = False
        elif isinstance(extra, Mapping):
            try:
                out["additionalProperties"] = self.convert(
                    extra, resolver, (*parts, "additionalProperties"), stack
                )
            except Never:
                out["additionalProperties"] = False

    def arrays(
        self,
        node: Mapping[str, Any],
        resolver: Scope,
        parts: Parts,
        stack: tuple[int, ...],
        out: dict[str, Any],
    ) -> None:
        items = node.get("items")
        tuple_key = "items" if isinstance(items, list) else "prefixItems"  # drafts before 2020-12
        positions = node.get(tuple_key)
        if isinstance(positions, list):
            try:
                out["prefixItems"] = [
                    self.sub(sub, resolver, (*parts, tuple_key, i), stack)
                    for i, sub in enumerate(positions)
                ]
            except Never:
                raise _GiveUp("a tuple position matches nothing", (*parts, tuple_key)) from None
            return  # the converter generates exactly the tuple; counts do not apply
        if items is not None:
            try:
                out["items"] = self.sub(items, resolver, (*parts, "items"), stack)
            except Never:
                out["items"], out["maxItems"] = dict(ANY), 0
                return
        self.counts(node, ("minItems", "maxItems"), parts, out)

    def strings(self, node: Mapping[str, Any], parts: Parts, out: dict[str, Any]) -> None:
        self.counts(node, ("minLength", "maxLength"), parts, out)
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            problem = _pattern_problem(pattern)
            if problem:
                self.note((*parts, "pattern"), problem)
            else:
                out["pattern"] = pattern
        fmt = node.get("format")
        if isinstance(fmt, str):
            if fmt in DATE_FORMATS:
                out["format"] = fmt
            else:
                self.note((*parts, "format"), f"format {fmt!r} is not enforced")

    def counts(
        self, node: Mapping[str, Any], keys: tuple[str, str], parts: Parts, out: dict[str, Any]
    ) -> None:
        for key in keys:
            value = node.get(key)
            if not _is_number(value):
                continue
            if value > MAX_COUNT:
                self.note((*parts, key), f"{key} above {MAX_COUNT} is not enforced")
            else:
                out[key] = int(value)

    def numbers(self, node: Mapping[str, Any], parts: Parts, out: dict[str, Any]) -> None:
        present = [k for k in _BOUNDS if k in node]
        if not present:
            return
        types = types_of(node.get("type"))
        if "integer" not in types or "number" in types:
            for key in present:
                self.note((*parts, key), "number bounds are not enforced")
            return
        low, high = _integer_bounds(node)
        if low is not None and high is not None and low > high:
            raise Never
        for key, value in (("minimum", low), ("maximum", high)):
            if value is not None and abs(value) > MAX_INT_BOUND:
                self.note((*parts, key), "an integer bound this large is not enforced")
            elif value is not None:
                out[key] = value


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer_bounds(node: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Inclusive integer bounds from any draft's minimum/maximum/exclusive* keywords."""
    lows: list[int] = []
    highs: list[int] = []
    minimum, maximum = node.get("minimum"), node.get("maximum")
    ex_min, ex_max = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if _is_number(minimum):  # draft 4 spells "exclusive" as a boolean beside the bound
        exclusive = ex_min is True and float(minimum).is_integer()
        lows.append(math.floor(minimum) + 1 if exclusive else math.ceil(minimum))
    if _is_number(ex_min):
        lows.append(math.floor(ex_min) + 1)
    if _is_number(maximum):
        exclusive = ex_max is True and float(maximum).is_integer()
        highs.append(math.ceil(maximum) - 1 if exclusive else math.floor(maximum))
    if _is_number(ex_max):
        highs.append(math.ceil(ex_max) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _pattern_problem(pattern: str) -> str | None:
    """Why the converter cannot take this pattern, or None when it can.

    The converter wants ``^...$`` and knows a small regex subset: no ``(?`` groups, no class
    escapes like ``\\d``, no anchors inside; a pattern outside that subset is dropped.

    >>> _pattern_problem("^[A-Z]{2}-[0-9]+$") is None
    True
    >>> _pattern_problem("[a-z]+")
    'pattern is not anchored with ^...$, so it is not enforced'
    >>> _pattern_problem(r"^\\d+$")
    'pattern uses regex features the grammar lacks, so it is not enforced'
    """
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$" or pattern.endswith("\\$"):
        return "pattern is not anchored with ^...$, so it is not enforced"
    unsupported = "pattern uses regex features the grammar lacks, so it is not enforced"
    body, i, depth, atom = pattern[1:-1], 0, 0, False
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPABLE:
                return unsupported
            i, atom = i + 2, True
            continue
        if c == "[":
            i += 1
            while i < len(body) and body[i] != "]":
                if body[i] == "\\" and (i + 1 >= len(body) or body[i + 1] not in _CLASS_ESCAPABLE):
                    return unsupported
                i += 2 if body[i] == "\\" else 1
            if i >= len(body):
                return unsupported
            i, atom = i + 1, True
            continue
        if c == "{":
            match = _QUANTIFIER.match(body, i)
            if not atom or match is None:
                return unsupported
            counts = [int(n) for n in (match.group(1), match.group(3)) if n]
            if any(n > MAX_COUNT for n in counts):
                return f"pattern repeats more than {MAX_COUNT} times, so it is not enforced"
            i = match.end()
            continue
        if c in "^$}" or (c == "(" and body[i + 1 : i + 2] == "?") or (c in "*+?" and not atom):
            return unsupported
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0:
            return unsupported
        atom = c not in "(|"
        i += 1
    return unsupported if depth else None
