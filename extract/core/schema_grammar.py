"""The grammar-safe form of a schema: what Ollama's ``format`` can turn into a grammar.

Ollama hands a ``format`` schema to llama.cpp's json-schema-to-grammar, which supports a subset
of JSON Schema, silently ignores some keywords and rejects others (an unanchored ``pattern``, a
schema it does not recognise). This module rewrites a schema into that subset: local ``$ref``s
inlined (recursive ones, and parts many references share, kept under ``$defs``), Optional
``anyOf`` collapsed, ``const`` as ``enum``, and every keyword the grammar cannot honour dropped,
with a note saying so. ``schema_spelling`` then writes the result in the form every converter
reads alike (no list ``type`` beside other keywords, safe ``$defs`` names).

Dropping a keyword only loosens the grammar, and the reply is validated against the original
schema anyway: every value the schema accepts, the grammar can write. The one deliberate
tightening is the converter's own: keys not named in ``properties`` are never generated unless
``additionalProperties`` is a schema (so a required key is always named there). Keywords are
read as the schema's draft reads them (``$ref`` siblings before 2019-09, ``items`` arrays
before 2020-12), switching where a subschema declares another ``$schema``, as ``jsonschema``
does; where no faithful rewrite exists (dynamic references, conflicting ``allOf``
parts, blow-up from inlining) there is no grammar at all.
"""

from __future__ import annotations

import contextlib
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
from .schema_spelling import Speller, def_name
from .schema_walk import Parts, SchemaIndex, json_path

if TYPE_CHECKING:
    from .schema_walk import Scope

# Integer bounds the converter handles safely (it parses them as 64-bit integers).
MAX_INT_BOUND = 2**53
# Subschemas converted (a part many references share is converted once); past this, give up.
MAX_NODES = 20000
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
        form, defs = converter.root()
    except _GiveUp as exc:
        where = json_path(exc.parts)
        return None, [f"{where}: {exc.reason}; no grammar, so only JSON syntax is enforced"]
    shared = {
        id(f): converter.where[key] for key, f in converter.memo.items() if converter.uses[key] > 1
    }
    # A shared part that is also a recursive definition is referred to by that definition.
    defined = {
        id(converter.memo[key]): name
        for key in converter.memo
        if (name := converter.names.get(key[0])) is not None
    }
    speller = Speller(shared, defined, set(defs) | converter.reserved)
    spelled = speller.spell(form, defs)
    # The form is what the server converts: add whatever its converter still leaves out.
    return spelled, [*converter.notes, *unenforced_notes(spelled)]


def _draft(schema: Any, default: type[Any]) -> type[Any]:
    """The validator class ``jsonschema`` reads ``schema`` with (its own $schema, else default)."""
    cls: type[Any] = jsonschema.validators.validator_for(schema, default=default)
    return cls


