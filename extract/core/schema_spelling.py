"""Spelling a grammar form so that every JSON-Schema-to-grammar converter reads it the same.

``schema_grammar`` decides what a grammar form admits; this module writes it in the subset on
which llama.cpp's converters agree: the current C++ one (``common/json-schema-to-grammar.cpp``,
which Ollama vendors) and the older Python one inside llama-cpp-python. They differ, and each
has traps:

- **A list ``type`` with other keywords.** The C++ converter gives each type a copy of the
  other keywords; the older one keeps the types and drops every other keyword. A list
  ``type`` is therefore written bare, and a node that constrains one of its types becomes
  ``anyOf`` branches, one per type, each carrying only the keywords of its type.
- **A property named ``$ref``** (Kubernetes' ``JSONSchemaProps`` has one). Both converters
  take any object holding a ``"$ref"`` key for a reference, and fail on a ``properties`` map
  that holds one (its value is not a string). The property is written as the schema of every
  other key (``additionalProperties``) instead: looser, and the reply is validated anyway.
- **``$defs`` names.** The converters turn a name into a rule name by replacing characters
  outside ``[A-Za-z0-9-]``, but the older one refers to a recursive definition by its raw
  name, so ``my_node`` becomes a reference to an undefined rule; a name equal to a built-in
  rule (``string``, ``value``) or to another rule of the grammar is renamed by the converter
  and the reference then points at the wrong rule. Names here are ``def`` followed by
  letters and digits only, which no converter changes and no other rule name takes (every
  rule the converters derive from a name has a ``-`` in it).
- **Shared parts.** A part reached through several references is written once under
  ``$defs`` and referred to, so that inlining does not multiply the grammar's size.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .schema_combine import larger_than

# The keywords of a grammar form that apply to values of each type (the others apply to none).
_FOR_TYPE: dict[str, tuple[str, ...]] = {
    "object": ("properties", "required", "additionalProperties"),
    "array": ("items", "prefixItems", "minItems", "maxItems"),
    "string": ("minLength", "maxLength", "pattern", "format"),
    "integer": ("minimum", "maximum"),
}
# A part shared by several references is written once only when it is worth a rule: past
# this many characters of JSON.
MIN_SHARED_CHARS = 64
_NAME_PARTS = re.compile(r"[A-Za-z0-9]+")


def def_name(base: str, taken: Callable[[str], bool]) -> str:
    """A ``$defs`` name every converter keeps as it is: ``def`` + letters and digits.

    >>> def_name("my_node", lambda name: False)
    'defMyNode'
    >>> def_name("io.k8s.api.core.v1.Pod", lambda name: name == "defIoK8sApiCoreV1Pod")
    'defIoK8sApiCoreV1Pod2'
    """
    words = _NAME_PARTS.findall(base)
    name = "def" + ("".join(w[:1].upper() + w[1:] for w in words) or "Schema")
    unique, n = name, 2
    while taken(unique):
        unique, n = f"{name}{n}", n + 1
    return unique


class Speller:
    """Writes a converted form in the converters' common subset (see the module docstring).

    ``shared`` maps ``id()`` of a converted part that several references reached to the
    location it came from; parts worth it are written once under ``$defs``. ``defined`` maps
    ``id()`` of such a part to the recursive definition that already says the same.
    """

    def __init__(
        self, shared: Mapping[int, str], defined: Mapping[int, str], names: set[str]
    ) -> None:
        self.shared = shared
        self.names = names  # $defs names in use
        self.defs: dict[str, Any] = {}
        self._written: dict[int, str] = dict(defined)

    def spell(self, root: dict[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
        """The root form with its ``$defs`` (recursive definitions, then shared parts)."""
        out: dict[str, Any] = self.node(root, top=True)
        for name, form in defs.items():
            self.defs[name] = self.node(form, top=True)
        if self.defs:
            out = {**out, "$defs": dict(sorted(self.defs.items()))}
        return out

    def node(self, form: Any, top: bool = False) -> Any:
        if not isinstance(form, dict):
            return form
        key = id(form)
        if not top and key in self._written:
            return {"$ref": f"#/$defs/{self._written[key]}"}
        if not top and key in self.shared and larger_than(form, MIN_SHARED_CHARS):
            if key not in self._written:
                name = def_name(self.shared[key], lambda n: n in self.names)
                self.names.add(name)
                self._written[key] = name
                self.defs[name] = self.node(form, top=True)
            return {"$ref": f"#/$defs/{self._written[key]}"}
        out: dict[str, Any] = {}
        for keyword, value in form.items():
            if keyword in ("properties", "$defs"):
                out[keyword] = {name: self.node(sub) for name, sub in value.items()}
            elif keyword in ("anyOf", "prefixItems"):
                out[keyword] = [self.node(sub) for sub in value]
            elif keyword in ("items", "additionalProperties"):
                out[keyword] = self.node(value)
            else:
                out[keyword] = value
        return _split_types(_ref_property(out))


def _ref_property(form: dict[str, Any]) -> dict[str, Any]:
    """A property named ``$ref`` written as the schema of any other key."""
    properties = form.get("properties")
    if not isinstance(properties, dict) or "$ref" not in properties:
        return form
    properties = dict(properties)
    moved = properties.pop("$ref")
    extra = form.get("additionalProperties")
    out = {**form, "properties": properties}
    if isinstance(extra, dict) and extra != moved:
        out["additionalProperties"] = {"anyOf": [extra, moved]}
    else:
        out["additionalProperties"] = moved
    required = [name for name in form.get("required", ()) if name != "$ref"]
    if required:
        out["required"] = required
    else:
        out.pop("required", None)
    return out


def _split_types(form: dict[str, Any]) -> dict[str, Any]:
    """A list ``type`` beside other keywords as ``anyOf`` branches, one per type.

    >>> _split_types({"type": ["string", "null"], "maxLength": 3})
    {'anyOf': [{'type': 'string', 'maxLength': 3}, {'type': 'null'}]}
    >>> _split_types({"type": ["string", "null"]})
    {'type': ['string', 'null']}
    """
    kinds = form.get("type")
    if not isinstance(kinds, list) or len(form) == 1:
        return form
    rest = {k: v for k, v in form.items() if k not in ("type", "$defs")}
    if not rest:
        return form
    branches = [
        {"type": kind, **{k: v for k, v in rest.items() if k in _FOR_TYPE.get(kind, ())}}
        for kind in kinds
    ]
    out: dict[str, Any] = {"anyOf": branches} if len(branches) > 1 else branches[0]
    if "$defs" in form:
        out["$defs"] = form["$defs"]
    return out
