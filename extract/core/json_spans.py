"""Where each scalar of a JSON text sits: its location in the value and its characters.

The confidence of a field comes from the tokens that spelled it, so the reply's text must be
mapped back to the value it decodes to. Only JSON as written is mapped (whitespace around it
allowed): a reply that needed repair no longer matches its tokens, and gets no spans.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from .schema_walk import Parts

MAX_DEPTH = 200  # deeper than any reply worth scoring; beyond it, no spans
_WS = " \t\n\r"
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}
_DECODER = json.JSONDecoder()


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """One scalar: its location (keys and indexes), its value, and ``text[start:end]``."""

    parts: Parts
    value: Any
    start: int
    end: int


class _NotJSON(Exception):
    pass


def scalar_spans(text: str) -> list[Span] | None:
    """Every scalar of the JSON value in ``text``, in text order; None when it is not JSON.

    Text after the value is ignored (the tokens that matter come before it).

    >>> [(s.parts, s.value, s.start) for s in scalar_spans('{"a": [1, "x"]}')]
    [(('a', 0), 1, 7), (('a', 1), 'x', 10)]
    >>> scalar_spans('{"a": 1,}') is None
    True
    """
    spans: list[Span] = []
    try:
        _Scanner(text, spans).value(_skip(text, 0), (), 0)
    except (_NotJSON, ValueError, IndexError):  # raw_decode raises ValueError on a bad string
        return None
    return spans


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WS:
        at += 1
    return at


class _Scanner:
    def __init__(self, text: str, spans: list[Span]) -> None:
        self.text = text
        self.spans = spans

    def value(self, at: int, parts: Parts, depth: int) -> int:
        """Scan the value starting at ``at``; return the index just past it."""
        if depth > MAX_DEPTH:
            raise _NotJSON
        text = self.text
        char = text[at]
        if char == "{":
            return self.object(at + 1, parts, depth)
        if char == "[":
            return self.array(at + 1, parts, depth)
        if char == '"' or _NUMBER.match(text, at):
            value, end = _DECODER.raw_decode(text, at)
            self.spans.append(Span(parts, value, at, end))
            return end
        for word, value in _LITERALS.items():
            if text.startswith(word, at):
                self.spans.append(Span(parts, value, at, at + len(word)))
                return at + len(word)
        raise _NotJSON

    def object(self, at: int, parts: Parts, depth: int) -> int:
        text = self.text
        at = _skip(text, at)
        if text[at] == "}":
            return at + 1
        while True:
            if text[at] != '"':
                raise _NotJSON
            key, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if text[at] != ":":
                raise _NotJSON
            at = _skip(text, self.value(_skip(text, at + 1), (*parts, key), depth + 1))
            if text[at] == "}":
                return at + 1
            if text[at] != ",":
                raise _NotJSON
            at = _skip(text, at + 1)

    def array(self, at: int, parts: Parts, depth: int) -> int:
        text = self.text
        at = _skip(text, at)
        if text[at] == "]":
            return at + 1
        index = 0
        while True:
            at = _skip(text, self.value(at, (*parts, index), depth + 1))
            if text[at] == "]":
                return at + 1
            if text[at] != ",":
                raise _NotJSON
            at = _skip(text, at + 1)
            index += 1
