"""Repairing a broken or cut-short JSON value without inventing any part of it.

A reply that stops early (the token limit, a crash, a model that just ends) stops inside a
value. Only what arrived is kept:

- a value cut short is trimmed back to the end of its last complete member, and the containers
  still open there are closed. What came after is dropped: a string whose closing quote never
  came, a number or literal at the very end of the text (``12`` may be the start of ``1250``),
  a key with no value, a dangling comma, and a container left with nothing (an empty container
  was never sent);
- ``json_repair`` then fixes what it fixes well: trailing commas, single quotes, missing commas;
- every key and leaf of its result must be a token of the text (a quoted string, a number, a
  literal, a bare word) in the same role (a key is followed by a colon) at the same depth, each
  token vouching once. A member no token vouches for (the ``""`` that json_repair puts after a
  key with no value, or a value it moved out of its container) is dropped, then a container
  that lost all.

What comes back is a non-empty object or array of the kind the text opened, or nothing.

>>> text = '{"name": "Ann", "tags": ["x", "y"], "email": "ann@'
>>> repair(text, scan(text, 0))
(True, {'name': 'Ann', 'tags': ['x', 'y']})
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import re
from collections.abc import Iterator
from typing import Any

import json_repair

# Whitespace, a code fence, punctuation, a quoted string (the named group holds its closing
# quote when it came), or a bare word (a number, literal or unquoted text). Every position
# matches, so consecutive matches tile the text.
_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<fence>```)
    |(?P<punct>[{}\[\],:])
    |"(?:[^"\\]|\\.?)*(?P<dq>")?
    |'(?:[^'\\]|\\.?)*(?P<sq>')?
    |[^\s{}\[\],:"'](?:(?!```)[^\s{}\[\],:"])*""",
    re.VERBOSE | re.DOTALL,
)
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"-?\d+")
_LITERALS = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}
_OPENER = {"}": "{", "]": "["}

Voucher = tuple[str, Any, int]  # (kind, value, depth)


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """An object or array in a reply, read leniently: ``text[start:end]``.

    ``text[start:cut] + closers`` is what arrived of it, closed: all of it (``cut == end``) when
    its closing bracket came, nothing (``cut == start``) when no member arrived complete.
    """

    start: int
    end: int
    cut: int
    closers: str


def _tokens(text: str, start: int, stop: int) -> Iterator[tuple[str, str, int]]:
    """``(kind, token, end)`` of each token in ``text[start:stop]``, whitespace skipped.

    Kinds: the punctuation itself, the fence itself, "string", "open-string" (its closing
    quote never came) and "bare".
    """
    for match in _TOKEN.finditer(text, start, stop):
        kind, token = match.lastgroup, match.group()
        if kind == "space":
            continue
        if kind in ("punct", "fence"):
            yield token, token, match.end()
        elif kind in ("dq", "sq"):
            yield "string", token, match.end()
        else:
            yield "open-string" if token[0] in "\"'" else "bare", token, match.end()


def scan(text: str, start: int) -> Span:
    """The object or array opened at ``text[start]`` (a ``{`` or ``[``), up to its closing
    bracket, a code fence, or the end of the text.

    Brackets inside strings do not count; a closing bracket closes the innermost container,
    whichever kind it is (the repair reads the text as tolerantly).
    """
    closers: list[str] = []  # of the open containers, innermost last
    expect = ""  # in the innermost container: "key", "colon", "value" or "after" (a member)
    cut, depth = start, 0
    for kind, _token, end in _tokens(text, start, len(text)):
        if kind == "```":  # the model closed its code block: the value ends here
            return Span(start, end - 3, cut, "".join(reversed(closers[:depth])))
        if kind in ("{", "["):
            closers.append("}" if kind == "{" else "]")
            expect = "key" if kind == "{" else "value"
        elif kind in ("}", "]"):
            closers.pop()
            if not closers:
                return Span(start, end, end, "")
            # Only a pop can shorten the stack, and each pop moves the cut: so the containers
            # open at the cut stay the bottom `depth` entries of `closers` from then on.
            expect, cut, depth = "after", end, len(closers)
        elif kind == ",":
            expect = "key" if closers[-1] == "}" else "value"
        elif kind == ":":
            expect = "value" if expect == "colon" else expect
        elif closers[-1] == "}" and expect in ("key", "after"):
            expect = "colon"
        elif kind == "string" or (kind == "bare" and end < len(text)):
            expect, cut, depth = "after", end, len(closers)
    return Span(start, len(text), cut, "".join(reversed(closers[:depth])))


