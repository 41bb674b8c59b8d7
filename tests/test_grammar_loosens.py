"""The grammar form never forbids a reply that the schema accepts.

``fits`` reads a grammar form the way llama.cpp's json-schema-to-grammar does and says whether
the grammar can write a given value. Every value that extract's validation accepts must fit,
with one exception, the converter's documented tightening: a key not named in ``properties`` is
never written unless ``additionalProperties`` is a schema. ``fits`` excuses exactly such a key,
and only where the form leaves ``additionalProperties`` out and does not require the key.

Outside any form's reach, and so not modelled: llama.cpp writes at most 16 digits before a
decimal point, and writes a ``pattern``-checked string's characters verbatim (``fits`` matches
the pattern against the string's JSON text). The generated values stay within both.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract.core.schema import Schema
from extract.core.schema_combine import json_key
from extract.errors import SchemaError, SchemaMismatch

SUITE = Path(__file__).parent / "data" / "json-schema-test-suite" / "draft2020-12"

# The string formats llama.cpp knows, as regular expressions over the string's characters.
_TIME = (
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
FORMATS = {"date": _DATE, "time": _TIME, "date-time": f"{_DATE}T{_TIME}", "uuid": _UUID}


def _is_integer(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()
    )


TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
}


def fits(node: Any, value: Any, root: dict[str, Any]) -> bool:
    """Whether llama.cpp's grammar for ``node`` can write ``value``, checked in its order."""
    assert isinstance(node, dict), node
    if "$ref" in node:  # the siblings of a reference, and of a union, are ignored
        return fits(root["$defs"][node["$ref"].rsplit("/", 1)[-1]], value, root)
    if "oneOf" in node or "anyOf" in node:
        return any(fits(b, value, root) for b in node.get("oneOf") or node["anyOf"])
    kind = node.get("type")
    if isinstance(kind, list):  # one alternative per type, each keeping the other keywords
        return any(fits({**node, "type": single}, value, root) for single in kind)
    if "const" in node:
        return json_key(value) == json_key(node["const"])
    if "enum" in node:
        return any(json_key(value) == json_key(v) for v in node["enum"])
    if kind in (None, "object") and (
        "properties" in node or node.get("additionalProperties", True) is not True
    ):
        return isinstance(value, dict) and _fits_object(node, value, root)
    if kind in (None, "array") and ("items" in node or "prefixItems" in node):
        items = node.get("items", node.get("prefixItems"))
        if not isinstance(value, list):
            return False
        if isinstance(items, list):  # a tuple: exactly these positions
            return len(value) == len(items) and all(map(fits, items, value, [root] * len(items)))
        counted = node.get("minItems", 0) <= len(value) <= node.get("maxItems", len(value))
        return counted and all(fits(items, item, root) for item in value)
    if kind in (None, "string") and "pattern" in node:
        text = json.dumps(value, ensure_ascii=False)[1:-1] if isinstance(value, str) else None
        return text is not None and re.fullmatch(node["pattern"][1:-1], text) is not None
    fmt = re.sub(r"^uuid[1-5]$", "uuid", str(node.get("format")))
    if kind in (None, "string") and fmt in FORMATS:
        return isinstance(value, str) and re.fullmatch(FORMATS[fmt], value) is not None
    if kind == "string" and ("minLength" in node or "maxLength" in node):
        low, high = node.get("minLength", 0), node.get("maxLength", float("inf"))
        return isinstance(value, str) and low <= len(value) <= high
    if kind == "integer" and ("minimum" in node or "maximum" in node):
        assert not {"exclusiveMinimum", "exclusiveMaximum"} & set(node), node
        low, high = node.get("minimum", -float("inf")), node.get("maximum", float("inf"))
        return _is_integer(value) and low <= value <= high
    if kind == "object" or not node:
        return isinstance(value, dict)
    assert kind in TYPES, f"llama.cpp rejects {node}"
    return bool(TYPES[kind](value))


def _fits_object(node: dict[str, Any], value: dict[str, Any], root: dict[str, Any]) -> bool:
    properties = node.get("properties", {})
    extra = node.get("additionalProperties")
    required = node.get("required", [])
    for key, item in value.items():
        if key in properties:
            ok = fits(properties[key], item, root)
        elif isinstance(extra, dict):  # llama.cpp writes other keys only with this value schema
            ok = fits(extra, item, root)
        else:  # the documented tightening, and nothing wider: see the module docstring
            ok = extra is True or (extra is None and key not in required)
        if not ok:
            return False
    # llama.cpp writes the required keys it finds in properties, and ignores the other names.
    return all(key in value for key in required if key in properties)


