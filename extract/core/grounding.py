"""Grounded values: strings that must be copied from the document, and where they occur.

A schema marks such a string with the keyword ``"x-grounded": true`` (in Pydantic, a field
declared with ``extract.grounded(...)`` in place of ``Field(...)``), or ``"x-grounded":
"sentence"`` for one whole sentence of the document, which the server's grammar then offers as
a choice (see ``sentences``). After a reply validates,
every grounded value is looked up in the document, in this order:

1. **exact**: the value occurs as written;
2. **normalised**: case and runs of whitespace ignored (``"ACME  corp"`` finds ``"Acme Corp"``);
3. **digits**: for a value made of digits and the punctuation numbers are written with
   (``+ - . , / ( )`` and spaces) holding at least :data:`MIN_DIGITS` digits, the same digits
   in the same order, in a stretch of the document made of digits and that punctuation
   (``"555-123-4567"`` finds ``"(555) 123 4567"``; ``"1250.00"`` finds ``"1,250.00"``). Dates
   written in words are not matched to dates written in digits.

A match gives the value's character offsets in the document, as a :class:`Span`. A value found
nowhere was not in the document: the caller removes it where the schema allows (null, or an
optional key) and otherwise re-asks. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
from referencing.exceptions import Unresolvable

from .schema_walk import Parts, SchemaIndex, json_path

KEYWORD = "x-grounded"
SENTENCE = "sentence"  # the keyword's value for a field that is one of the document's sentences
MIN_DIGITS = 3
ANY = "*"  # a path step matching every array item or every extra key
_SPACE = re.compile(r"\s+")
_NUMBERISH = re.compile(r"[0-9][0-9+\-.,/() ]*[0-9]|[0-9]")
_NUMBER_CHARS = frozenset("0123456789+-.,/() ")


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """Where a grounded value sits in the document: ``text[start:end]``, found ``how``."""

    path: str
    start: int
    end: int
    how: str  # "exact" | "normalised" | "digits"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "start": self.start, "end": self.end, "how": self.how}


def grounded(default: Any = ..., **field: Any) -> Any:
    """A Pydantic field whose string value must be copied from the document.

    ``pydantic.Field`` with ``x-grounded`` in its JSON Schema; arguments as ``Field``'s::

        class Contact(BaseModel):
            name: str | None = grounded(None, description="full name")
    """
    extra = dict(field.pop("json_schema_extra", None) or {})
    return pydantic.Field(default, json_schema_extra={**extra, KEYWORD: True}, **field)


def grounded_paths(index: SchemaIndex) -> tuple[Parts, ...]:
    """Every location of a value marked ``x-grounded``, ``*`` standing for any item or key.

    >>> from extract.core.schema import Schema
    >>> s = Schema.load({"type": "object", "properties": {"name": {"type": "string",
    ...     "x-grounded": True}, "tags": {"type": "array", "items": {"x-grounded": True}}}})
    >>> grounded_paths(s._index)
    (('name',), ('tags', '*'))
    """
    return _marked(index, (True, SENTENCE))


def sentence_paths(index: SchemaIndex) -> tuple[Parts, ...]:
    """Every location of a value marked ``"x-grounded": "sentence"``.

    >>> from extract.core.schema import Schema
    >>> s = Schema.load({"type": "object", "properties": {"ask": {"type": "string",
    ...     "x-grounded": "sentence"}, "name": {"type": "string", "x-grounded": True}}})
    >>> sentence_paths(s._index), grounded_paths(s._index)
    ((('ask',),), (('ask',), ('name',)))
    """
    return _marked(index, (SENTENCE,))


def _marked(index: SchemaIndex, marks: tuple[Any, ...]) -> tuple[Parts, ...]:
    found: list[Parts] = []
    # Following every $ref along every path takes exponential time on large schemas
    # (SchemaStore's renovate.json: minutes); most schemas mark nothing, so look first.
    if any(KEYWORD in node for node, _, _ in index.walk(index.root, (), None)):
        _walk(index, index.root, index.resolver, (), (), found, marks)
    return tuple(dict.fromkeys(found))


def _walk(
    index: SchemaIndex,
    node: Any,
    resolver: Any,
    parts: Parts,
    stack: tuple[int, ...],
    found: list[Parts],
    marks: tuple[Any, ...],
    entered: bool = False,
) -> None:
    if not isinstance(node, Mapping) or id(node) in stack:
        return
    stack = (*stack, id(node))
    resolver = resolver if entered else index.enter(node, resolver)
    mark = node.get(KEYWORD)
    if any(mark is m if isinstance(m, bool) else mark == m for m in marks):
        found.append(parts)
    if isinstance(node.get("$ref"), str):
        try:
            target, target_resolver, _ = index.resolve(node["$ref"], resolver)
        except Unresolvable:  # checked in its lexical scope at load; not reachable from here
            target = None
        if target is not None:
            _walk(index, target, target_resolver, parts, stack, found, marks, entered=True)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(keyword) or ():
            _walk(index, branch, resolver, parts, stack, found, marks)
    for name, sub in (node.get("properties") or {}).items():
        _walk(index, sub, resolver, (*parts, name), stack, found, marks)
    for keyword in ("additionalProperties", "items"):
        if isinstance(node.get(keyword), Mapping):
            _walk(index, node[keyword], resolver, (*parts, ANY), stack, found, marks)
    for sub in node.get("prefixItems") or ():
        _walk(index, sub, resolver, (*parts, ANY), stack, found, marks)


def values_at(value: Any, pattern: Parts, here: Parts = ()) -> Iterator[tuple[Parts, Any]]:
    """The (location, value) pairs in ``value`` that ``pattern`` names.

    >>> list(values_at({"a": [{"b": "x"}, {"b": "y"}]}, ("a", "*", "b")))
    [(('a', 0, 'b'), 'x'), (('a', 1, 'b'), 'y')]
    """
    if not pattern:
        yield here, value
        return
    step, rest = pattern[0], pattern[1:]
    if isinstance(value, dict):
        keys = list(value) if step == ANY else [step] if step in value else []
        for key in keys:
            yield from values_at(value[key], rest, (*here, key))
    elif isinstance(value, list) and step == ANY:
        for i, item in enumerate(value):
            yield from values_at(item, rest, (*here, i))


def locate(value: str, document: str) -> tuple[int, int, str] | None:
    """Where ``value`` occurs in ``document``: (start, end, how), or None.

    >>> locate("Acme Corp", "from ACME  corp, hi")
    (5, 15, 'normalised')
    >>> locate("555-123-4567", "call (555) 123 4567 now")
    (6, 19, 'digits')
    >>> locate("123-456-7890", "no phone here") is None
    True
    """
    if not value.strip():
        return None
    start = document.find(value)
    if start >= 0:
        return start, start + len(value), "exact"
    found = _normalised(value, document)
    if found is not None:
        return (*found, "normalised")
    found = _digits(value, document)
    if found is not None:
        return (*found, "digits")
    return None


def _normalised(value: str, document: str) -> tuple[int, int] | None:
    words = _SPACE.split(value.strip())
    pattern = r"\s+".join(re.escape(w) for w in words)
    match = re.search(pattern, document, re.IGNORECASE)
    return (match.start(), match.end()) if match else None


def _digits(value: str, document: str) -> tuple[int, int] | None:
    wanted = "".join(c for c in value if c.isdigit())
    if len(wanted) < MIN_DIGITS or not set(value) <= _NUMBER_CHARS:
        return None
    for match in _NUMBERISH.finditer(document):
        digits = "".join(c for c in match.group() if c.isdigit())
        at = digits.find(wanted)
        if at < 0:
            continue
        # Map the digit offsets back to the characters of the document.
        positions = [match.start() + i for i, c in enumerate(match.group()) if c.isdigit()]
        return positions[at], positions[at + len(wanted) - 1] + 1
    return None


def ground(value: Any, paths: tuple[Parts, ...], document: str) -> tuple[list[Span], list[Parts]]:
    """The spans of the grounded strings in ``value``, and the locations of those not found."""
    spans: list[Span] = []
    missing: list[Parts] = []
    for pattern in paths:
        for where, found in values_at(value, pattern):
            if not isinstance(found, str):
                continue
            hit = locate(found, document)
            if hit is None:
                missing.append(where)
            else:
                spans.append(Span(json_path(where), *hit))
    return spans, missing
