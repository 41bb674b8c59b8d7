"""A JSON Schema as a GBNF grammar, written the way Ollama has llama.cpp write it.

Ollama hands a ``format`` schema to llama.cpp's json-schema-to-grammar converter: since
ollama/ollama@fb30760996871fa9460115c753afd2c60d4ab0f7 through llama-server's ``json_schema``
field (``llm/llama_server.go``), at the llama.cpp tag pinned in its ``LLAMA_CPP_VERSION`` (b10488);
before that, vendored under ``llama/llama.cpp/common/`` (``Makefile.sync``, ``FETCH_HEAD``). This
module is our own converter with that one's behaviour, read from
ggml-org/llama.cpp@011c6c3c305634c65886cf7f32805907f667590c ``common/json-schema-to-grammar.cpp``
and its tests (``tests/test-json-schema-to-grammar.cpp``). It accepts and rejects the same JSON
texts; its rule names and layout are its own.

How a node is read, first match wins (every other keyword of the node is ignored):
``$ref``; ``oneOf``/``anyOf``; a ``type`` list (one branch per type, each keeping every sibling
keyword); ``const``; ``enum``; an object with ``properties`` or an ``additionalProperties`` other
than true (only listed keys, required ones first, then optional ones in order; other keys only
when ``additionalProperties`` is true or a schema); ``allOf`` (merged properties, or the common
``enum`` values); ``items``/``prefixItems`` with ``minItems``/``maxItems``; ``pattern``; the
formats uuid, date, time, date-time; string ``minLength``/``maxLength``; integer bounds; ``{}``
or ``type: object`` (any object); any other typeless object (any value); a primitive type.
Strings never hold raw control characters. Numbers have at most 16 digits before and after the
point. Nested ``$defs`` are hoisted to the root, and ``$ref`` must be a local ``#/`` pointer.

Where the C++ converter has a bug, this one does not copy it, and is stricter: a lower integer
bound with a zero after its first digit (105) lets shorter numbers through there, and negative
upper bounds admit leading zeros; two ``$ref`` targets whose names differ only in characters
other than letters, digits and ``-`` share one rule there; keys that must differ from every
property name are compared by code point here, by byte there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import SchemaError
from .gbnf_integers import digits_range
from .gbnf_pattern import PatternError, escape, pattern_rule
from .gbnf_rules import (
    APPLIES,
    BAD_NAME,
    BOUNDS,
    BUILTIN,
    DATE_FORMATS,
    TYPES,
    UUID,
    bound,
    bounds_read,
    class_member,
    constant,
    hoisted,
    int_or_none,
    pointer_index,
    repeat,
    separated,
)
from .schema_walk import Parts, json_path


class UnsupportedSchema(SchemaError):
    """llama.cpp's converter cannot turn this schema into a grammar (Ollama answers 400)."""


def schema_to_gbnf(schema: Mapping[str, Any]) -> str:
    """The GBNF grammar (root rule ``root``) llama.cpp would write for ``schema``.

    Raises:
        UnsupportedSchema: a schema the converter rejects: an unknown type, a non-local or
            unresolvable ``$ref``, a boolean subschema, an unanchored or unreadable pattern, a
            property named ``$ref``, and the like; ``path`` says where.
    """
    return _Converter(schema).grammar()


def unenforced_notes(form: Mapping[str, Any]) -> list[str]:
    """What a server converting ``form`` as Ollama does leaves unenforced, as notes.

    Each reads ``"<JSON path in form>: <what>"``: a keyword the converter ignores there, or
    the converter's refusal of the whole form (the server then answers 400).
    """
    try:
        ignored = ignored_keywords(form)
    except UnsupportedSchema as exc:
        return [f"{exc.path}: the grammar converter refuses this schema ({exc.message})"]
    return [f"{where}: {keyword} is not enforced by the grammar" for where, keyword in ignored]


