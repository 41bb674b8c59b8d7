"""The grammar-safe form of a schema: what Ollama's ``format`` can turn into a grammar.

Ollama hands a ``format`` schema to llama.cpp's json-schema-to-grammar, which supports a subset
of JSON Schema, silently ignores some keywords and rejects others (an unanchored ``pattern``, a
schema it does not recognise). This module rewrites a schema into that subset: local ``$ref``s
inlined (recursive ones kept under ``$defs``), Optional ``anyOf`` collapsed, ``const`` as
``enum``, and every keyword the grammar cannot honour dropped, with a note saying so.

Dropping a keyword only loosens the grammar, and the reply is validated against the original
schema anyway: every value the schema accepts, the grammar can write. The one deliberate
tightening is the converter's own: keys not named in ``properties`` are never generated unless
``additionalProperties`` is a schema (so a required key is always named there). Keywords are
read as the schema's draft reads them (``$ref`` siblings before 2019-09, ``items`` arrays
before 2020-12); where no faithful rewrite exists (dynamic references, conflicting ``allOf``
parts, blow-up from inlining) there is no grammar at all.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
from referencing.exceptions import Unresolvable

from .formats import CHECKED_FORMATS
from .gbnf import unenforced_notes
from .schema_combine import (
    ANY,
    Conflict,
    Never,
    either,
    finish,
    integer_bounds,
    is_number,
    merge,
    types_of,
)
from .schema_pattern import MAX_COUNT, grammar_pattern
from .schema_walk import Parts, SchemaIndex, json_path

if TYPE_CHECKING:
    from .schema_walk import Scope

# Integer bounds the converter handles safely (it parses them as 64-bit integers).
MAX_INT_BOUND = 2**53
# Inlining references can grow a schema exponentially; past this many nodes, give up.
MAX_NODES = 5000
# The one format whose grammar writes every string jsonschema's check accepts: the grammar's
# "time" wants 3 fraction digits and an offset; jsonschema takes a "uuid" ending in "}".
DATE_FORMATS = frozenset({"date"})
# Drafts in which a $ref makes every keyword beside it ignored.
_REF_ALONE = (jsonschema.Draft4Validator, jsonschema.Draft6Validator, jsonschema.Draft7Validator)

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
}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
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
    # The form is what the server converts: add whatever its converter still leaves out.
    return form, [*converter.notes, *unenforced_notes(form)]


class _Converter:
    def __init__(self, index: SchemaIndex) -> None:
        self.index = index
        draft = jsonschema.validators.validator_for(
            index.root, default=jsonschema.Draft202012Validator
        )
        self.keywords = frozenset(draft.VALIDATORS)  # what this draft's validator reads
        self.ref_alone = draft in _REF_ALONE
        # A format stays in the grammar only where replies are checked for it too (every draft:
        # extract checks one fixed set of formats).
        self.formats = DATE_FORMATS & set(CHECKED_FORMATS)
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
        node = self.applicable(node)
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

    def applicable(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """The keywords of ``node`` that its draft's validator reads (it ignores the rest)."""
        if self.ref_alone and "$ref" in node:
            return {"$ref": node["$ref"]}
        return {key: value for key, value in node.items() if key in self.keywords}

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
            branches.append(combined)
        return either(branches)

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
        if extra is not False and not isinstance(extra, Mapping):
            return  # other keys are allowed: the converter's tightening leaves them out
        # patternProperties is not enforced, so a key it admits is one more "other" key.
        patterns = node.get("patternProperties")
        others: list[tuple[Parts, Any]] = [
            (("patternProperties", name), sub)
            for name, sub in (patterns.items() if isinstance(patterns, Mapping) else ())
        ]
        if isinstance(extra, Mapping):
            others.append((("additionalProperties",), extra))
        admitted: list[dict[str, Any]] = []
        for where, sub in others:
            with contextlib.suppress(Never):  # a schema no value matches admits no key
                admitted.append(self.sub(sub, resolver, (*parts, *where), stack))
        out["additionalProperties"] = either(admitted) if admitted else False

    def arrays(
        self,
        node: Mapping[str, Any],
        resolver: Scope,
        parts: Parts,
        stack: tuple[int, ...],
        out: dict[str, Any],
    ) -> None:
        """Items as the converter takes them: an exact tuple, or one schema for every item."""
        tuple_key, rest_key = "prefixItems", "items"
        if isinstance(node.get("items"), list):  # before 2020-12, a tuple is an items array
            tuple_key, rest_key = "items", "additionalItems"
        positions = node.get(tuple_key)
        low, high = self.count_bounds(node, ("minItems", "maxItems"), parts)
        slots: list[dict[str, Any]] = []
        for i, sub in enumerate(positions if isinstance(positions, list) else ()):
            try:
                slots.append(self.sub(sub, resolver, (*parts, tuple_key, i), stack))
            except Never:  # no array reaches this position
                high = i if high is None else min(high, i)
                break
        allowed = slots[:high] if high is not None else slots
        if high is None or high > len(slots):
            rest = node.get(rest_key, True)
            try:
                allowed = [*slots, self.sub(rest, resolver, (*parts, rest_key), stack)]
            except Never:  # nothing may follow the tuple
                high = len(slots)
        if high == 0:
            out["items"], out["maxItems"] = dict(ANY), 0
            return
        if slots and low >= len(slots) == high:
            out["prefixItems"] = slots  # exactly the tuple: what the converter writes
            return
        if slots:
            self.note((*parts, tuple_key), "the position of each item is not enforced")
        item = either(allowed)
        if item != ANY:
            out["items"] = item
        if low:
            out["minItems"] = low
        if high is not None:
            out["maxItems"] = high

    def strings(self, node: Mapping[str, Any], parts: Parts, out: dict[str, Any]) -> None:
        low, high = self.count_bounds(node, ("minLength", "maxLength"), parts)
        if low:
            out["minLength"] = low
        if high is not None:
            out["maxLength"] = high
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            spelled, problem = grammar_pattern(pattern)
            if problem:
                self.note((*parts, "pattern"), problem)
            else:
                out["pattern"] = spelled
        fmt = node.get("format")
        if isinstance(fmt, str):
            if fmt in self.formats:
                out["format"] = fmt
            else:
                self.note((*parts, "format"), f"format {fmt!r} is not enforced")

    def count_bounds(
        self, node: Mapping[str, Any], keys: tuple[str, str], parts: Parts
    ) -> tuple[int, int | None]:
        """The (low, high) count bounds the grammar can repeat: 0 and None when absent."""
        bounds: list[int | None] = []
        for key in keys:
            value = node.get(key)
            if is_number(value) and value > MAX_COUNT:
                self.note((*parts, key), f"{key} above {MAX_COUNT} is not enforced")
                value = None
            bounds.append(int(value) if is_number(value) else None)
        low, high = bounds
        return low or 0, high

    def numbers(self, node: Mapping[str, Any], parts: Parts, out: dict[str, Any]) -> None:
        present = [k for k in _BOUNDS if k in node]
        if not present:
            return
        types = types_of(node.get("type"))
        if "integer" not in types or "number" in types:
            for key in present:
                self.note((*parts, key), "number bounds are not enforced")
            return
        low, high = integer_bounds(node)
        if low is not None and high is not None and low > high:
            if types == ["integer"]:
                raise Never
            for key in present:  # no integer fits, but the node's other types still do
                self.note((*parts, key), "integer bounds are not enforced")
            return
        for key, value in (("minimum", low), ("maximum", high)):
            if value is not None and abs(value) > MAX_INT_BOUND:
                self.note((*parts, key), "an integer bound this large is not enforced")
            elif value is not None:
                out[key] = value
