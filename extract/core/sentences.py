"""Grounded sentences: a field filled with one of the document's own sentences, chosen.

A string marked ``"x-grounded": "sentence"`` is grounded (see ``grounding``) and is one whole
sentence of the document: "the sentence that states the request", "the sentence that shows the
sentiment". A small model copies a sentence poorly: it paraphrases, stops early or runs past
the end. So when the schema goes to the server as ``format``, such a field's grammar offers the
document's sentences that fit the field (its length bounds, its pattern) as an ``enum``, with
null beside them where the schema allows null: the model chooses instead of copying, and the
value is grounded by construction. The schema itself is unchanged, so the reply is validated
and grounded as any other.

Only fields reached through object properties are offered (not array items); where the path
cannot be followed in the grammar form, or the format is not a schema, the field is generated
as before. Nothing here does I/O.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from .grounding import ANY
from .schema_walk import Parts

MAX_SENTENCES = 64
_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")


def document_sentences(text: str, limit: int = MAX_SENTENCES) -> list[str]:
    """The document's sentences, as written, in order, each once (at most ``limit``).

    >>> document_sentences("Hi there. My card was charged twice!\\nPlease refund it.")
    ['Hi there.', 'My card was charged twice!', 'Please refund it.']
    """
    parts = (part.strip() for part in _BREAK.split(text))
    return list(dict.fromkeys(part for part in parts if part))[:limit]


def offer_sentences(form: Mapping[str, Any], paths: Sequence[Parts], text: str) -> Any:
    """``form`` with each sentence field at ``paths`` narrowed to the sentences of ``text``
    that fit it (a copy; ``form`` itself is left as it was).

    >>> form = {"type": "object", "properties": {"ask": {"anyOf": [
    ...     {"type": "string", "minLength": 10}, {"type": "null"}]}}}
    >>> offer_sentences(form, [("ask",)], "Hi. Refund my order please.")["properties"]["ask"]
    {'anyOf': [{'enum': ['Refund my order please.']}, {'type': 'null'}]}
    """
    if not paths:
        return form
    offered = copy.deepcopy(dict(form))
    found = document_sentences(text)
    for parts in paths:
        if ANY in parts or not parts:
            continue
        parent = _object_at(offered, parts[:-1])
        properties = parent.get("properties") if parent is not None else None
        if not isinstance(properties, dict) or parts[-1] not in properties:
            continue
        node = _resolved(offered, properties[parts[-1]])
        choice = _narrowed(node, found)
        if choice is not None:
            properties[parts[-1]] = choice
    return offered


def _narrowed(node: Any, sentences: list[str]) -> dict[str, Any] | None:
    """The grammar node offering the sentences that ``node``'s string branch takes (and null
    where it takes null); None when ``node`` holds no string branch."""
    branches = node.get("anyOf") if isinstance(node, Mapping) else None
    options = branches if isinstance(branches, list) else [node]
    strings = [b for b in options if isinstance(b, Mapping) and b.get("type") == "string"]
    if not strings:
        return None
    nullable = any(isinstance(b, Mapping) and b.get("type") == "null" for b in options)
    validators = [jsonschema.Draft202012Validator(dict(b)) for b in strings]
    fitting = [s for s in sentences if any(v.is_valid(s) for v in validators)]
    if not fitting:
        # Nothing fits: null where allowed, else the field as it was (the reply is re-asked).
        return {"type": "null"} if nullable else None
    choice: dict[str, Any] = {"enum": fitting}
    return {"anyOf": [choice, {"type": "null"}]} if nullable else choice


def _object_at(form: dict[str, Any], parts: Parts) -> dict[str, Any] | None:
    node: Any = _resolved(form, form)
    for name in parts:
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or name not in properties:
            return None
        node = _resolved(form, properties[name])
    return node if isinstance(node, dict) else None


def _resolved(form: Mapping[str, Any], node: Any) -> Any:
    """``node``, or the ``$defs`` entry its local ``$ref`` names (the grammar form's only refs)."""
    seen = 0
    while isinstance(node, Mapping) and isinstance(ref := node.get("$ref"), str) and seen < 16:
        if not ref.startswith("#/$defs/"):
            return node
        node = (form.get("$defs") or {}).get(ref.removeprefix("#/$defs/"))
        seen += 1
    return node