def ignored_keywords(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(JSON path, keyword)`` of every assertion the grammar for ``schema`` leaves out.

    A keyword is ignored where the converter reads none of it on a branch whose type it
    constrains (``minLength`` beside a ``pattern``, ``minimum`` on a ``number``, siblings of a
    ``$ref``). Annotations (``title``, ``description``…) are not assertions.

    Raises:
        UnsupportedSchema: as ``schema_to_gbnf``.
    """
    converter = _Converter(schema)
    converter.grammar()
    return list(converter.ignored)


class _Converter:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.root = hoisted(schema)
        self.rules: dict[str, str | None] = {}  # None: reserved, body still being written
        self.ref_rules: dict[str, str] = {}
        self.ignored: dict[tuple[str, str], None] = {}
        for key in BUILTIN:
            self.rules[key] = None  # reserved: generated names never take them
        self.rules["root"] = None
        self.used: set[str] = set()

    def grammar(self) -> str:
        self._check_refs(self.root, ())
        self.rules["root"] = self.visit(self.root, "root", ())
        self.use("ws")
        for name in list(self.used):
            self._builtin(name)
        lines = [f"{name} ::= {body}" for name, body in self.rules.items() if body is not None]
        return "\n".join(lines) + "\n"

    # -- rules -----------------------------------------------------------------------------

    def _builtin(self, name: str) -> str:
        body, deps = BUILTIN[name]
        if self.rules.get(name) is None:
            self.rules[name] = body
            for dep in deps:
                self._builtin(dep)
        return name

    def fresh(self, hint: str) -> str:
        base = BAD_NAME.sub("-", hint) or "rule"
        name, n = base, 0
        while name in self.rules:
            name, n = f"{base}{n}", n + 1
        self.rules[name] = None
        return name

    def named(self, expression: str, hint: str) -> str:
        """``expression`` as one rule name (it may be one already)."""
        if expression in self.rules:
            return expression
        name = self.fresh(hint)
        self.rules[name] = expression
        return name

    # -- $ref ------------------------------------------------------------------------------

    def _check_refs(self, node: Any, parts: Parts) -> None:
        """Resolve every ``$ref`` up front, as the converter does: any object holding one."""
        if isinstance(node, list):
            for i, item in enumerate(node):
                self._check_refs(item, (*parts, i))
        elif isinstance(node, Mapping):
            if "$ref" in node:
                ref = node["$ref"]
                if not isinstance(ref, str):
                    raise UnsupportedSchema(
                        "the grammar converter reads every '$ref' key as a reference, "
                        "so a property named '$ref' cannot be used",
                        path=json_path((*parts, "$ref")),
                    )
                self.target(ref, parts)
                return  # the converter looks no deeper into an object with a $ref
            for key, value in node.items():
                self._check_refs(value, (*parts, key))

    def target(self, ref: str, parts: Parts) -> tuple[Any, Parts]:
        if not ref.startswith("#/"):
            raise UnsupportedSchema(f"Unsupported ref: {ref}", path=json_path(parts))
        node: Any = self.root
        where: Parts = ()
        # The converter splits on "/" and unescapes nothing (no ~0, ~1, %xx).
        for token in ref[2:].split("/"):
            if isinstance(node, Mapping) and token in node:
                node, where = node[token], (*where, token)
            elif isinstance(node, list) and pointer_index(token) < len(node):
                node, where = node[pointer_index(token)], (*where, pointer_index(token))
            else:
                raise UnsupportedSchema(
                    f"Error resolving ref {ref}: {token} not found", path=json_path(parts)
                )
        return node, where

    def ref(self, ref: str, parts: Parts) -> str:
        if ref not in self.ref_rules:
            target, where = self.target(ref, parts)
            name = self.fresh("ref-" + ref[2:])
            self.ref_rules[ref] = name
            self.rules[name] = self.visit(target, name, where)
        return self.ref_rules[ref]

    # -- nodes -----------------------------------------------------------------------------

    def visit(self, node: Any, name: str, parts: Parts) -> str:
        """The grammar expression for ``node`` (with trailing whitespace)."""
        if not isinstance(node, Mapping):
            raise UnsupportedSchema(
                f"Unrecognized schema: {json.dumps(node)}", path=json_path(parts)
            )
        kind = node.get("type")
        fmt = node.get("format", "")
        if not isinstance(fmt, str):
            raise UnsupportedSchema("format must be a string", path=json_path((*parts, "format")))
        if "$ref" in node:
            self.read(node, parts, {"$ref"})
            return self.ref(node["$ref"], parts)
        for keyword in ("oneOf", "anyOf"):
            if keyword in node:
                self.read(node, parts, {keyword})
                return self.union(node[keyword], name, (*parts, keyword))
        if isinstance(kind, list):
            self.read(node, parts, set(node))  # each branch below reads the siblings
            branches = [{**node, "type": single} for single in kind]
            return self.union(branches, name, parts, same_node=True)
        if "const" in node:
            self.read(node, parts, {"const", "type"})
            return f"{constant(node['const'])} ws"
        if "enum" in node:
            self.read(node, parts, {"enum", "type"})
            return self.enum(node["enum"])
        untyped_or = {None, "object"}
        extra = node.get("additionalProperties", True)
        if kind in untyped_or and ("properties" in node or extra is not True):
            self.read(node, parts, {"type", "properties", "required", "additionalProperties"})
            return self.object_rule(node, name, parts)
        if kind in (None, "object", "string") and "allOf" in node:
            self.read(node, parts, {"type", "allOf"})
            return self.all_of(node["allOf"], name, (*parts, "allOf"))
        if kind in (None, "array") and ("items" in node or "prefixItems" in node):
            return self.array(node, name, parts)
        if kind in (None, "string") and "pattern" in node:
            self.read(node, parts, {"type", "pattern"})
            return self.pattern(node["pattern"], (*parts, "pattern"))
        if kind in (None, "string") and UUID.fullmatch(fmt):
            self.read(node, parts, {"type", "format"})
            return self.use("juuid")
        if kind in (None, "string") and fmt in DATE_FORMATS:
            self.read(node, parts, {"type", "format"})
            return rf'"\"" {self.use(fmt)} "\"" ws'
        if kind == "string" and ("minLength" in node or "maxLength" in node):
            self.read(node, parts, {"type", "minLength", "maxLength"})
            high = int_or_none(node.get("maxLength"))
            count = repeat(int(node.get("minLength", 0)), high)
            chars = "" if high == 0 else f"{self.use('jchar')}{count} "
            return rf'"\"" {chars}"\"" ws'
        if kind == "integer" and any(key in node for key in BOUNDS):
            self.read(node, parts, {"type", *bounds_read(node)})
            return f"({self.integer(node, parts)}) ws"
        if not node or kind == "object":
            self.read(node, parts, {"type"})
            return self.use("jobject")
        if kind is None:
            self.read(node, parts, set())
            return self.use("jvalue")
        if not isinstance(kind, str) or kind not in TYPES:
            raise UnsupportedSchema(
                f"Unrecognized schema: {json.dumps(node)}", path=json_path(parts)
            )
        self.read(node, parts, {"type"})
        rule = TYPES[kind]
        return self.use(rule) if rule else "[0-9]{1,16}"

    def read(self, node: Mapping[str, Any], parts: Parts, read: set[str]) -> None:
        """Record the assertions of ``node`` this branch leaves out."""
        kind = node.get("type")
        types = {kind} if isinstance(kind, str) else set(APPLIES["type"])
        if "integer" in types:
            types.add("number")
        for keyword in node:
            applies = APPLIES.get(keyword)
            if keyword not in read and applies and applies & types:
                self.ignored[(json_path(parts), keyword)] = None

    def use(self, builtin: str) -> str:
        self.used.add(builtin)
        return builtin

    def union(self, branches: Any, name: str, parts: Parts, *, same_node: bool = False) -> str:
        """Any one of ``branches``; ``same_node``: they are copies of the node at ``parts``."""
        if not isinstance(branches, list):
            raise UnsupportedSchema("anyOf/oneOf must be a list", path=json_path(parts))
        names = [
            self.named(
                self.visit(branch, f"{name}-{i}", parts if same_node else (*parts, i)),
                f"{name}-{i}",
            )
            for i, branch in enumerate(branches)
        ]
        return " | ".join(names) if len(names) < 2 else "(" + " | ".join(names) + ")"

    def enum(self, values: Any) -> str:
        if isinstance(values, Mapping):
            values = list(values.values())
        elif not isinstance(values, list):
            values = [values]
        return "(" + " | ".join(constant(v) for v in values) + ") ws"

    def pattern(self, pattern: Any, parts: Parts) -> str:
        if not isinstance(pattern, str):
            raise UnsupportedSchema("pattern must be a string", path=json_path(parts))
        try:
            return rf'"\"" {pattern_rule(pattern)} "\"" ws'
        except PatternError as exc:
            raise UnsupportedSchema(str(exc), path=json_path(parts)) from None

    def integer(self, node: Mapping[str, Any], parts: Parts) -> str:
        low = bound(node, "minimum", "exclusiveMinimum", 1)
        high = bound(node, "maximum", "exclusiveMaximum", -1)
        try:
            return digits_range(low, high)
        except ValueError as exc:
            raise UnsupportedSchema(str(exc), path=json_path(parts)) from None

    def array(self, node: Mapping[str, Any], name: str, parts: Parts) -> str:
        key = "items" if "items" in node else "prefixItems"
        items = node[key]
        if isinstance(items, list):
            self.read(node, parts, {"type", key, "minItems", "maxItems"})
            slots = [
                self.visit(item, f"{name}-{i}", (*parts, key, i)) for i, item in enumerate(items)
            ]
            return '"[" ws ' + ' "," ws '.join(slots) + ' "]" ws'
        high = node.get("maxItems")
        high = high if isinstance(high, int) and not isinstance(high, bool) else None
        self.read(
            node, parts, {"type", key, "minItems", *(("maxItems",) if high is not None else ())}
        )
        item = self.named(self.visit(items, f"{name}-item", (*parts, key)), f"{name}-item")
        low = int(node.get("minItems", 0))
        return f'"[" ws {separated(item, low, high)} "]" ws'

    def object_rule(self, node: Mapping[str, Any], name: str, parts: Parts) -> str:
        properties = node.get("properties", {})
        if not isinstance(properties, Mapping):
            raise UnsupportedSchema(
                "properties must be an object", path=json_path((*parts, "properties"))
            )
        required = node.get("required")
        wanted = (
            {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
        )
        pairs = [(key, sub, (*parts, "properties", key)) for key, sub in properties.items()]
        return self.members(pairs, wanted, node.get("additionalProperties"), name, parts)

    def all_of(self, parts_list: Any, name: str, parts: Parts) -> str:
        if not isinstance(parts_list, list):
            raise UnsupportedSchema("allOf must be a list", path=json_path(parts))
        pairs: list[tuple[str, Any, Parts]] = []
        wanted: set[str] = set()
        counts: dict[str, int] = {}
        for i, component in enumerate(parts_list):
            optional = isinstance(component, Mapping) and "anyOf" in component
            members = component["anyOf"] if optional else [component]
            base = (*parts, i, "anyOf") if optional else (*parts, i)
            for j, member in enumerate(members):
                where = (*base, j) if optional else base
                for text in self.merge_part(member, not optional, pairs, wanted, where):
                    counts[text] = counts.get(text, 0) + 1
        common = [text for text, n in counts.items() if n == len(parts_list)]
        if common:
            return "(" + " | ".join(common) + ") ws"
        return self.members(pairs, wanted, None, name, parts)

    def merge_part(
        self,
        part: Any,
        required: bool,
        pairs: list[tuple[str, Any, Parts]],
        wanted: set[str],
        parts: Parts,
        seen: frozenset[str] = frozenset(),
    ) -> Iterator[str]:
        """Add one allOf part's properties; yield its enum values (as grammar literals)."""
        if not isinstance(part, Mapping):
            return
        if "$ref" in part:
            ref = part["$ref"]
            if ref in seen:  # the C++ converter recurses here until its stack runs out
                raise UnsupportedSchema(f"allOf refers to itself via {ref}", path=json_path(parts))
            target, where = self.target(ref, parts)
            yield from self.merge_part(target, required, pairs, wanted, where, seen | {ref})
        elif "properties" in part:
            self.read(part, parts, {"type", "properties", "required", "additionalProperties"})
            for key, sub in part["properties"].items():
                pairs.append((key, sub, (*parts, "properties", key)))
                if required:
                    wanted.add(key)
        elif "enum" in part:
            self.read(part, parts, {"type", "enum"})
            values = part["enum"] if isinstance(part["enum"], list) else [part["enum"]]
            yield from dict.fromkeys(constant(v) for v in values)
        else:
            self.read(part, parts, {"type"})

    def members(
        self,
        pairs: list[tuple[str, Any, Parts]],
        wanted: set[str],
        extra: Any,
        name: str,
        parts: Parts,
    ) -> str:
        """An object of the listed keys: required ones in order, then optional ones in order,
        then other keys when ``extra`` is true or a schema."""
        fields: dict[str, str] = {}
        for key, sub, where in pairs:
            value = self.named(self.visit(sub, f"{name}-{key}", where), f"{name}-{key}")
            fields[key] = self.named(
                f'"{escape(json.dumps(key, ensure_ascii=False))}" ws ":" ws {value}',
                f"{name}-{key}-kv",
            )
        required = [fields[key] for key in fields if key in wanted]
        optional = [fields[key] for key in fields if key not in wanted]
        more = None
        if extra is True or isinstance(extra, Mapping):
            value = (
                self.named(
                    self.visit(extra, f"{name}-extra", (*parts, "additionalProperties")),
                    f"{name}-extra-value",
                )
                if isinstance(extra, Mapping)
                else self.use("jvalue")
            )
            key_rule = self.other_keys(list(fields), name, parts)
            more = self.named(f'{key_rule} ":" ws {value}', f"{name}-extra-kv")
        body = ' "," ws '.join(required)
        tail = self.optional_tail(optional, more, name)
        if tail and required:
            body += f' ( "," ws ( {tail} ) )?'
        elif tail:
            body = f"( {tail} )?"
        return f'"{{" ws {body} "}}" ws'

    def optional_tail(self, optional: list[str], more: str | None, name: str) -> str:
        """Alternatives for the optional members, each starting with the first one present:
        later optional members follow in order, other keys (``more``) come last."""
        following = f'( "," ws {more} )*' if more else ""
        choices = [f'{more} ( "," ws {more} )*'] if more else []
        for member in reversed(optional):
            choices.append(f"{member} {following}".strip())
            following = self.named(f'( "," ws {member} )? {following}'.strip(), f"{name}-rest")
        return " | ".join(reversed(choices))

    def other_keys(self, names: list[str], name: str, parts: Parts) -> str:
        """A JSON string that is none of ``names``: a key besides the listed properties."""
        string = self.use("jstring")
        if not names:
            return string
        char = self.use("jchar")
        trie: dict[str, Any] = {}
        for key in names:
            node = trie
            for c in key:
                node = node.setdefault(c, {})
            node[""] = {}  # end of a name

        def differ(node: dict[str, Any]) -> str:
            # As the C++ converter does, a proper prefix of a name is refused as a key too.
            options = []
            for c, child in node.items():
                if c:
                    further = set(child) - {""}
                    rest = f"({differ(child)})" if further else f"{char}+"
                    options.append(f'"{escape(c)}" {rest}')
            excluded = "".join(class_member(c) for c in node if c)
            options.append(f'[^"{excluded}] {char}*')
            return " | ".join(options)

        body = differ(trie)
        optional = "" if "" in trie else "?"
        return self.named(rf'"\"" ( {body} ){optional} "\"" ws', f"{name}-other-key")
