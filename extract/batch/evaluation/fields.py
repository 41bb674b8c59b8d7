"""Which fields a value has, what kind each is, and when a predicted field equals its gold.

A field is a top-level property of an object value (JSON path ``$.name``), or the root itself
(``$``) when values are bare scalars. Its kind decides how it is scored:

- ``choice``: an enum, a const or a boolean — accuracy, per-class metrics, confusion matrix;
- ``string``: free text — exact match, and a match ignoring case and whitespace;
- ``number``: equal within ``max(tolerance, 1e-6 * |gold|)`` (``tolerance`` is absolute);
- ``list``: right when the sets are equal; precision and recall over the elements;
- ``exact``: anything else (objects, mixed types) — equal as JSON.

With a schema the kind comes from the field's subschema (local ``$ref``s followed, ``null``
alternatives ignored). Without one it comes from the JSON types of the values: booleans are
choices, and a string field is a choice when its gold takes at most :data:`MAX_CLASSES`
distinct values, at most half as many as it has gold records.

Gold read from CSV arrives as :class:`CellText` (text whose JSON type is unknown): a field
that holds strings keeps it as text, other fields read it as JSON (``true``, ``3.5``, ``[1]``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ...core.schema import Schema
from ...core.schema_walk import json_path
from .metrics import normalise_text

Kind = Literal["choice", "string", "number", "list", "exact"]
MAX_CLASSES = 20
RELATIVE_TOLERANCE = 1e-6
_YES_NO = {"true": True, "yes": True, "false": False, "no": False}


class CellText(str):
    """A gold value read from a CSV cell: text until the field's kind says how to read it."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSpec:
    """One scored field: its JSON path, property name (None for the root), kind, enum options,
    and whether it holds strings (how CSV gold is read)."""

    path: str
    name: str | None
    kind: Kind
    options: tuple[Any, ...] = ()
    holds_text: bool = True

    def pick(self, value: Any) -> tuple[bool, Any]:
        """(present, field value) of a whole value."""
        if self.name is None:
            return True, value
        if isinstance(value, Mapping) and self.name in value:
            return True, value[self.name]
        return False, None


def is_blank(value: Any) -> bool:
    """Whether a gold value is absent: None, empty text, or NaN (pandas' missing value).

    >>> is_blank(""), is_blank(float("nan")), is_blank(0), is_blank(False)
    (True, True, False, False)
    """
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or (isinstance(value, str) and not value)


