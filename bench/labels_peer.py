"""The peer of ``python -m bench.labels``: the official ``ollama`` client, used as its README shows.

One ``Client.generate`` per tweet: a plain prompt (the task sentence, a blank line, the tweet),
the schema as ``format`` (the server constrains the reply to it), the same options as extract
gets. The reply is parsed and checked against the schema; there is no re-ask and no confidence.
Each outcome is written as an ``extract label`` output record, so ``extract.evaluate`` scores the
peer exactly as it scores extract.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import ollama


def plain_prompt(task: str, text: str) -> str:
    """What a user of the ollama client writes: the task, then the text.

    >>> plain_prompt("Classify the sentiment of the tweet below.", "@united thanks!")
    'Classify the sentiment of the tweet below.\\n\\n@united thanks!'
    """
    return f"{task}\n\n{text}"


def label(
    url: str,
    model: str,
    documents: Iterable[Mapping[str, Any]],
    schema: Mapping[str, Any],
    *,
    task: str,
    options: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One output record per document (``{"id", "text"}``), in order.

    Raises ``ollama.ResponseError`` or ``httpx`` errors when the server fails: the bench's own
    server answering is a precondition, not an outcome to score.
    """
    validator = jsonschema.Draft202012Validator(schema)
    records = []
    with ollama.Client(host=url) as client:
        for line, document in enumerate(documents, 1):
            reply = client.generate(
                model=model,
                prompt=plain_prompt(task, document["text"]),
                format=dict(schema),
                options=dict(options),
            )
            records.append(_record(document["id"], line, reply, validator))
    return records


def _record(
    doc_id: Any, line: int, reply: ollama.GenerateResponse, validator: jsonschema.Validator
) -> dict[str, Any]:
    usage = {
        name: getattr(reply, name)
        for name in ("total_duration", "prompt_eval_count", "eval_count")
        if getattr(reply, name) is not None
    }
    out: dict[str, Any] = {"id": doc_id, "line": line, "attempts": 1, "usage": usage}
    try:
        value = json.loads(reply.response or "")
    except ValueError:
        return {**out, "ok": False, "error": {"type": "InvalidJSON"}}
    if not validator.is_valid(value):
        return {**out, "ok": False, "error": {"type": "SchemaMismatch"}}
    return {**out, "ok": True, "value": value}
