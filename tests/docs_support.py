"""A stand-in model for the documentation's examples: plausible, schema-valid replies.

The docs' examples run against the project's scripted server, which cannot read. This responder
reads the request as a model would have to: the schema from ``format`` and the document from
between the prompt's delimiters. It answers with a value that fits the schema and draws on the
document — an enum option whose name or label words occur in the text, numbers and names
copied from it — so grounding keeps what it copies and the pages' outputs look like a small
model's. Every choice token carries log-probabilities over the field's options, so confidence,
calibration and the eval report have real numbers to show. It is deterministic: the same
request always gets the same reply.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from extract.server import Reply

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
_DOC_START, _DOC_END = "<document>\n", "\n</document>"
_WORD = re.compile(r"[a-z]{4,}")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NAME = re.compile(r"[A-Z][\w&.'-]*(?: [A-Z][\w&.'-]*)*")
_CURRENCY = re.compile(r"\b[A-Z]{3}\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# Words a reader links to an option, beyond the option's own name and its x-labels.
_EXTRA = {
    "positive": "love great best gorgeous thanks fast",
    "negative": "crushed broke avoid late worst died never",
    "billing": "charged payment refund invoice cancel plan discount",
    "technical": "crash error sync broken stopped working",
    "account": "password email locked log account merge factor",
    "shipping": "order arrive parcel package address driver",
    "feature_request": "would great could add",
    "complaint": "worst hung",
    "urgent": "outage production whole customers hour",
    "high": "locked crashes rejected cracked charged",
    "low": "would could discount thanks wish",
}


def _label_words() -> dict[str, set[str]]:
    """Each option's cue words: its name, its x-labels' words (bundled schemas), ``_EXTRA``."""
    words: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for option, meaning in (node.get("x-labels") or {}).items():
                words.setdefault(option, set()).update(_stems(meaning))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for path in sorted(SCHEMAS.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    for option, extra in _EXTRA.items():
        words.setdefault(option, set()).update(_stems(extra))
    return words


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _WORD.findall(text.lower())}


LABEL_WORDS = _label_words()


def document_of(prompt: str) -> str:
    """The document between the prompt's delimiters (the whole prompt when there are none)."""
    _, found, rest = prompt.rpartition(_DOC_START)
    return rest.partition(_DOC_END)[0] if found else prompt


def _unit(*parts: str) -> float:
    """A number in [0, 1) that depends only on ``parts``."""
    return zlib.crc32("\x1f".join(parts).encode()) / 2**32


class Choice:
    """An option picked for an enum field, and how strongly the stand-in model leans to it."""

    def __init__(self, options: list[Any], document: str, where: str) -> None:
        cues = _stems(document)
        scores = [len(cues & LABEL_WORDS.get(str(o), {str(o)[:5]})) for o in options]
        best = max(scores)
        self.options = options
        self.index = scores.index(best) if best else int(_unit(document, where) * len(options))
        # A cue in the text makes it surer; none leaves it close to a guess.
        jitter = _unit(where, document, "p")
        self.probability = 0.55 + 0.4 * jitter if best else 0.25 + 0.35 * jitter

    def value(self) -> Any:
        return self.options[self.index]


def _pieces(value: Any, choices: Mapping[int, Choice]) -> Iterator[tuple[str, Choice | None]]:
    """The JSON text of ``value`` in pieces; an enum string's name is a piece of its own."""
    if isinstance(value, dict):
        yield "{", None
        for i, (key, item) in enumerate(value.items()):
            yield ("" if i == 0 else ", ") + json.dumps(key) + ": ", None
            yield from _pieces(item, choices)
        yield "}", None
    elif isinstance(value, list):
        yield "[", None
        for i, item in enumerate(value):
            if i:
                yield ", ", None
            yield from _pieces(item, choices)
        yield "]", None
    elif isinstance(value, str) and id(value) in choices:
        yield '"', None
        yield json.dumps(value)[1:-1], choices[id(value)]
        yield '"', None
    else:
        yield json.dumps(value, ensure_ascii=False), None