def label_text(value: Any) -> str:
    """A choice value as a class label: strings as they are, anything else as JSON.

    >>> label_text("billing"), label_text(True), label_text(None), label_text(3)
    ('billing', 'true', 'null', '3')
    """
    return value if isinstance(value, str) else _canonical(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(predicted: Any, gold: Any, spec: FieldSpec, tolerance: float) -> bool:
    """Whether a predicted field counts as right against its (already read) gold."""
    if spec.kind == "number" and _is_number(predicted) and _is_number(gold):
        if math.isnan(predicted) or math.isnan(gold):
            return False
        return bool(abs(predicted - gold) <= max(tolerance, RELATIVE_TOLERANCE * abs(gold)))
    if spec.kind == "list" and isinstance(predicted, list) and isinstance(gold, list):
        return element_set(predicted) == element_set(gold)
    if isinstance(predicted, str) or isinstance(gold, str):
        return bool(predicted == gold)
    # As JSON, so that true is not 1 and 1 is not 1.0.
    return _canonical(predicted) == _canonical(gold)


def same_normalised(predicted: Any, gold: Any) -> bool:
    """Strings equal once case and whitespace are ignored."""
    if not isinstance(predicted, str) or not isinstance(gold, str):
        return False
    return normalise_text(predicted) == normalise_text(gold)


def element_set(items: Iterable[Any]) -> set[str]:
    """A list's elements as a set of canonical JSON texts (strings compare as they are)."""
    return {label_text(item) for item in items}


def read_cell(value: Any, spec: FieldSpec) -> Any:
    """A gold value ready to compare: CSV text read as JSON unless the field holds strings.

    >>> number = FieldSpec("$.n", "n", "number", holds_text=False)
    >>> flag = FieldSpec("$.urgent", "urgent", "choice", (True, False), holds_text=False)
    >>> read_cell(CellText("3.5"), number), read_cell(CellText("Yes"), flag), read_cell(7, number)
    (3.5, True, 7)
    """
    if not isinstance(value, CellText):
        return value
    if spec.holds_text and not _parses_to_option(value, spec):
        return str(value)
    try:
        return json.loads(value)
    except ValueError:
        return _YES_NO.get(value.strip().lower(), str(value))


def _parses_to_option(text: str, spec: FieldSpec) -> bool:
    """Whether CSV text is the JSON of a non-string enum option (e.g. ``3`` of ``[1, 2, 3]``)."""
    if text in spec.options:
        return False
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return not isinstance(parsed, str) and any(
        isinstance(o, bool) == isinstance(parsed, bool) and o == parsed for o in spec.options
    )


def schema_specs(schema: Schema) -> list[FieldSpec]:
    """The fields of a schema: its properties when the root is an object, else the root."""
    root = schema.json_schema
    resolved = _resolve(root, root)
    properties = resolved.get("properties")
    if isinstance(properties, Mapping) and properties:
        return [
            _spec_of(json_path((name,)), name, _resolve(sub, root))
            for name, sub in properties.items()
            if isinstance(sub, Mapping)
        ]
    return [_spec_of("$", None, resolved)]


def _resolve(sub: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``sub`` with local ``$ref``s followed and ``null`` alternatives of anyOf/oneOf dropped."""
    for _ in range(32):  # a bound, since a reference may point at itself
        if not isinstance(sub, Mapping):
            return {}
        ref = sub.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            sub = _pointer(root, ref[1:])
            continue
        for key in ("anyOf", "oneOf"):
            members = sub.get(key)
            if isinstance(members, list):
                kept = [m for m in members if not (isinstance(m, Mapping) and _is_null(m))]
                if len(kept) == 1:
                    sub = kept[0]
                    break
                if kept and all(isinstance(m, Mapping) and "const" in m for m in kept):
                    return {"enum": [m["const"] for m in kept]}
        else:
            return sub
    return {}


def _is_null(sub: Mapping[str, Any]) -> bool:
    return sub.get("type") == "null" or sub.get("const", 0) is None


def _pointer(root: Any, pointer: str) -> Any:
    node = root
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _spec_of(path: str, name: str | None, sub: Mapping[str, Any]) -> FieldSpec:
    types = sub.get("type")
    type_set = {types} if isinstance(types, str) else set(types or ()) - {"null"}
    options: list[Any] = []
    if isinstance(sub.get("enum"), list):
        options = [o for o in sub["enum"] if o is not None]
    elif "const" in sub:
        options = [sub["const"]]
    if options:
        holds_text = any(isinstance(o, str) for o in options)
        return FieldSpec(path, name, "choice", tuple(options), holds_text)
    if type_set == {"boolean"}:
        return FieldSpec(path, name, "choice", (True, False), holds_text=False)
    kinds: dict[str, Kind] = {"string": "string", "number": "number", "integer": "number"}
    kinds.update(array="list", object="exact")
    found = {kinds.get(t, "exact") for t in type_set}
    if len(found) == 1:
        kind = found.pop()
        return FieldSpec(path, name, kind, holds_text=kind == "string")
    return FieldSpec(path, name, "exact", holds_text="string" in type_set or not type_set)


def inferred_spec(
    path: str, name: str | None, predicted: Sequence[Any], gold: Sequence[Any]
) -> FieldSpec:
    """A field's spec from its values (predicted values are typed JSON; gold may be CSV text)."""
    typed = [v for v in (*predicted, *gold) if v is not None and not isinstance(v, CellText)]
    types = {_json_type(v) for v in typed}
    if not types and gold:
        types = {"string"}
    if types == {"boolean"}:
        return FieldSpec(path, name, "choice", (True, False), holds_text=False)
    if types == {"number"}:
        return FieldSpec(path, name, "number", holds_text=False)
    if types == {"array"}:
        return FieldSpec(path, name, "list", holds_text=False)
    if types == {"string"}:
        distinct = len({str(g) for g in gold})
        is_choice = distinct <= MAX_CLASSES and 2 * distinct <= len(gold)
        return FieldSpec(path, name, "choice" if is_choice else "string")
    return FieldSpec(path, name, "exact", holds_text="string" in types or not types)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object" if isinstance(value, Mapping) else "other"