def repair(text: str, span: Span) -> tuple[bool, Any]:
    """``(True, value)`` with what arrived of ``span``, repaired; ``(False, None)`` when nothing
    did, or the repair changed the kind of container or holds NaN or infinity. Raises nothing.
    """
    kept = text[span.start : span.cut]
    if not kept:
        return False, None
    try:
        value = json_repair.loads(kept + span.closers)
        opened = dict if kept[0] == "{" else list
        if not isinstance(value, opened) or not _finite(value):
            return False, None
        found, value = _vouched(value, _vouchers(kept))
    except Exception:  # the third-party repair failing on junk, or nesting too deep: no value
        return False, None
    return found, value if found else None


def _vouchers(text: str) -> collections.Counter[Voucher]:
    """The keys and leaves the text holds as tokens, each with its depth (the containers
    around it), as many times as the text holds each."""
    found: collections.Counter[Voucher] = collections.Counter()
    depth, previous = 0, ""
    scalar: tuple[str, str, int] | None = None  # a key when a colon follows it, else a value
    for kind, token, _end in _tokens(text, 0, len(text)):
        if scalar is not None:
            found[_voucher(*scalar, key=kind == ":")] += 1
            scalar = None
        if kind in ("{", "["):
            depth += 1
        elif kind in _OPENER:
            depth = max(depth - 1, 0)
            if previous == _OPENER[kind]:
                found["empty", kind, depth] += 1
        elif kind in ("string", "bare"):
            scalar = kind, token, depth
        previous = kind
    if scalar is not None:
        found[_voucher(*scalar, key=False)] += 1
    return found


def _voucher(kind: str, token: str, depth: int, *, key: bool) -> Voucher:
    text = _unquote(token) if kind == "string" else token
    if key:
        return "key", text, depth
    return _leaf(text if kind == "string" else _bare(token), depth)


def _vouched(value: Any, tokens: collections.Counter[Voucher], depth: int = 0) -> tuple[bool, Any]:
    """``value`` (inside ``depth`` containers) without the members no token vouches for at
    their depth; False when nothing is left of it."""
    if isinstance(value, dict):
        if not value:
            return _take(tokens, ("empty", "}", depth)), value
        members = {}
        for key, member in value.items():
            if _take(tokens, ("key", key, depth + 1)):
                found, member = _vouched(member, tokens, depth + 1)
                if found:
                    members[key] = member
        return bool(members), members
    if isinstance(value, list):
        if not value:
            return _take(tokens, ("empty", "]", depth)), value
        pairs = [_vouched(item, tokens, depth + 1) for item in value]
        items = [item for found, item in pairs if found]
        return bool(items), items
    return _take(tokens, _leaf(value, depth)), value


def _take(tokens: collections.Counter[Voucher], voucher: Voucher) -> bool:
    if tokens[voucher] <= 0:
        return False
    tokens[voucher] -= 1
    return True


def _leaf(value: Any, depth: int) -> Voucher:
    # Tagged, since True == 1 and 1 == 1.0 (the last pair is wanted: json_repair may say 1.0).
    if isinstance(value, str):
        return "str", value, depth
    if value is None or isinstance(value, bool):
        return "literal", value, depth
    return "number", value, depth


def _unquote(token: str) -> str:
    inner = token[1:-1]
    if "\\" not in inner:  # nothing to unescape: the common case, and the cheap one
        return inner
    if token[0] == "'":
        inner = inner.replace("\\'", "'").replace('"', '\\"')
    try:
        return str(json.loads(f'"{inner}"', strict=False))
    except ValueError:  # an escape JSON lacks: json_repair keeps such text as it is
        return token[1:-1]


def _bare(token: str) -> Any:
    if _INTEGER.fullmatch(token):
        return int(token)
    if _NUMBER.fullmatch(token):
        return float(token)
    return _LITERALS.get(token, token)


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere (json_repair lets them through)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True
