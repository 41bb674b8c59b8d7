"""Echoes of the prompt: a value that repeats the schema's own words instead of the document's.

A small model that cannot find a value copies what the prompt showed it for that value: the
shape's placeholder (``<the request in one sentence>``) or a description (``the words that
show the sentiment``), often with a word or two around it (``The request in one sentence is a
refund, theft…``, ``Evidence: the words that show the sentiment:``). Such a value is a
:class:`~extract.errors.PlaceholderEcho` and is asked again.

**Near-copy**, the rule used here. The value and each reference text (every placeholder, every
``description`` and every ``x-labels`` meaning of the schema) are cut into words: runs of
letters and digits, lower-cased, so brackets, punctuation and case do not count. A value is a
near-copy of a reference of at least :data:`MIN_WORDS` words when some stretch of the value is
within :data:`MAX_EDITS` of it: at most that share of the reference's words (rounded down)
inserted, removed or changed, word-level edit distance. A value that goes on past the copy
(``… is a refund``) is still one; a value must reproduce nearly all of a reference, in order and
close together, so one that shares words with it (``"Please refund the request I sent in one
email"`` against ``the request in one sentence``: three edits in five words) is not. A
reference of two to four words must appear whole; a one-word placeholder (``<string>``) is
matched only with its brackets, by ``schema_render.echoed_placeholder``, since one word may well
be the real value.

A value the document itself holds (its words in order, as above) is never an echo: it was
copied from the document, which is what was asked. Nothing here does I/O.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .schema import Schema
from .schema_render import LABELS, echoed_placeholder
from .schema_walk import Parts, json_path

MAX_EDITS = 0.2  # word edits a near-copy may differ by, as a share of the reference
MIN_WORDS = 2  # a shorter reference is matched whole only (echoed_placeholder)
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    """``text`` as lower-case words: runs of letters and digits.

    >>> words("<The request, in ONE sentence…>")
    ('the', 'request', 'in', 'one', 'sentence')
    """
    return tuple(_WORD.findall(text.lower()))


def near_copy(value: str, reference: str) -> bool:
    """Whether ``value`` is a near-copy of ``reference`` (see the module's docstring).

    >>> near_copy("The request in one sentence is a refund", "<the request in one sentence>")
    True
    >>> near_copy("Please refund the request I sent", "the request in one sentence")
    False
    """
    return _covers(words(value), words(reference))


def _covers(value: tuple[str, ...], reference: tuple[str, ...]) -> bool:
    if len(reference) < MIN_WORDS or not value or not set(reference) & set(value):
        return False
    return _distance(value, reference) <= math.floor(MAX_EDITS * len(reference))


def _distance(value: tuple[str, ...], reference: tuple[str, ...]) -> int:
    """The fewest word edits that turn some stretch of ``value`` into ``reference`` (edit
    distance with the stretch's start and end free: Sellers' approximate matching)."""
    # column[i]: the distance between reference[:i] and the best stretch ending here.
    column = list(range(len(reference) + 1))
    best = column[-1]
    for word in value:
        previous, column[0] = column[0], 0  # a stretch may start at any word
        for i, wanted in enumerate(reference, 1):
            previous, column[i] = (
                column[i],
                min(
                    column[i] + 1,  # this word of the value is extra
                    column[i - 1] + 1,  # a word of the reference is missing
                    previous + (word != wanted),  # matched, or changed
                ),
            )
        best = min(best, column[-1])
    return best


@functools.lru_cache(maxsize=64)
def references(schema: Schema) -> tuple[tuple[str, ...], ...]:
    """The word lists a value must not nearly copy: the shape's placeholders, and every
    ``description`` and ``x-labels`` meaning in ``schema`` (one schema's, kept)."""
    texts: list[str] = [p[1:-1] for p in schema.placeholders]
    index = schema.index
    for node, _, _ in index.walk(index.root, (), None):
        if isinstance(node.get("description"), str):
            texts.append(node["description"])
        labels = node.get(LABELS)
        if isinstance(labels, Mapping):
            texts += [t for t in labels.values() if isinstance(t, str)]
    found = {words(t) for t in texts}
    return tuple(sorted(w for w in found if len(w) >= MIN_WORDS))


def echoed(value: Any, schema: Schema, document: str = "") -> str | None:
    """The JSON path of the first string in ``value`` that echoes the prompt, or None.

    A string echoes it when it holds a placeholder whole (``schema_render.echoed_placeholder``)
    or is a near-copy of a placeholder, description or option meaning; a string whose words
    the ``document`` holds in order is never an echo.
    """
    exact = echoed_placeholder(value, schema.placeholders, document)
    if exact is not None:
        return exact
    known = references(schema)
    if not known:
        return None
    text = words(document)
    for where, found in _strings(value, ()):
        said = words(found)
        if any(_covers(said, r) for r in known) and not _held(said, text):
            return json_path(where)
    return None


def _held(value: tuple[str, ...], document: tuple[str, ...]) -> bool:
    """Whether ``document`` holds the words of ``value`` one after another."""
    n = len(value)
    return n > 0 and any(document[i : i + n] == value for i in range(len(document) - n + 1))


def _strings(value: Any, here: Parts) -> Iterator[tuple[Parts, str]]:
    if isinstance(value, str):
        yield here, value
        return
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield from _strings(item, (*here, key))
