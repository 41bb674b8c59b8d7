"""The prompts: one to extract from a document, one to re-ask after a bad reply.

Pure and deterministic, since the cache keys on the final prompt. The fixed part (task, shape)
comes first so that consecutive documents share a prompt prefix the server can reuse; the
document comes last, between ``<document>`` tags that its own text cannot forge. That is the
whole defence against instructions inside a document: a sentence telling the model to ignore
them cost every document about 15 tokens, and the smallest models copied it into the values
(P6 in bench/, SmolLM2-135M: 95% first-try valid with it, 100% without, same 10 messages).
"""

from __future__ import annotations

import re

from .. import errors
from .schema import Schema

DEFAULT_INSTRUCTIONS = "Extract the information from the document below."
MAX_ERROR_CHARS = 500
# A reply rejected for its length is not shown again: small models copy it, loop and all.
_TOO_LONG = (errors.RunawayOutput, errors.TruncatedOutput)
# "<document>", "</ DOCUMENT >", "< document x=1>" ...: anything a reader could take for a tag.
_TAG = re.compile(r"<(?=\s*/?\s*(?:document|reply)\b)", re.IGNORECASE)
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


def build_prompt(
    text: str, schema: Schema, *, instructions: str | None = None, style: str = "shape"
) -> str:
    """The extraction prompt for one document.

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
    task = (instructions or DEFAULT_INSTRUCTIONS).strip()
    return f"{task}\n{lead}\n{rendering}\n<document>\n{neutralise_tags(text)}\n</document>"


def build_reask(
    prompt: str, previous_raw: str, error: errors.OutputError, *, max_raw_chars: int = 2000
) -> str:
    """The original prompt plus the last bad reply (cut to ``max_raw_chars``) and its one error.

    Only the last failed attempt is carried, so the prompt does not grow across retries. A reply
    rejected for its length (RunawayOutput, TruncatedOutput) is left out: shown again, it was
    copied again (bench P6: the same looping reply three attempts in a row).

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
