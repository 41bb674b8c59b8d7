"""Reading a JSON value out of a model's reply text.

Three stages, cheapest first:

1. **strict**: the reply is JSON (what a schema grammar produces);
2. **lenient**: the first complete JSON object or array inside chatter or a Markdown fence
   (unconstrained small models write ``JSON: {...} This is...``);
3. **repair**: local fixes by ``json_repair`` for replies cut short or slightly broken
   (trailing commas, missing closing braces, single quotes).

Whatever the input, the only errors raised are EmptyOutput and InvalidJSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

import json_repair

from ..errors import EmptyOutput, InvalidJSON

Stage = Literal["strict", "lenient", "repair"]

# A wrong start ({ in prose) costs one failed parse; this many are tried before repair.
MAX_CANDIDATES = 32
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\r?\n?(.*?)```", re.DOTALL)
_OPENERS = re.compile(r"[{\[]")


def _no_constants(name: str) -> Any:
    # NaN and Infinity are not JSON: they would pass a "number" schema, then break the output.
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def decode(text: str) -> Any:
    """The JSON value in a reply; raises EmptyOutput or InvalidJSON (with the text as ``raw``).

    >>> decode('Sure! {"a": 1} Hope this helps.')
    {'a': 1}
    >>> decode('{"a": [1, 2,')
    {'a': [1, 2]}
    """
    return decode_with_stage(text)[0]


def decode_with_stage(text: str) -> tuple[Any, Stage]:
    """Like :func:`decode`, also saying which stage read the value.

    >>> decode_with_stage('```json\\n[1, 2]\\n```')
    ([1, 2], 'lenient')
    """
    if not text.strip():
        raise EmptyOutput("the reply is empty", raw=text)
    try:
        return _DECODER.decode(text), "strict"
    except (ValueError, RecursionError) as exc:
        first_error = exc
    found, value = _first_value(text)
    if found:
        return value, "lenient"
    found, value = _repaired(text)
    if found:
        return value, "repair"
    raise InvalidJSON(f"no JSON value in the reply: {_describe(first_error)}", raw=text)


def _describe(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}, column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)


def _first_value(text: str) -> tuple[bool, Any]:
    """The first complete object or array: inside a code fence first, then anywhere."""
    for fence in _FENCE.finditer(text):
        try:
            return True, _DECODER.decode(fence.group(1))
        except (ValueError, RecursionError):
            continue
    for tried, opener in enumerate(_OPENERS.finditer(text)):
        if tried >= MAX_CANDIDATES:
            break
        try:
            return True, _DECODER.raw_decode(text, opener.start())[0]
        except (ValueError, RecursionError):
            continue
    return False, None


def _repaired(text: str) -> tuple[bool, Any]:
    """A locally repaired object or array, starting at the first ``{`` or ``[``.

    json_repair turns any text into *something* ("" or [] for prose), so only a non-empty
    object or array counts, and only when the text holds an opening bracket at all.
    """
    opener = _OPENERS.search(text)
    if opener is None:
        return False, None
    try:
        value = json_repair.loads(text[opener.start() :])
    except Exception:  # a third-party repair failing on junk just means "no JSON"
        return False, None
    if isinstance(value, dict | list) and value and _finite(value):
        return True, value
    return False, None


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere (json_repair lets them through)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True
