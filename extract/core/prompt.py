"""The prompts: one to extract from a document, one to re-ask after a bad reply.

Pure and deterministic, since the cache keys on the final prompt. The fixed part (task, shape)
comes first so that consecutive documents share a prompt prefix the server can reuse; the
document comes last, between ``<document>`` tags that its own text cannot forge. That is the
whole defence against instructions inside a document: a sentence telling the model to ignore
them cost every document about 15 tokens, and the smallest models copied it into the values
(P6 in bench/, SmolLM2-135M: 95% first-try valid with it, 100% without, same 10 messages).

Worked examples (few-shot) sit between the shape and the document, each a document in the
same tags followed by its value as compact JSON, so the model sees the very pattern it is to
continue. They belong to the prompt's fixed part, and so to the cache key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pydantic

from .. import errors
from .schema import Schema

DEFAULT_INSTRUCTIONS = "Extract the information from the document below."
# Characters of the schema's own description used as the task when no instructions are given.
MAX_ABOUT = 300
MAX_ERROR_CHARS = 500
# A reply rejected for its length is not shown again: small models copy it, loop and all.
_TOO_LONG = (errors.RunawayOutput, errors.TruncatedOutput)
# Nor is a reply that copied the shape's placeholder: shown again, the placeholder is copied again.
_NOT_SHOWN = (*_TOO_LONG, errors.PlaceholderEcho)
# "<document>", "</ DOCUMENT >", "< document x=1>" ...: anything a reader could take for a tag.
_TAG = re.compile(r"<(?=\s*/?\s*(?:document|reply)\b)", re.IGNORECASE)
_DOCUMENT = "<document>\n"
_LEADS: dict[str, str] = {
    "shape": "Respond using JSON only, in this shape:",
    "schema": "Respond using JSON only, valid against this JSON Schema:",
}


def neutralise_tags(text: str) -> str:
    """``text`` with every ``<document>``-like tag defused, so it cannot end the document early.

    >>> neutralise_tags("a </Document > b")
    'a &lt;/Document > b'
    """
    return _TAG.sub("&lt;", text)


Example = tuple[str, Any]
"""A worked example: a document's text and the value to extract from it (JSON data)."""


def check_examples(examples: Iterable[Any], schema: Schema) -> tuple[Example, ...]:
    """The examples as (text, JSON value) pairs, each value checked against ``schema``.

    A value may be JSON data or an instance of the schema's Pydantic model. Raises ConfigError
    naming the example's index (from 0) and, for a value the schema rejects, the JSON path.

    >>> check_examples([("Great!", "good")], Schema.load({"enum": ["good", "bad"]}))
    (('Great!', 'good'),)
    >>> check_examples([("Meh", "so-so")], Schema.load({"enum": ["good", "bad"]}))
    Traceback (most recent call last):
    ...
    extract.errors.ConfigError: example 0: $: 'so-so' is not one of ['good', 'bad']
    """
    checked: list[Example] = []
    for i, example in enumerate(examples):
        if not isinstance(example, tuple | list) or len(example) != 2:
            raise errors.ConfigError(f"example {i}: give a (text, value) pair")
        text, value = example
        if not isinstance(text, str):
            raise errors.ConfigError(f"example {i}: the text must be a string")
        if isinstance(value, pydantic.BaseModel):
            value = value.model_dump(mode="json")
        try:
            json.dumps(value, allow_nan=False)
            schema.validate(value)
        except (TypeError, ValueError) as exc:
            raise errors.ConfigError(f"example {i}: the value is not JSON data: {exc}") from None
        except errors.SchemaMismatch as exc:
            raise errors.ConfigError(f"example {i}: {exc.message}") from None
        checked.append((text, value))
    return tuple(checked)


def prompt_head(prompt: str) -> str:
    r"""The prompt without its document: everything before the last document tag (examples
    included, since the document's own tags are defused).

    >>> prompt_head("Task\n<document>\nText\n</document>")
    'Task\n'
    """
    return prompt.rpartition(_DOCUMENT)[0]


def _shown(text: str) -> str:
    return f"{_DOCUMENT}{neutralise_tags(text)}\n</document>"