def _accepts(schema: Schema, value: Any) -> bool:
    try:
        schema.validate(value)
    except SchemaMismatch:
        return False
    return True


def _misfit(schema: Schema, value: Any) -> str | None:
    """Why the grammar form cannot write ``value``, or None when it can."""
    form = schema.grammar
    assert form is not None
    if fits(form, value, form):
        return None
    return f"{json.dumps(schema.json_schema)} accepts {json.dumps(value)}: {json.dumps(form)}"


@functools.cache
def _suite_results() -> tuple[list[str], dict[str, int]]:
    """Run the suite's valid instances through the grammar forms: the misfits, and a tally."""
    misfits: list[str] = []
    tally: collections.Counter[str] = collections.Counter()
    for path in sorted(SUITE.rglob("*.json")):
        for group in json.loads(path.read_text(encoding="utf-8")):
            try:
                schema = Schema.load(group["schema"])
            except SchemaError:
                tally["schemas not loaded"] += 1
                continue
            if schema.grammar is None:
                tally["schemas without a grammar"] += 1
                continue
            tally["schemas checked"] += 1
            for test in group["tests"]:
                if not test["valid"]:
                    continue
                if not _accepts(schema, test["data"]):
                    tally["valid instances extract rejects"] += 1
                    continue
                tally["instances checked"] += 1
                problem = _misfit(schema, test["data"])
                if problem:
                    misfits.append(f"{path.name}: {group['description']}: {problem}")
    return misfits, dict(tally)


def test_suite_valid_instances_fit_the_grammar() -> None:
    misfits, _ = _suite_results()
    assert misfits == []


def test_suite_coverage() -> None:
    # Not loaded (SchemaError): remote $refs (never fetched) and $schema URIs naming unknown
    # dialects. Without a grammar: $dynamicRef (12), schemas no value matches (7), and $refs
    # to the metaschema (2), which load (jsonschema ships it) but use $dynamicRef.
    # Extract rejects some valid instances: format.json treats formats as annotations where
    # extract asserts them, and jsonschema's date-time and time checks refuse leap seconds.
    _, tally = _suite_results()
    assert tally == {
        "schemas not loaded": 22,
        "schemas without a grammar": 21,
        "schemas checked": 329,
        "valid instances extract rejects": 25,
        "instances checked": 742,
    }


NAMES = ("a", "b", "x-1")
# Strings the patterns and formats below tell apart, and a few more.
_STRINGS = st.one_of(
    st.sampled_from(["", "a", "b", "ab", "ba", "xb", "x-", "x-1", "a.b", "a$"]),
    st.sampled_from(["2020-02-29", "2021-02-29", "20:00:00Z", "12:00:00.5+01:00"]),
    st.sampled_from(["2020-01-01T23:59:59Z", "12345678-1234-1234-1234-123456789abc"]),
    st.text(alphabet="abx-1", max_size=3),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 2.0, -1.5]),
    _STRINGS,
)
VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES), inner),
    max_leaves=6,
)
# Checked against every generated schema, beside the generated values: shapes the keywords
# below tell apart, so that a misfit does not wait for a lucky draw.
PROBES: list[Any] = [
    *[None, True, 0, 1, -1, 3, 0.5, 2.0, "", "a", "b", "ab", "xb", "a.b", "a$", "x-1"],
    *["2020-02-29", "20:00:00Z", "12345678-1234-1234-1234-123456789abc"],
    *[[], [1], ["a"], ["a", 1], [1, "a", None], [[]], [{}]],
    *[{}, {"a": 1}, {"b": "a"}, {"x-1": 1}, {"a": "ab", "b": 1}, {"x-1": "a", "a": None}],
    *[{"a": {"a": 1}}, {"a": [], "b": {}}, {"b": None, "x-1": [1]}],
]
_TYPES = ["string", "integer", "number", "object", "array", "boolean", "null"]
_FLAT: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(
        [*_TYPES, ["integer", "null"], ["string", "array"], ["object", "integer"]]
    ),
    "enum": st.lists(_SCALARS, min_size=1, max_size=3, unique_by=json_key),
    "const": VALUES,
    "required": st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True),
    "minimum": st.sampled_from([-1, 0, 1, 0.5]),
    "maximum": st.sampled_from([-1, 1, 2, 2.5]),
    "exclusiveMinimum": st.sampled_from([-1, 0, 0.5]),
    "exclusiveMaximum": st.sampled_from([1, 2, 1.5]),
    "multipleOf": st.sampled_from([2, 0.5]),
    "minLength": st.integers(0, 3),
    "maxLength": st.integers(0, 3),
    "minItems": st.integers(0, 3),
    "maxItems": st.integers(0, 3),
    "minProperties": st.integers(0, 2),
    "maxProperties": st.integers(0, 2),
    "uniqueItems": st.booleans(),
    "pattern": st.sampled_from(
        ["^a+$", "^x-", "^[a-z]{2}$", "^(a|b)$", "^a|b$", "a", "^.$", "^a\\.b$", "^a\\$$"]
    ),
    "format": st.sampled_from(["date", "time", "date-time", "uuid", "email"]),
    "dependentRequired": st.dictionaries(
        st.sampled_from(NAMES), st.lists(st.sampled_from(NAMES), unique=True)
    ),
    "propertyNames": st.sampled_from([{"pattern": "^[ab]$"}, {"maxLength": 1}, False]),
    "minContains": st.integers(0, 2),
    "maxContains": st.integers(0, 2),
}
_DIALECTS = [
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-04/schema#",
]


