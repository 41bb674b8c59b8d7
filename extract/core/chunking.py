"""Long documents in pieces: split with overlap, extract from each, merge into one value.

Splitting prefers the end of a paragraph, then of a sentence, then a space, in the last part
of each piece, so a fact is rarely cut in two; consecutive pieces overlap by ``overlap``
characters, so a fact cut at one piece's end is whole in the next.

Merging (:func:`merge`), for values of one schema, one per piece in document order:

- objects merge key by key (keys in first-seen order), recursively;
- lists are concatenated, an item equal to an earlier one (as JSON) dropped;
- other values: the first non-null one, in document order; null only when every piece said
  null. A fact a document states once (the parties, on page one) is said by one piece, while
  boilerplate repeated over many pieces can lead a small model to the same wrong value in each
  of them: a vote would let the boilerplate win (bench/grounding.py, SmolLM2-135M: every
  padded contract's name came out as "The Goods" by majority). :func:`majority` votes instead,
  for a ``merge=`` of your own.

Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError

# A piece is cut at the best boundary found in its last part (this fraction of its length).
BOUNDARY_SEARCH = 0.2
_BOUNDARIES = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")

Merge = Callable[[Sequence[Any]], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Piece:
    """``text[start:end]`` of the document."""

    start: int
    end: int
    text: str


def split(text: str, size: int, overlap: int = 0) -> list[Piece]:
    """``text`` in pieces of at most ``size`` characters, consecutive ones sharing ``overlap``.

    Raises ConfigError unless ``0 <= overlap < size``.

    >>> [p.text for p in split("one. two. three.", 10, 0)]
    ['one. two. ', 'three.']
    >>> [(p.start, p.end) for p in split("abcdefghij", 4, 1)]
    [(0, 4), (3, 7), (6, 10)]
    """
    if size < 1 or not 0 <= overlap < size:
        raise ConfigError(f"chunk size {size} and overlap {overlap}: need 0 <= overlap < size")
    pieces: list[Piece] = []
    start = 0
    while True:
        end = min(start + size, len(text))
        if end < len(text):
            end = _boundary(text, start, end)
        pieces.append(Piece(start, end, text[start:end]))
        if end >= len(text):
            return pieces
        # Step back by the overlap, but always move forward.
        start = max(end - overlap, start + 1)


def _boundary(text: str, start: int, end: int) -> int:
    """The best place to cut ``text[start:end]``: after a boundary in its last part."""
    floor = end - max(1, int((end - start) * BOUNDARY_SEARCH))
    for mark in _BOUNDARIES:
        at = text.rfind(mark, floor, end)
        if at > start:
            return at + len(mark)
    return end


def merge(values: Sequence[Any]) -> Any:
    """One value from the values of the pieces, by the rules in the module docstring.

    >>> merge([{"buyer": "Ann", "items": ["a"]}, {"buyer": "Bob", "items": ["a", "b"]}])
    {'buyer': 'Ann', 'items': ['a', 'b']}
    >>> merge([None, "y", "x"])
    'y'
    """
    return _merged(values, lambda present: present[0])


def majority(values: Sequence[Any]) -> Any:
    """Like :func:`merge`, but a value that is neither object nor list is the most frequent
    non-null one (ties to the earliest).

    >>> majority(["x", "y", "y"])
    'y'
    """
    return _merged(values, _most_frequent)


def _merged(values: Sequence[Any], pick: Callable[[list[Any]], Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        keys = list(dict.fromkeys(k for v in present for k in v))
        return {k: _merged([v[k] for v in present if k in v], pick) for k in keys}
    if all(isinstance(v, list) for v in present):
        seen: dict[str, Any] = {}
        for item in (i for v in present for i in v):
            seen.setdefault(json.dumps(item, sort_keys=True), item)
        return list(seen.values())
    return pick(present)


def _most_frequent(present: list[Any]) -> Any:
    counts = Counter(json.dumps(v, sort_keys=True) for v in present)
    best = max(counts.values())
    return next(v for v in present if counts[json.dumps(v, sort_keys=True)] == best)