def default_task(schema: Schema) -> str:
    """The task sentence when no instructions are given: the default one, naming what the
    schema says it is about (its ``description``, else its ``title``; the first paragraph).

    Without it the model is told nothing of the task but the shape: on the single-call bench
    (bench/single_call.py, SmolLM2-135M, 100 tweets, a schema described as "Overall sentiment
    of a text.") the generic sentence scored 0.82 and this one 0.85, against 0.90 for a plain
    one-line task prompt.

    >>> default_task(Schema.load({"description": "Overall sentiment.\\n\\nMore.", "enum": [1]}))
    'Extract the information from the document below: Overall sentiment.'
    >>> default_task(Schema.load({"enum": [1]})) == DEFAULT_INSTRUCTIONS
    True
    """
    root = schema.json_schema
    about = root.get("description") or root.get("title")
    if not isinstance(about, str) or not about.strip():
        return DEFAULT_INSTRUCTIONS
    about = " ".join(about.strip().split("\n\n")[0].split())
    if len(about) > MAX_ABOUT:
        about = about[: MAX_ABOUT - 1].rstrip() + "…"
    return f"{DEFAULT_INSTRUCTIONS[:-1]}: {about}"


def build_prompt(
    text: str,
    schema: Schema,
    *,
    instructions: str | None = None,
    style: str = "shape",
    examples: Sequence[Example] = (),
) -> str:
    """The extraction prompt for one document, with worked ``examples`` (see
    :func:`check_examples`) after the shape.

    Raises ConfigError for an unknown ``style`` (``"shape"`` or ``"schema"``).

    >>> print(build_prompt("Great!", Schema.load({"enum": ["good", "bad"]})))
    Extract the information from the document below.
    Respond using JSON only, in this shape:
    "good" | "bad"
    <document>
    Great!
    </document>
    """
    lead = _LEADS.get(style)
    if lead is None:
        raise errors.ConfigError(
            f"unknown rendering style {style!r}; use one of {', '.join(_LEADS)}"
        )
    rendering = schema.render("shape" if style == "shape" else "schema")
    task = (instructions or default_task(schema)).strip()
    shown = [f"{task}\n{lead}\n{rendering}"]
    if examples:
        shown.append("Examples:")
        for example_text, value in examples:
            as_json = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            shown.append(f"{_shown(example_text)}\n{neutralise_tags(as_json)}")
    shown.append(_shown(text))
    return "\n".join(shown)


def build_reask(
    prompt: str, previous_raw: str, error: errors.OutputError, *, max_raw_chars: int = 2000
) -> str:
    """The original prompt plus the last bad reply (cut to ``max_raw_chars``) and its one error.

    Only the last failed attempt is carried, so the prompt does not grow across retries. A reply
    rejected for its length (RunawayOutput, TruncatedOutput) or for copying a placeholder
    (PlaceholderEcho) is left out: shown again, it was copied again (bench P6: the same looping
    reply three attempts in a row).

    >>> err = errors.SchemaMismatch("'x' is not one of ['good', 'bad']", path="$")
    >>> print(build_reask("PROMPT", '"x"', err))
    PROMPT
    <BLANKLINE>
    Your previous reply was:
    <reply>
    "x"
    </reply>
    It was rejected: $: 'x' is not one of ['good', 'bad']
    Respond again with corrected JSON only.
    """
    message = error.message.strip()
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    if isinstance(error, _TOO_LONG):
        return (
            f"{prompt}\n\nYour previous reply was cut off: {message}\n"
            "Respond again with JSON only, each value short and taken from the document."
        )
    if isinstance(error, _NOT_SHOWN):
        return (
            f"{prompt}\n\nYour previous reply was rejected: {message}\n"
            "Respond again with JSON only, each value taken from the document."
        )
    shown = neutralise_tags(previous_raw.strip())
    if len(shown) > max_raw_chars:
        cut = len(shown) - max_raw_chars
        shown = f"{shown[: max(max_raw_chars, 0)]}\n[... {cut} more characters cut]"
    reply = (
        f"Your previous reply was:\n<reply>\n{shown}\n</reply>"
        if shown
        else "Your previous reply was empty."
    )
    return (
        f"{prompt}\n\n{reply}\nIt was rejected: {message}\nRespond again with corrected JSON only."
    )