class Builder:
    """Builds one value for a schema from one document, remembering the choices it made."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.choices: dict[int, Choice] = {}

    def build(self, schema: Any, key: str = "$") -> Any:
        if not isinstance(schema, dict):
            return None
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            choice = Choice(list(schema["enum"]), self.document, key)
            value = choice.value()
            if isinstance(value, str):
                value = "".join(value)  # a fresh object, so its id names this choice alone
                self.choices[id(value)] = choice
            return value
        for combiner in ("anyOf", "oneOf"):
            branches = [b for b in schema.get(combiner, []) if b.get("type") != "null"]
            if branches:
                if all("const" in b for b in branches):
                    return self.build({"enum": [b["const"] for b in branches]}, key)
                return self.build(branches[0], key)
        kind = schema.get("type", "object")
        nullable = isinstance(kind, list) and "null" in kind
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        return self._typed(kind, schema, key, nullable)

    def _typed(self, kind: str, schema: dict[str, Any], key: str, nullable: bool) -> Any:
        if kind == "object":
            props = schema.get("properties", {})
            return {name: self.build(sub, name) for name, sub in props.items()}
        if kind == "array":
            return [self.build(schema.get("items", {}), key)]
        if kind in ("integer", "number"):
            return self._number(kind, schema, nullable)
        if kind == "boolean":
            return _unit(self.document, key) < 0.5
        if kind == "string":
            return self._string(schema, key, nullable)
        return None

    def _number(self, kind: str, schema: dict[str, Any], nullable: bool) -> Any:
        found = _NUMBER.search(self.document)
        number = float(found[0].replace(",", "")) if found else None
        if number is None:
            return None if nullable else schema.get("minimum", 1)
        low = schema.get("minimum", number)
        number = max(number, low)
        return int(number) if kind == "integer" else number

    def _string(self, schema: dict[str, Any], key: str, nullable: bool) -> Any:
        name, fmt = key.lower(), schema.get("format")
        found: str | None
        if fmt == "email" or "email" in name:
            match = _EMAIL.search(self.document)
            found = match[0] if match else None
        elif fmt == "date" or name == "date":
            match = _DATE.search(self.document)
            found = match[0] if match else None
        elif "currency" in name:
            match = _CURRENCY.search(self.document)
            found = match[0] if match else None
        elif name in ("name", "vendor", "company", "customer", "text", "brand", "person"):
            match = _NAME.search(self.document)
            found = match[0] if match else None
        else:
            first = re.split(r"(?<=[.!?])\s", self.document.strip(), maxsplit=1)[0]
            found = first[: schema.get("maxLength", 200)] or None
        if found is None:
            return None if nullable else self.document.strip()[:40] or "none"
        return found


def reply_for(body: Mapping[str, Any]) -> Reply:
    """A schema-valid reply to one generate request, with log-probabilities on its choices."""
    schema, prompt = _schema_and_prompt(body)
    if not isinstance(schema, dict):
        return Reply.text("{}")
    builder = Builder(document_of(prompt))
    pieces = list(_pieces(builder.build(schema), builder.choices))
    chunks = [text for text, _ in pieces]
    logprobs = [_entry(text, choice) for text, choice in pieces]
    return Reply.text("".join(chunks), chunks=chunks, logprobs=logprobs)


def _schema_and_prompt(body: Mapping[str, Any]) -> tuple[Any, str]:
    """The schema and the prompt of an /api/generate body, or of a /v1/chat/completions body
    (``response_format`` as ``json_schema``, or ``json_object`` with a ``schema``; the last
    user message)."""
    if "messages" not in body:
        return body.get("format"), str(body.get("prompt", ""))
    spec = body.get("response_format") or {}
    schema = (spec.get("json_schema") or {}).get("schema") or spec.get("schema")
    users = [m for m in body.get("messages") or () if m.get("role") == "user"]
    return schema, str(users[-1].get("content", "")) if users else ""


def _entry(token: str, choice: Choice | None) -> list[dict[str, Any]]:
    """One wire logprob entry: a sure token, or an option's token with its rivals listed."""
    if choice is None:
        return [{"token": token, "logprob": -0.001, "bytes": list(token.encode())}]
    rest = (1 - choice.probability) / max(len(choice.options) - 1, 1)
    top = []
    for i, option in enumerate(choice.options):
        text = json.dumps(option)[1:-1] if isinstance(option, str) else json.dumps(option)
        p = choice.probability if i == choice.index else rest
        top.append({"token": text, "logprob": _log(p), "bytes": list(text.encode())})
    return [
        {
            "token": token,
            "logprob": _log(choice.probability),
            "bytes": list(token.encode()),
            "top_logprobs": top,
        }
    ]


def _log(p: float) -> float:
    return math.log(max(p, 1e-9))