class _Converter:
    def __init__(self, index: SchemaIndex) -> None:
        self.index = index
        self.draft = _draft(index.root, jsonschema.Draft202012Validator)
        # A format stays in the grammar only where replies are checked for it too (every draft:
        # extract checks one fixed set of formats).
        self.formats = DATE_FORMATS & set(CHECKED_FORMATS)
        self.notes: dict[str, None] = {}  # ordered and deduplicated
        self.nodes = 0
        self.names: dict[int, str] = {}  # id(recursive target) -> its name under $defs
        self.targets: dict[str, tuple[Mapping[str, Any], Scope, Parts]] = {}
        # A reference's target is converted once per draft; shared ones go under $defs.
        self.memo: dict[tuple[int, type[Any]], dict[str, Any]] = {}
        self.uses: dict[tuple[int, type[Any]], int] = {}
        self.where: dict[tuple[int, type[Any]], str] = {}
        # Rule names the converters give the root's properties: no $defs name may take one.
        properties = index.root.get("properties")
        self.reserved = set(properties) if isinstance(properties, Mapping) else set()

    def note(self, parts: Parts, message: str) -> None:
        self.notes[f"{json_path(parts)}: {message}"] = None

    def root(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The root's form, and the recursive definitions it refers to by name."""
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
                    defs[name] = self.convert(target, resolver, parts, (id(target),), True)
                except Never:
                    raise _GiveUp("a recursive definition matches nothing", parts) from None
        return out, defs

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
        self,
        node: Mapping[str, Any],
        resolver: Scope,
        parts: Parts,
        stack: tuple[int, ...],
        entered: bool = False,
    ) -> dict[str, Any]:
        """``node`` in grammar-safe form; ``entered`` when ``resolver`` is already its scope
        (a reference's target)."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _GiveUp(f"more than {MAX_NODES} subschemas after inlining $refs", parts)
        resolver = resolver if entered else self.index.enter(node, resolver)
        outer = self.draft
        self.draft = _draft(node, outer)  # a nested $schema switches the draft, as jsonschema does
        try:
            return self.converted(node, resolver, parts, stack)
        finally:
            self.draft = outer

    def converted(
        self, node: Mapping[str, Any], resolver: Scope, parts: Parts, stack: tuple[int, ...]
    ) -> dict[str, Any]:
        node = self.applicable(node)
        for keyword in ("$dynamicRef", "$recursiveRef"):
            if keyword in node:
                raise _GiveUp(f"{keyword} cannot be expressed as a grammar", (*parts, keyword))
        forms = [self.own(node, resolver, parts, stack)]
        if isinstance(node.get("$ref"), str):
            forms.append(self.ref(node["$ref"], resolver, parts, stack))
            if forms[0] == {} and not any(k in node for k in ("allOf", "anyOf", "oneOf")):
                return forms[1]  # the target's own form, so that a shared one stays shared
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
        if self.draft in _REF_ALONE and "$ref" in node:
            return {"$ref": node["$ref"]}
        return {key: value for key, value in node.items() if key in self.draft.VALIDATORS}

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
        if not isinstance(target, Mapping):
            raise _GiveUp(f"$ref {ref!r} does not point at a subschema", (*parts, "$ref"))
        # A target under no keyword (a $defs entry grouping others, a metaschema) is noted
        # at the reference.
        where = (*parts, "$ref") if where is None else where
        if id(target) in stack:
            return {"$ref": f"#/$defs/{self.name(target, target_resolver, where)}"}
        key = (id(target), _draft(target, self.draft))
        if key not in self.memo:
            converted = self.convert(target, target_resolver, where, (*stack, id(target)), True)
            self.memo[key], self.uses[key] = converted, 0
            self.where[key] = str(where[-1]) if where else "schema"
        self.uses[key] += 1
        return self.memo[key]

    def name(self, target: Mapping[str, Any], resolver: Scope, where: Parts) -> str:
        """The ``$defs`` name a recursive target gets in the grammar form (see
        ``schema_spelling.def_name``)."""
        if id(target) not in self.names:
            base = str(where[-1]) if where else "schema"
            name = def_name(base, lambda n: n in self.targets or n in self.reserved)
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
        if "enum" in out and _holds_ref_key(out["enum"]):
            # A converter reads any object with a "$ref" key as a reference, values included.
            self.note(
                (*parts, "const" if "const" in node else "enum"),
                'an option holding a "$ref" key is not enforced (only its type is)',
            )
            kinds = list(dict.fromkeys(_json_type(v) for v in out.pop("enum")))
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
            return out
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
        if isinstance(node.get("properties"), Mapping) and "$ref" in node["properties"]:
            self.note(
                (*parts, "properties", "$ref"),
                "a property named $ref cannot be named in a grammar (converters read it as a"
                " reference): its key is not enforced, other keys may take its place",
            )
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


def _holds_ref_key(value: Any) -> bool:
    """Whether a JSON value holds an object with a ``"$ref"`` key, at any depth."""
    if isinstance(value, dict):
        return "$ref" in value or any(_holds_ref_key(v) for v in value.values())
    return isinstance(value, list) and any(_holds_ref_key(v) for v in value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
