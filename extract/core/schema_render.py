"""How a schema is shown to the model in the prompt.

Measured on SmolLM2-135M: a raw JSON Schema in the prompt gets echoed back, while an example
of the output's shape works far better. The default rendering is that shape::

    {"name": "<full name>", "age": <integer>, "mood": "happy" | "sad"}
    Optional keys: mood

Strings show a quoted placeholder (the description when there is one), other scalars an
unquoted one, enums their values joined by ``|``, arrays ``[<item>, ...]``. It is compact (every
token costs time on every document) and deterministic (the prompt is a cache key).

What the shape cannot hold goes in a "Where:" block below it, one line per field: a
description cut short in its placeholder (in full), the description of a field that shows no
placeholder (an enum, a boolean), and the meaning of each option of a choice field::

    {"category": "billing" | "technical", "summary": "<the request in one sentence>"}
    Where:
    category: billing = payments, invoices, refunds; technical = errors, crashes

Option meanings come from either of two forms: ``oneOf``/``anyOf`` alternatives that are each a
``const`` with a ``description`` (or ``title``), as JSON Schema has it, or the shorter
``"enum": [...]`` beside ``"x-labels": {"<option>": "<meaning>"}`` (a string option is its own
key; any other option is keyed by its JSON, as in ``"true"`` or ``"null"``). The second keeps
the grammar a plain enum.

When a schema's rendering would not fit the model's context, a compact one is used (``compact``
1 to 3, each smaller): a part reached through several references is shown once, then as
``<same as KEY>``; descriptions are shortened and only option meanings stay in "Where:";
the required keys are listed in place of the optional ones; the deeper levels cut nesting
further. A last line says what was left out.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from referencing.exceptions import Unresolvable

from ..errors import SchemaError
from .schema_walk import SchemaIndex, json_path

if TYPE_CHECKING:
    from .schema_walk import Scope

Style = Literal["shape", "schema"]
STYLES: tuple[Style, ...] = ("shape", "schema")

MAX_HINT = 60  # characters of a description used as a placeholder
MAX_NOTE = 400  # characters of one description in the "Where:" block
LABELS = "x-labels"  # {"<option>": "<what it means>"} beside an enum
MAX_DEPTH = 8  # nesting shown before "<...>"
# The compact renderings, smallest last: nesting shown at each level.
COMPACT_DEPTHS = (MAX_DEPTH, 4, 2)
COMPACT_HINT = 30  # characters of a description in a compact placeholder
COMPACT_NOTE = 60  # characters of an option's meaning in a compact "Where:" block
_ANNOTATIONS = ("description", "title", "examples", "$comment", "default")
_COMPOUND = (
    "properties",
    "items",
    "prefixItems",
    "anyOf",
    "oneOf",
    "allOf",
    "additionalProperties",
)
_FORMAT_NAMES = {
    "email": "email address",
    "uri": "URL",
    "uuid": "UUID",
    "date-time": "date and time",
}
_LAYOUTS = {"date": "YYYY-MM-DD", "time": "HH:MM:SSZ", "date-time": "YYYY-MM-DDTHH:MM:SSZ"}
_SPACES = re.compile(r"\s+")
_HINT_TABLE = str.maketrans('"<>', "'()")  # a hint must not close its string or placeholder
_PLACEHOLDER = re.compile(r"<[^<>\n]+>")
_BARE = re.compile(r"[A-Za-z_][\w\-./ ]*(?<! )")  # a string option shown without quotes


def render(index: SchemaIndex, style: Style, compact: int = 0) -> str:
    """The schema as prompt text: its output shape, or the compact JSON Schema itself;
    ``compact`` 1 to 3 for the smaller renderings (see the module docstring)."""
    if style == "schema":
        if not compact:
            return json.dumps(index.root, ensure_ascii=False, separators=(",", ":"))
        # Level 2 on also drops extension keywords ("x-..."), which validators ignore.
        bare = index.without(_ANNOTATIONS, extensions=compact > 1)
        left_out = "Descriptions, titles, examples, defaults" + (
            " and x- keywords" if compact > 1 else ""
        )
        return (
            json.dumps(bare, ensure_ascii=False, separators=(",", ":"))
            + f"\n({left_out} are left out, to fit the context.)"
        )
    shape = _Shape(index, compact)
    text = shape.render(index.root, index.resolver, (), "", None)
    if compact and shape.required:
        text += "\nRequired keys: " + ", ".join(dict.fromkeys(shape.required))
    elif compact and shape.optional:
        text += "\nEvery key is optional."
    elif shape.optional:
        text += "\nOptional keys: " + ", ".join(dict.fromkeys(shape.optional))
    if shape.notes:
        lines = (f"{key}: {note}" if key else note for key, note in shape.notes.items())
        text += "\nWhere:\n" + "\n".join(lines)
    if compact:
        cut = f"; nesting past {shape.depth} levels is shown as <...>" if compact > 1 else ""
        text += (
            "\n(A compact form, to fit the context: a part used in several places is shown"
            f" once, then as <same as ...>; descriptions are shortened{cut}.)"
        )
    return text


def placeholders(index: SchemaIndex) -> frozenset[str]:
    """Every ``<...>`` placeholder of the shape, such as ``<the request in one sentence>``."""
    return frozenset(
        _PLACEHOLDER.findall(_Shape(index).render(index.root, index.resolver, (), "", None))
    )


def echoed_placeholder(value: Any, shown: frozenset[str], document: str = "") -> str | None:
    """The JSON path of the first string in ``value`` that repeats a placeholder of the shape.

    A string matches when it is the placeholder (``<full name>``), or its words without the
    brackets when there are several (``Full name``), ignoring case and outer spaces, or when it
    holds the placeholder, brackets and all (``Name: <full name>``). A match that the
    ``document`` itself contains is no echo.

    >>> echoed_placeholder({"a": ["x", " <Full name>"]}, frozenset({"<full name>"}))
    '$.a[1]'
    >>> echoed_placeholder({"a": "It is: <full name>."}, frozenset({"<full name>"}))
    '$.a'
    """
    words = _echo_words(shown)
    if not words:
        return None
    found = _echo(value, words, document.lower(), ())
    return json_path(found) if found is not None else None


@functools.lru_cache(maxsize=64)
def _echo_words(shown: frozenset[str]) -> frozenset[str]:
    """What a value that repeats a placeholder reads as, lower-cased (one schema's, kept)."""
    words = {p.lower() for p in shown} | {p[1:-1].lower() for p in shown if " " in p}
    return frozenset(words)


def _echo(
    value: Any, words: frozenset[str], document: str, parts: tuple[str | int, ...]
) -> tuple[str | int, ...] | None:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in words and text not in document:
            return parts
        held = any(w[0] == "<" and w in text and w not in document for w in words)
        return parts if held else None
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _echo(item, words, document, (*parts, key))
        if found is not None:
            return found
    return None


def check_labels(index: SchemaIndex) -> None:
    """Raises SchemaError for an ``x-labels`` that is not a map of option → text, or that names
    an option its enum does not have (a typo would otherwise go unseen)."""
    for node, parts, _ in index.walk(index.root, (), None):
        labels = node.get(LABELS)
        if labels is None:
            continue
        where = json_path((*parts, LABELS))
        options = node.get("enum")
        if not isinstance(options, list):
            raise SchemaError(f"{LABELS} needs an enum beside it", path=where)
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise SchemaError(f"{LABELS} must map each option to a text", path=where)
        known = {_label_key(v) for v in options}
        for key in labels:
            if key not in known:
                raise SchemaError(
                    f"{LABELS} names {key!r}, which is not one of the enum's options", path=where
                )


def _option(value: Any) -> str:
    """An option as named in the "Where:" block: a plain string bare (a quarter fewer tokens),
    anything that could be misread (``true`` the string, ``a; b``) as JSON.

    >>> [_option(v) for v in ("billing", "feature request", "true", "a=b", True, None)]
    ['billing', 'feature request', '"true"', '"a=b"', 'true', 'null']
    """
    if isinstance(value, str) and _BARE.fullmatch(value) and value not in ("true", "false", "null"):
        return value
    return json.dumps(value, ensure_ascii=False)


def _label_key(option: Any) -> str:
    return option if isinstance(option, str) else json.dumps(option, ensure_ascii=False)


def _clean(text: Any) -> str | None:
    """A description on one line, or None when there is none."""
    if not isinstance(text, str):
        return None
    return _SPACES.sub(" ", text).strip() or None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _hint(text: Any) -> str | None:
    """A description cut to one short line that cannot close a placeholder or a string."""
    clean = _clean(text)
    return _cut(clean.translate(_HINT_TABLE), MAX_HINT) if clean else None


class _Shape:
    def __init__(self, index: SchemaIndex, compact: int = 0) -> None:
        self.index = index
        self.compact = compact
        self.depth = COMPACT_DEPTHS[compact - 1] if compact else MAX_DEPTH
        self.optional: list[str] = []
        self.required: list[str] = []
        self.notes: dict[str, str] = {}  # dotted key -> its line in the "Where:" block
        self.shown: dict[int, str] = {}  # id(reference target) -> where it was shown

    def render(
        self,
        node: Any,
        resolver: Scope,
        stack: tuple[int, ...],
        key: str,
        hint: str | None,
        entered: bool = False,
    ) -> str:
        """``node`` as an example value; ``key`` is its dotted location for the optional list,
        ``hint`` the description that applies (the referring context's, else its own);
        ``entered`` when ``resolver`` is already the node's scope (a reference's target)."""
        if not isinstance(node, Mapping):
            return (
                "<nothing>" if node is False else f"<{self.short(hint, key) or 'any JSON value'}>"
            )
        if len(stack) > self.depth:
            return "<...>"
        resolver = resolver if entered else self.index.enter(node, resolver)
        hint = hint or _clean(node.get("description"))  # the referring context knows best
        if isinstance(node.get("$ref"), str):
            return self.ref(node, resolver, stack, key, hint)
        if "const" in node:
            self.describe(key, hint)
            return json.dumps(node["const"], ensure_ascii=False)
        if isinstance(node.get("enum"), list) and node["enum"]:
            self.describe(key, hint, self.enum_labels(node))
            return " | ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"])
        merged = self.merged(node, resolver)
        alternatives = merged.get("anyOf") or merged.get("oneOf")
        if isinstance(alternatives, list) and not any(k in merged for k in ("type", "properties")):
            if alternatives and all(isinstance(a, Mapping) and "const" in a for a in alternatives):
                self.describe(key, hint, _const_labels(alternatives))
                shown = [json.dumps(a["const"], ensure_ascii=False) for a in alternatives]
            else:
                shown = [
                    self.render(alt, resolver, (*stack, id(node)), key, hint)
                    for alt in alternatives
                ]
            return " | ".join(dict.fromkeys(shown))
        return self.typed(merged, resolver, (*stack, id(node)), key, hint)

    def short(self, hint: str | None, key: str) -> str | None:
        """``hint`` fit for a placeholder; one cut short is noted in full under the shape."""
        if hint is None:
            return None
        if self.compact:
            short = _hint(hint)
            return _cut(short, COMPACT_HINT) if short else None
        if len(hint) > MAX_HINT:
            self.describe(key, hint)
        return _hint(hint)

    def describe(self, key: str, hint: str | None, labels: Sequence[tuple[Any, str]] = ()) -> None:
        """Note a field's description and its options' meanings for the "Where:" block."""
        if self.compact:  # only what the options mean, in short
            said = [f"{_option(v)} = {_cut(t, COMPACT_NOTE)}" for v, t in labels]
        else:
            said = [_cut(hint, MAX_NOTE)] if hint else []
            said += [f"{_option(v)} = {_cut(t, MAX_NOTE)}" for v, t in labels]
        if said:
            self.notes.setdefault(key, "; ".join(said))

    def enum_labels(self, node: Mapping[str, Any]) -> list[tuple[Any, str]]:
        labels = node.get(LABELS)
        if not isinstance(labels, Mapping):
            return []
        found = ((v, _clean(labels.get(_label_key(v)))) for v in node["enum"])
        return [(v, text) for v, text in found if text]

    def ref(
        self,
        node: Mapping[str, Any],
        resolver: Scope,
        stack: tuple[int, ...],
        key: str,
        hint: str | None,
    ) -> str:
        try:
            target, target_resolver, where = self.index.resolve(node["$ref"], resolver)
        except Unresolvable:
            return "<any JSON value>"
        if id(target) in stack:  # recursion: name the repeated part instead of expanding it
            title = target.get("title") if isinstance(target, Mapping) else None
            name = title if isinstance(title, str) else str(where[-1]) if where else "schema"
            return f"<{_hint(name) or 'schema'}>"
        if self.compact and isinstance(target, Mapping) and any(k in target for k in _COMPOUND):
            if id(target) in self.shown:
                return f"<same as {_hint(self.shown[id(target)]) or 'the whole'}>"
            self.shown[id(target)] = key
        return self.render(target, target_resolver, (*stack, id(target)), key, hint, True)

    def merged(self, node: Mapping[str, Any], resolver: Scope) -> Mapping[str, Any]:
        """The node with its ``allOf`` parts folded in (properties and required combined)."""
        parts = node.get("allOf")
        if not isinstance(parts, list):
            return node
        out: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in parts:
            if isinstance(part, Mapping) and isinstance(part.get("$ref"), str):
                try:
                    part = self.index.resolve(part["$ref"], resolver)[0]
                except Unresolvable:
                    continue
            if not isinstance(part, Mapping):
                continue
            for k, v in part.items():
                if k == "properties" and isinstance(v, Mapping):
                    out["properties"] = {**out.get("properties", {}), **v}
                elif k == "required" and isinstance(v, list):
                    out["required"] = [*out.get("required", []), *v]
                else:
                    out.setdefault(k, v)
        return out

    def typed(
        self,
        node: Mapping[str, Any],
        resolver: Scope,
        stack: tuple[int, ...],
        key: str,
        hint: str | None,
    ) -> str:
        kind = node.get("type")
        kinds = [kind] if isinstance(kind, str) else [k for k in kind or () if isinstance(k, str)]
        if not kinds:
            if "properties" in node or "additionalProperties" in node:
                kinds = ["object"]
            elif "items" in node or "prefixItems" in node:
                kinds = ["array"]
            elif "pattern" in node or "format" in node:
                kinds = ["string"]
            else:
                return f"<{self.short(hint, key) or 'any JSON value'}>"
        shown = [self.one(k, node, resolver, stack, key, hint) for k in kinds if k != "null"]
        if "null" in kinds:
            shown.append("null")
        return " | ".join(dict.fromkeys(shown))

    def one(
        self,
        kind: str,
        node: Mapping[str, Any],
        resolver: Scope,
        stack: tuple[int, ...],
        key: str,
        hint: str | None,
    ) -> str:
        if kind == "object":
            return self.object(node, resolver, stack, key)
        if kind == "array":
            return self.array(node, resolver, stack, key)
        if kind == "boolean":
            self.describe(key, hint)
            return "true | false"
        short = self.short(hint, key)
        if kind == "string":
            fmt: str = node["format"] if isinstance(node.get("format"), str) else ""
            text = short or _hint(_FORMAT_NAMES.get(fmt, fmt)) or "string"
            layout = _LAYOUTS.get(fmt)
            return f'"<{text}, {layout}>"' if layout else f'"<{text}>"'
        if kind in ("integer", "number"):
            return f"<{short}, {kind}>" if short else f"<{kind}>"
        return f"<{kind}>"

    def object(
        self, node: Mapping[str, Any], resolver: Scope, stack: tuple[int, ...], key: str
    ) -> str:
        properties = node.get("properties")
        required = node.get("required")
        required = required if isinstance(required, list) else []
        if isinstance(properties, Mapping) and properties:
            fields = []
            for name, sub in properties.items():
                where = f"{key}.{name}" if key else name
                if name not in required:
                    self.optional.append(where)
                else:
                    self.required.append(where)
                value = self.render(sub, resolver, stack, where, None)
                fields.append(f"{json.dumps(name, ensure_ascii=False)}: {value}")
            return "{" + ", ".join(fields) + "}"
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            value = self.render(extra, resolver, stack, f"{key}.*" if key else "*", None)
            return '{"<key>": ' + value + ", ...}"
        return "{}" if extra is False else "<object>"

    def array(
        self, node: Mapping[str, Any], resolver: Scope, stack: tuple[int, ...], key: str
    ) -> str:
        items = node.get("items")
        positions = node.get("prefixItems") if not isinstance(items, list) else items
        if isinstance(positions, list):
            shown = [
                self.render(p, resolver, stack, f"{key}[{i}]", None)
                for i, p in enumerate(positions)
            ]
            return "[" + ", ".join(shown) + "]"
        if isinstance(items, Mapping) or items is True:
            return "[" + self.render(items, resolver, stack, f"{key}[]", None) + ", ...]"
        return "[]" if items is False else "<array>"


def _const_labels(alternatives: list[Mapping[str, Any]]) -> list[tuple[Any, str]]:
    found = (
        (a["const"], _clean(a.get("description")) or _clean(a.get("title"))) for a in alternatives
    )
    return [(v, text) for v, text in found if text]
