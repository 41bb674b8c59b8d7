"""What llama.cpp's json-schema-to-grammar converter accepts, as a check on grammar forms.

``recognised`` mirrors the order in which the converter dispatches on a schema: every node of
a grammar form must land on a branch it supports, or the server would reject the request. It
also checks what every converter reads alike (``extract/core/schema_spelling.py``): a list
``type`` stands alone, ``$defs`` names are ``def`` + letters and digits, and no ``properties``
map holds a ``$ref`` key. Shared by ``test_schema_grammar`` and ``test_schema_grammar_fuzz``.
"""

from __future__ import annotations

import re
from typing import Any

PRIMITIVES = {"boolean", "number", "integer", "string", "null", "object", "array"}
SIMPLE_REF = re.compile(r"#/\$defs/def[A-Za-z0-9]+")


def recognised(node: Any, root: dict[str, Any]) -> None:
    """Fail unless the converter accepts ``node`` and everything under it."""
    assert isinstance(node, dict), node
    kind = node.get("type")
    if node is root:
        for name, definition in root.get("$defs", {}).items():
            assert SIMPLE_REF.fullmatch(f"#/$defs/{name}"), name
            recognised(definition, root)
    if "$ref" in node:
        assert SIMPLE_REF.fullmatch(node["$ref"]), node
        assert node["$ref"].split("/")[-1] in root.get("$defs", {})
        return
    if "anyOf" in node:
        for branch in node["anyOf"]:
            recognised(branch, root)
        return
    if isinstance(kind, list):
        assert kind
        assert set(node) <= {"type", "$defs"}, f"a list type beside other keywords: {node}"
        for single in kind:
            recognised({**node, "type": single}, root)
        return
    assert "oneOf" not in node
    assert "allOf" not in node
    assert "const" not in node
    if "enum" in node:
        assert isinstance(node["enum"], list)
        return
    if kind in (None, "object") and (
        "properties" in node or node.get("additionalProperties", True) is not True
    ):
        assert "$ref" not in node.get("properties", {}), node
        for sub in node.get("properties", {}).values():
            recognised(sub, root)
        extra = node.get("additionalProperties")
        assert extra is None or extra is False or isinstance(extra, dict)
        if isinstance(extra, dict):
            recognised(extra, root)
        return
    if kind in (None, "array") and ("items" in node or "prefixItems" in node):
        items = node.get("items", node.get("prefixItems"))
        for sub in items if isinstance(items, list) else [items]:
            recognised(sub, root)
        for key in ("minItems", "maxItems"):
            assert isinstance(node.get(key, 0), int)
        return
    if kind in (None, "string") and "pattern" in node:
        assert node["pattern"].startswith("^")
        assert node["pattern"].endswith("$")
        return
    if kind in (None, "string") and node.get("format") in ("uuid", "date", "time", "date-time"):
        return
    if kind == "string" and ("minLength" in node or "maxLength" in node):
        assert all(isinstance(node.get(k, 0), int) for k in ("minLength", "maxLength"))
        return
    if kind == "integer" and any(k in node for k in ("minimum", "maximum")):
        assert all(isinstance(node.get(k, 0), int) for k in ("minimum", "maximum"))
        return
    if not node or kind == "object":
        return
    assert kind in PRIMITIVES, node