def _some(keywords: dict[str, st.SearchStrategy[Any]], most: int) -> st.SearchStrategy[Any]:
    """Up to ``most`` of ``keywords``: few keywords a node, so that some values pass them all."""
    names = st.lists(st.sampled_from(sorted(keywords)), max_size=most, unique=True)
    return names.flatmap(lambda chosen: st.fixed_dictionaries({k: keywords[k] for k in chosen}))


def _with_children(
    inner: st.SearchStrategy[Any], refs: bool, tuples: bool
) -> st.SearchStrategy[Any]:
    child = st.one_of(inner, inner, inner, st.booleans())
    some = st.lists(child, min_size=1, max_size=2)
    # "node" recurses only through a property, so validating a value ends with the value.
    ref = {"$ref": st.sampled_from(["#/$defs/A", "#/$defs/node"])} if refs else {}
    structural = _some(
        {
            **ref,
            "properties": st.dictionaries(st.sampled_from(NAMES), child, max_size=2),
            "patternProperties": st.dictionaries(st.sampled_from(["^x-", "^a", "b"]), child),
            "additionalProperties": child,
            "unevaluatedProperties": child,
            "dependentSchemas": st.dictionaries(st.sampled_from(NAMES), child, max_size=1),
            "items": inner if tuples else child,  # see tuple_items below
            "prefixItems": st.lists(child, min_size=1, max_size=2),
            "unevaluatedItems": child,
            "contains": child,
            "not": child,
            "if": child,
            "then": child,
            "else": child,
            "allOf": some,
            "anyOf": some,
            "oneOf": some,
        },
        2,
    )
    # Before 2020-12 a tuple is an items array. jsonschema 4.26 raises TypeError for a boolean
    # items there beside additionalItems or unevaluatedItems, so items is never a boolean then.
    tuple_items = st.fixed_dictionaries(
        {"items": st.lists(child, min_size=1, max_size=2)}, optional={"additionalItems": child}
    )
    return st.builds(
        lambda *parts: {k: v for part in parts for k, v in part.items()},
        _some(_FLAT, 3),
        structural,
        st.just({}) | tuple_items if tuples else st.just({}),
    )


def _schemas(refs: bool, tuples: bool) -> st.SearchStrategy[Any]:
    return st.recursive(
        _some(_FLAT, 3), lambda inner: _with_children(inner, refs, tuples), max_leaves=5
    )


def _roots(dialect: str) -> st.SearchStrategy[dict[str, Any]]:
    tuples = dialect != _DIALECTS[0]
    return st.builds(
        lambda schema, a, node: {
            **schema,
            "$defs": {"A": a, "node": {"properties": {"a": {"$ref": "#/$defs/node"}, "b": node}}},
            "$schema": dialect,
        },
        _schemas(refs=True, tuples=tuples),
        _schemas(refs=False, tuples=tuples) | st.booleans(),
        _schemas(refs=False, tuples=tuples) | st.booleans(),
    )


ROOTS = st.sampled_from([_DIALECTS[0], *_DIALECTS]).flatmap(_roots)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROOTS, st.lists(VALUES, max_size=4))
def test_every_accepted_value_fits_the_grammar(raw: dict[str, Any], values: list[Any]) -> None:
    try:
        schema = Schema.load(raw)
    except SchemaError:
        return
    if schema.grammar is None:  # no grammar: only JSON syntax is enforced, which is safe
        return
    for value in [*values, *PROBES]:
        if _accepts(schema, value):
            assert _misfit(schema, value) is None
