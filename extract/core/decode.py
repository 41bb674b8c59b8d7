"""Reading a JSON value out of a model's reply text.

Three stages, cheapest first:

1. **strict**: the reply is JSON (what a schema grammar produces);
2. **lenient**: a complete JSON value inside chatter or a Markdown fence (unconstrained small
   models write ``JSON: {...} This is...``);
3. **repair**: an object or array that is slightly broken (trailing commas, single quotes) or
   cut short, keeping only what arrived (see ``_repair``: nothing is filled in).

A reply can hold several values. Only top-level ones count: a value inside another, or inside
an object or array that the reply opened and never closed, is a part, never the answer. They
are offered in this order: what a code fence holds, then complete values, largest first (the
answer outweighs a ``[1]`` in prose), then repaired ones, largest first. :func:`decode` takes
the first; the attempt flow takes the first that its schema accepts.

Whatever the input, the only errors raised are EmptyOutput and InvalidJSON.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from ..errors import EmptyOutput, InvalidJSON
from .repair import Span, repair, scan

Stage = Literal["strict", "lenient", "repair"]

# Each candidate offered may cost the flow a validation: past this many, the rest are ignored.
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
    return next(candidates(text))


def candidates(text: str) -> Iterator[tuple[Any, Stage]]:
    """The values a reply holds, best first, each with the stage that read it.

    A reply that is JSON as a whole gives that value alone. Raises EmptyOutput or InvalidJSON
    (with the text as ``raw``) when it holds none: nothing is yielded then.

    >>> [value for value, _stage in candidates('See [1]. {"a": 1}')]
    [{'a': 1}, [1]]
    """
    if not text.strip():
        raise EmptyOutput("the reply is empty", raw=text)
    try:
        whole = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        first_error = exc
    else:
        yield whole, "strict"
        return
    complete, broken = _top_level(text)
    fenced = _fenced(text, complete, broken)
    ordered = sorted(complete, key=_largest_first)
    lenient = [*fenced.values(), *(value for at, _end, value in ordered if at not in fenced)]
    found = itertools.chain(_as(lenient, "lenient"), _repaired(text, broken))
    offered = False
    for candidate in itertools.islice(found, MAX_CANDIDATES):
        offered = True
        yield candidate
    if not offered:
        raise InvalidJSON(f"no JSON value in the reply: {_describe(first_error)}", raw=text)


def _as(values: Iterable[Any], stage: Stage) -> Iterator[tuple[Any, Stage]]:
    return ((value, stage) for value in values)


def _repaired(text: str, broken: list[Span]) -> Iterator[tuple[Any, Stage]]:
    """What arrived of each broken span, largest first (each repair costs a pass over it)."""
    for span in sorted(broken, key=lambda span: (span.start - span.end, span.start)):
        found, value = repair(text, span)
        if found:
            yield value, "repair"


def _describe(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}, column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)


def _largest_first(found: tuple[int, int, Any]) -> tuple[int, int]:
    start, end, _value = found
    return start - end, start


def _top_level(text: str) -> tuple[list[tuple[int, int, Any]], list[Span]]:
    """The objects and arrays outside any other: the complete ones as ``(start, end, value)``,
    and the spans of the rest (broken, or never closed)."""
    complete: list[tuple[int, int, Any]] = []
    broken: list[Span] = []
    at = 0
    while (opener := _OPENERS.search(text, at)) is not None:
        try:
            value, at = _DECODER.raw_decode(text, opener.start())
        except (ValueError, RecursionError):
            span = scan(text, opener.start())
            broken.append(span)
            at = span.end
        else:
            complete.append((opener.start(), at, value))
    return complete, broken


def _fenced(text: str, complete: list[tuple[int, int, Any]], broken: list[Span]) -> dict[int, Any]:
    """The values that code fences hold whole, in order, by where each value starts.

    A fence inside a value (in one of its strings) is the value's text, not a fence.
    """
    spans = sorted([(at, end) for at, end, _value in complete] + [(s.start, s.end) for s in broken])
    found: dict[int, Any] = {}
    for fence in _FENCE.finditer(text):
        before = bisect.bisect_right(spans, (fence.start(), len(text))) - 1
        if before >= 0 and fence.start() < spans[before][1]:
            continue
        body = fence.group(1)
        try:
            value = _DECODER.decode(body)
        except (ValueError, RecursionError):
            continue
        found[fence.start(1) + len(body) - len(body.lstrip())] = value
    return found
