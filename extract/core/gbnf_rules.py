"""The building blocks of a schema's grammar: JSON's own rules, keyword tables, small spellings.

``gbnf`` walks a schema and puts these together. The built-in rules describe JSON the way
llama.cpp's json-schema-to-grammar does: strings without raw control characters (and without
the ``\\/`` escape), numbers of at most 16 digits before and after the point, and up to two
newlines and twenty spaces or tabs of whitespace after each value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .gbnf_pattern import escape

WS = r'| " " | "\n"{1,2} [ \t]{0,20}'
# Built-in rules: name -> (body, rules it uses). Every body ends in whitespace where a value does.
BUILTIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "ws": (WS, ()),
    "int-digits": ("[0] | [1-9] [0-9]{0,15}", ()),
    "jboolean": ('("true" | "false") ws', ("ws",)),
    "jnull": ('"null" ws', ("ws",)),
    "jinteger": ('"-"? int-digits ws', ("int-digits", "ws")),
    "jnumber": (
        '"-"? int-digits ("." [0-9]{1,16})? ([eE] [-+]? int-digits)? ws',
        ("int-digits", "ws"),
    ),
    "jchar": (r'[^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4})', ()),
    "jstring": (r'"\"" jchar* "\"" ws', ("jchar", "ws")),
    "jvalue": (
        "jobject | jarray | jstring | jnumber | jboolean | jnull",
        ("jobject", "jarray", "jstring", "jnumber", "jboolean", "jnull"),
    ),
    "jobject": (
        '"{" ws ( jstring ":" ws jvalue ( "," ws jstring ":" ws jvalue )* )? "}" ws',
        ("jstring", "jvalue", "ws"),
    ),
    "jarray": ('"[" ws ( jvalue ( "," ws jvalue )* )? "]" ws', ("jvalue", "ws")),
    "juuid": (
        r'"\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} '
        r'"-" [0-9a-fA-F]{12} "\"" ws',
        ("ws",),
    ),
    "date": (
        '[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )',
        (),
    ),
    "time": (
        '( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? '
        '( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )',
        (),
    ),
    "date-time": ('date "T" time', ("date", "time")),
}
# A ``type`` names one of these rules. Besides JSON's types, the C++ converter looks types up
# among its own built-in rule names, so it also takes these (harmless) ones.
TYPES = {
    "boolean": "jboolean",
    "null": "jnull",
    "integer": "jinteger",
    "number": "jnumber",
    "string": "jstring",
    "array": "jarray",
    "object": "jobject",
    "value": "jvalue",
    "char": "jchar",
    "uuid": "juuid",
    "integral-part": "int-digits",
    "decimal-part": None,
}
DATE_FORMATS = ("date", "time", "date-time")
UUID = re.compile(r"uuid[1-5]?")
BAD_NAME = re.compile(r"[^A-Za-z0-9-]+")
BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
# The instance types each assertion keyword constrains; the rest are annotations.
APPLIES: dict[str, frozenset[str]] = {}
for _types, _keywords in (
    ({"string"}, "minLength maxLength pattern format"),
    ({"number", "integer"}, "minimum maximum exclusiveMinimum exclusiveMaximum multipleOf"),
    (
        {"object"},
        "properties required additionalProperties patternProperties propertyNames "
        "minProperties maxProperties dependentRequired dependentSchemas dependencies "
        "unevaluatedProperties",
    ),
    (
        {"array"},
        "items prefixItems additionalItems minItems maxItems uniqueItems contains "
        "minContains maxContains unevaluatedItems",
    ),
    (
        {"string", "number", "integer", "object", "array", "boolean", "null"},
        "type enum const allOf anyOf oneOf not if then else $ref $dynamicRef $recursiveRef",
    ),
):
    for _keyword in _keywords.split():
        APPLIES[_keyword] = frozenset(_types)


def hoisted(schema: Mapping[str, Any]) -> Any:
    """``schema`` with every ``$defs`` moved to the root one, as the converter does first.

    Definitions are taken in document order, the first of a name winning; those inside a
    definition's own body stay where they are.
    """
    found: dict[str, Any] = {}

    def strip(node: Any) -> Any:
        if isinstance(node, list):
            return [strip(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        defs = node.get("$defs")
        if isinstance(defs, Mapping):
            for name, sub in defs.items():
                found.setdefault(name, sub)
        moved = isinstance(defs, Mapping)
        return {key: strip(value) for key, value in node.items() if not (moved and key == "$defs")}

    root = strip(schema)
    return {**root, "$defs": found} if found and isinstance(root, dict) else root


def pointer_index(token: str) -> int:
    digits = re.match(r"\d+", token)
    return int(digits[0]) if digits else 2**63


def constant(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return f'"{escape(text)}"'


def class_member(c: str) -> str:
    """``c`` inside a bracket class, where ``-`` and ``^`` would mean something else."""
    return {"-": "\\x2D", "^": "\\x5E"}.get(c) or escape(c)


def int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def bounds_read(node: Mapping[str, Any]) -> list[str]:
    read = []
    for inclusive, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        read.append(inclusive if inclusive in node else exclusive)
    return read


def bound(node: Mapping[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    if inclusive in node:
        return int(node[inclusive])
    if exclusive in node:
        return int(node[exclusive]) + step
    return None


def repeat(low: int, high: int | None) -> str:
    if high == 0:
        return "{0}"
    if (low, high) == (0, None):
        return "*"
    if (low, high) == (1, None):
        return "+"
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low},{'' if high is None else high}}}"


def separated(item: str, low: int, high: int | None) -> str:
    """``low..high`` copies of ``item`` separated by commas (empty when ``high`` is 0)."""
    if high == 0:
        return ""
    others = repeat(max(low - 1, 0), None if high is None else high - 1)
    body = f'{item} ( "," ws {item} ){others}' if others != "{0}" else item
    return f"( {body} )?" if low == 0 else body
