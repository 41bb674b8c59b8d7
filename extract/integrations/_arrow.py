"""A JSON Schema as one fixed Arrow type, so labels can be stored as typed columns.

A column needs one type for every row and every block, whatever a block's values happen to be;
inferring it from the values would give a block where a field is always null another schema.
So the type comes from the schema, and only schemas with a single Arrow shape qualify: objects
with ``properties`` that admit no other keys, arrays with one ``items`` schema, scalars and
enums of one kind. ``null`` alternatives (``Optional`` fields) only make the column nullable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..core.schema_walk import json_path
from ..errors import ConfigError

# What pyarrow raises for a value its type cannot hold: a wrong kind, an integer past 64 bits,
# a string with a lone surrogate.
_MISFITS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError)
_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


def arrow_type(schema: Mapping[str, Any], *, from_model: bool = False) -> pa.DataType:
    """The Arrow type every value valid under ``schema`` fits.

    ``from_model``: the schema came from a Pydantic model, whose dumped values hold only the
    declared fields, so an object without ``additionalProperties`` counts as closed.

    >>> arrow_type({"type": "object", "additionalProperties": False,
    ...             "properties": {"n": {"type": "integer"}, "tags": {"type": "array",
    ...                            "items": {"enum": ["a", "b"]}}}})
    StructType(struct<n: int64, tags: list<item: string>>)
    >>> arrow_type({"anyOf": [{"type": "number"}, {"type": "null"}]})
    DataType(double)

    Raises ConfigError naming the JSON path of the first part without a single Arrow type.
    """
    return _Converter(schema, from_model=from_model).convert(schema, (), frozenset())


class _Converter:
    def __init__(self, root: Mapping[str, Any], *, from_model: bool) -> None:
        self.root = root
        self.from_model = from_model

    def convert(self, node: Any, parts: tuple[str | int, ...], refs: frozenset[str]) -> pa.DataType:
        if not isinstance(node, Mapping):
            raise self._refuse(parts, "a boolean schema admits any value")
        if isinstance(ref := node.get("$ref"), str):
            if ref in refs:
                raise self._refuse(parts, "a recursive schema has no fixed depth")
            return self.convert(self._resolve(ref, parts), parts, refs | {ref})
        for key in ("anyOf", "oneOf"):
            if isinstance(options := node.get(key), list):
                kept = [o for o in options if not _is_null(o)]
                if len(kept) != 1:
                    raise self._refuse(parts, f"{key} with {len(kept)} non-null alternatives")
                return self.convert(kept[0], (*parts, key, options.index(kept[0])), refs)
        if "const" in node:
            return self._enum([node["const"]], parts)
        if isinstance(values := node.get("enum"), list):
            return self._enum(values, parts)
        kind = self._kind(node, parts)
        if kind == "array":
            items = node.get("items")
            if "prefixItems" in node or not isinstance(items, Mapping):
                raise self._refuse(parts, "an array needs one `items` schema")
            return pa.list_(self.convert(items, (*parts, "items"), refs))
        if kind == "object":
            return self._struct(node, parts, refs)
        return _SCALARS[kind]

    def _kind(self, node: Mapping[str, Any], parts: tuple[str | int, ...]) -> str:
        types = node.get("type")
        if types is None and "properties" in node:
            return "object"
        names = [types] if isinstance(types, str) else list(types or [])
        names = [t for t in names if t != "null"]
        if set(names) == {"integer", "number"}:
            return "number"
        if len(names) != 1 or names[0] not in (*_SCALARS, "array", "object"):
            raise self._refuse(parts, f"type {types!r} is not one Arrow type")
        return str(names[0])

    def _struct(
        self, node: Mapping[str, Any], parts: tuple[str | int, ...], refs: frozenset[str]
    ) -> pa.DataType:
        properties = node.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            raise self._refuse(parts, "an object needs `properties`")
        extra = node.get("additionalProperties", None if self.from_model else True)
        if extra not in (False, None) or "patternProperties" in node:
            raise self._refuse(
                parts, "an object that admits other keys needs `additionalProperties: false`"
            )
        return pa.struct(
            [
                pa.field(name, self.convert(sub, (*parts, "properties", name), refs))
                for name, sub in properties.items()
            ]
        )

    def _enum(self, values: Sequence[Any], parts: tuple[str | int, ...]) -> pa.DataType:
        kinds = {_json_kind(v) for v in values if v is not None}
        if kinds == {"integer", "number"}:
            kinds = {"number"}
        if len(kinds) != 1 or (kind := kinds.pop()) not in _SCALARS:
            raise self._refuse(parts, "enum values of more than one scalar kind")
        return _SCALARS[kind]

    def _resolve(self, ref: str, parts: tuple[str | int, ...]) -> Any:
        if not ref.startswith("#"):
            raise self._refuse(parts, f"$ref {ref!r} is not local")
        node: Any = self.root
        for token in filter(None, ref[1:].split("/")):
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, Mapping) and key in node:
                node = node[key]
            else:
                raise self._refuse(parts, f"$ref {ref!r} points nowhere")
        return node

    @staticmethod
    def _refuse(parts: tuple[str | int, ...], reason: str) -> ConfigError:
        return ConfigError(
            f"value_format='struct' needs a schema with one Arrow type; at {json_path(parts)}: "
            f"{reason}. Use value_format='json' to store values as JSON text"
        )


def _is_null(node: Any) -> bool:
    return isinstance(node, Mapping) and node.get("type") == "null"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def to_arrow(values: Sequence[Any], type_: pa.DataType) -> tuple[pa.Array, list[int]]:
    """``values`` as one Arrow array of ``type_``, and the positions that did not fit (null).

    A value valid under the schema almost always fits; an integer past 64 bits or a string
    with a lone surrogate does not.

    >>> array, bad = to_arrow([1, None, 2**70], pa.int64())
    >>> array.to_pylist(), bad
    ([1, None, None], [2])
    """
    try:
        return pa.array(values, type=type_), []
    except _MISFITS:
        pass
    fitted: list[Any] = []
    bad: list[int] = []
    for i, value in enumerate(values):
        try:
            pa.array([value], type=type_)
        except _MISFITS:
            bad.append(i)
            value = None
        fitted.append(value)
    return pa.array(fitted, type=type_), bad
