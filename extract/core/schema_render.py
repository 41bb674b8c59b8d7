"""How a schema is shown to the model in the prompt.

Measured on SmolLM2-135M: a raw JSON Schema in the prompt gets echoed back, while an example
of the output's shape works far better. The default rendering is that shape::

    {"name": "<full name>", "age": <integer>, "mood": "happy" | "sad"}
    Optional keys: mood

Strings show a quoted placeholder (the description when there is one), other scalars an
unquoted one, enums their values joined by ``|``, arrays ``[<item>, ...]``. It is compact (every
token costs time on every document) and deterministic (the prompt is a cache key).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from referencing.exceptions import Unresolvable

from .schema_walk import SchemaIndex

if TYPE_CHECKING:
    from .schema_walk import Scope

Style = Literal["shape", "schema"]
STYLES: tuple[Style, ...] = ("shape", "schema")

MAX_HINT = 60  # characters of a description used as a placeholder
MAX_DEPTH = 8  # nesting shown before "<...>"
_FORMAT_NAMES = {
    "email": "email address",
    "uri": "URL",
    "uuid": "UUID",
    "date-time": "date and time",
}
_LAYOUTS = {"date": "YYYY-MM-DD", "time": "HH:MM:SSZ", "date-time": "YYYY-MM-DDTHH:MM:SSZ"}
_SPACES = re.compile(r"\s+")
_HINT_TABLE = str.maketrans('"<>', "'()")  # a hint must not close its string or placeholder


def render(index: SchemaIndex, style: Style) -> str:
    """The schema as prompt text: its output shape, or the compact JSON Schema itself."""
    if style == "schema":
        return json.dumps(index.root, ensure_ascii=False, separators=(",", ":"))
    shape = _Shape(index)
    text = shape.render(index.root, index.resolver, (), "", None)
    if shape.optional:
        text += "\nOptional keys: " + ", ".join(dict.fromkeys(shape.optional))
    return text


def _hint(text: Any) -> str | None:
    """A description cut to one short line that cannot close a placeholder or a string."""
    if not isinstance(text, str):
        return None
    text = _SPACES.sub(" ", text).strip().translate(_HINT_TABLE)
    if len(text) > MAX_HINT:
        text = text[: MAX_HINT - 1].rstrip() + "…"
    return text or None


class _Shape:
    def __init__(self, index: SchemaIndex) -> None:
        self.index = index
        self.optional: list[str] = []

    def render(
        self, node: Any, resolver: Scope, stack: tuple[int, ...], key: str, hint: str | None
    ) -> str:
        """``node`` as an example value; ``key`` is its dotted location for the optional list."""
        if not isinstance(node, Mapping):
            return "<nothing>" if node is False else f"<{hint or 'any JSON value'}>"
        if len(stack) > MAX_DEPTH:
            return "<...>"
        resolver = self.index.enter(node, resolver)
        hint = hint or _hint(node.get("description"))  # the referring context knows best
        if isinstance(node.get("$ref"), str):
            return self.ref(node, resolver, stack, key, hint)
        if "const" in node:
            return json.dumps(node["const"], ensure_ascii=False)
        if isinstance(node.get("enum"), list) and node["enum"]:
            return " | ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"])
        merged = self.merged(node, resolver)
        alternatives = merged.get("anyOf") or merged.get("oneOf")
        if isinstance(alternatives, list) and not any(k in merged for k in ("type", "properties")):
            shown = [
                self.render(alt, resolver, (*stack, id(node)), key, hint) for alt in alternatives
            ]
            return " | ".join(dict.fromkeys(shown))
        return self.typed(merged, resolver, (*stack, id(node)), key, hint)

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
        return self.render(target, target_resolver, (*stack, id(target)), key, hint)

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
                return f"<{hint}>" if hint else "<any JSON value>"
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
            return "true | false"
        if kind == "string":
            fmt: str = node["format"] if isinstance(node.get("format"), str) else ""
            text = hint or _hint(_FORMAT_NAMES.get(fmt, fmt)) or "string"
            layout = _LAYOUTS.get(fmt)
            return f'"<{text}, {layout}>"' if layout else f'"<{text}>"'
        if kind in ("integer", "number"):
            return f"<{hint}, {kind}>" if hint else f"<{kind}>"
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
