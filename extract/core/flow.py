"""The attempt state machine shared by the sync and async extractors. No I/O.

A driver asks ``AttemptFlow`` for the next request, sends it, and hands back either the
reply or the output error raised while it streamed. The flow decodes, validates, decides
whether to re-ask, and ends with an ``Extraction`` or raises ``ExtractionFailed``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import partial_json_parser

from ..errors import (
    ConfigError,
    ExtractionFailed,
    OutputError,
    PlaceholderEcho,
    SchemaMismatch,
    TruncatedOutput,
)
from .calibration import replace_at
from .confidence import score_choices
from .decode import candidates, decode_with_stage
from .echo import echoed
from .grounding import Span, values_at
from .guard import StreamGuard
from .prompt import build_reask
from .result import Attempt, Extraction
from .schema import Schema
from .schema_walk import Parts, json_path
from .wire import Format, GenerateRequest, GenerateResult, Metrics

# Grounded strings a reply may lose to its field's own rules before it is re-asked instead.
MAX_GROUNDED_FIXES = 16


class AttemptFlow:
    """Drives one document through decode → validate → re-ask, attempt by attempt."""

    def __init__(
        self,
        *,
        schema: Schema,
        request: GenerateRequest,
        max_attempts: int,
        host: str,
        document: str | None = None,
        format_fallback: str | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"max_attempts={max_attempts}: give at least 1")
        self.schema = schema
        # The document's text, where grounded values (x-grounded) must be found.
        self.document = document
        self.spans: tuple[Span, ...] = ()
        self.base = request
        self.max_attempts = max_attempts
        self.host = host
        self.attempts: list[Attempt] = []
        self.guard = StreamGuard()
        self._partial_text = ""
        self._prompt = request.get("prompt", "")
        # Set when the server refused the schema as format and "json" is sent instead.
        self.format_fallback = format_fallback

    def fall_back(self, reason: str) -> None:
        """Send format "json" from now on (the prompt is unchanged); ``reason`` is the server's
        refusal of the schema, kept on every attempt that follows."""
        self.base = {**self.base, "format": "json"}
        self.format_fallback = reason

    @property
    def model(self) -> str:
        return self.base.get("model", "")

    @property
    def number(self) -> int:
        """The number of the attempt in progress (1-based)."""
        return len(self.attempts) + 1

    def request(self) -> GenerateRequest:
        """The request for the next attempt: the original, or a re-ask."""
        return {**self.base, "prompt": self._prompt}

    def begin(self) -> None:
        """A new try of the current request starts: forget what the last one streamed."""
        if self.guard.text:  # the guard made with the flow serves the first try
            self.guard = StreamGuard()
        self._partial_text = ""

    def on_text(self, delta: str, thinking: str, partials: bool = False) -> Any | None:
        """Feed streamed text to the guard; with ``partials``, return the value parsed so far
        when it changed (else None). Raises RunawayOutput to abort the attempt."""
        # With think on and a schema, the JSON can arrive in `thinking`; guard both.
        self.guard.feed(delta or thinking)
        return self.partial() if partials else None

    def partial(self) -> Any | None:
        """The value parsed from the text so far, or None when nothing new can be shown."""
        text = self.guard.text
        if text == self._partial_text:
            return None
        self._partial_text = text
        try:
            value = partial_json_parser.loads(text.lstrip())
        except Exception:  # the library raises assorted errors on text that is not JSON yet
            return None
        model = self.schema.model
        if model is not None and isinstance(value, dict):
            return model.model_construct(**value)
        return value

    def record(
        self, reply: GenerateResult | OutputError, *, transport_retries: int = 0
    ) -> Extraction[Any] | None:
        """Take one attempt's outcome; return the Extraction, or None to ask again.

        Raises ExtractionFailed when the last allowed attempt fails.
        """
        number = self.number
        if isinstance(reply, OutputError):
            error: OutputError = reply
            raw, metrics, done_reason = reply.raw, None, getattr(reply, "done_reason", None)
        else:
            raw = reply.text if reply.text.strip() else reply.thinking
            metrics, done_reason = reply.metrics, reply.done_reason
            try:
                value = self._value(raw, done_reason)
            except OutputError as exc:
                error = exc
            else:
                self.attempts.append(
                    Attempt(
                        number,
                        raw,
                        None,
                        metrics,
                        done_reason,
                        transport_retries,
                        self.format_fallback,
                    )
                )
                choices = score_choices(self.schema, raw, reply.logprobs)
                return Extraction(
                    value,
                    raw,
                    tuple(self.attempts),
                    self.model,
                    self.host,
                    spans=self.spans,
                    confidence={path: c.confidence for path, c in choices.items()},
                    choices=choices,
                )
        attempt = Attempt(
            number,
            raw,
            error,
            metrics or Metrics(),
            done_reason,
            transport_retries,
            self.format_fallback,
        )
        self.attempts.append(attempt)
        if number >= self.max_attempts:
            raise ExtractionFailed(
                f"no valid reply after {number} attempt{'s' * (number > 1)}: "
                f"{type(error).__name__}: {error.message}",
                attempts=self.attempts,
                last_error=error,
            )
        self._prompt = build_reask(self.base.get("prompt", ""), raw, error)
        return None

    def _value(self, raw: str, done_reason: str | None) -> Any:
        if done_reason != "length":
            return self._first_valid(raw)
        # Cut off by the token limit: only a reply that is complete JSON as it stands can be
        # trusted; a repaired one would be valid but silently incomplete.
        try:
            value, stage = decode_with_stage(raw)
            if stage == "strict":
                return self._accept(value)
        except OutputError:
            pass
        raise TruncatedOutput(
            "the reply hit the token limit (num_predict or the context) before the JSON ended",
            raw=raw,
            done_reason=done_reason,
        )

    def _first_valid(self, raw: str) -> Any:
        """The first value the reply holds that the schema accepts (decode offers them best
        first); else raises the best one's SchemaMismatch, or decode's EmptyOutput/InvalidJSON."""
        found = candidates(raw)
        best, _stage = next(found)
        try:
            return self._accept(best)
        except SchemaMismatch as exc:
            mismatch = exc
        for value, _stage in found:
            with contextlib.suppress(SchemaMismatch):
                return self._accept(value)
        raise mismatch

    def _accept(self, value: Any) -> Any:
        """``value`` validated, its grounded strings found in the document (``self.spans``).

        A grounded string the document does not hold, or that breaks its own field's rules,
        was not copied from it: it becomes null, or its key goes, where the schema allows
        either; otherwise SchemaMismatch (re-ask).
        """
        value, validated = self._checked(value)
        echo = echoed(value, self.schema, self.document or "")
        if echo is not None:
            raise PlaceholderEcho(
                "this repeats the words of the shape's placeholder or a description; "
                "write the value taken from the document",
                path=echo,
            )
        if not self.schema.grounded or self.document is None:
            return validated
        spans, missing = self.schema.ground(value, self.document)
        if missing:
            for where in missing:
                value = self._without(value, where)
            validated = self.schema.validate(value)
            spans, _ = self.schema.ground(value, self.document)
        self.spans = tuple(spans)
        return validated

    def _checked(self, value: Any) -> tuple[Any, Any]:
        """``value`` (as JSON data, and validated): a grounded string the schema rejects at its
        own path is nulled, then its key removed, while the schema allows that. When the
        schema allows neither, the error raised is the value's own (``'x' does not match
        ...``), not what removing it led to (``'summary' is a required property``): the re-ask
        must name what was wrong with the reply."""
        first: SchemaMismatch | None = None
        for _ in range(MAX_GROUNDED_FIXES):
            try:
                return value, self.schema.validate(value)
            except SchemaMismatch as exc:
                where = self._grounded_at(value, exc.path) if self.document is not None else None
                if where is None:
                    if first is not None:
                        raise first from exc
                    raise
                first = first or exc
                parent = value if len(where) < 2 else self._at(value, where[:-1])
                if not where or not isinstance(parent, dict | list):
                    raise
                if self._at(value, where) is not None:
                    value = replace_at(value, where, None)
                elif isinstance(parent, dict):
                    value = replace_at(
                        value, where[:-1], {k: v for k, v in parent.items() if k != where[-1]}
                    )
                else:
                    raise
        return value, self.schema.validate(value)

    def _grounded_at(self, value: Any, path: str) -> Parts | None:
        """The location of the grounded value (a string, or a null put there) at ``path``."""
        for pattern in self.schema.grounded:
            for where, found in values_at(value, pattern):
                if json_path(where) == path and (found is None or isinstance(found, str)):
                    return where
        return None

    @staticmethod
    def _at(value: Any, where: Parts) -> Any:
        for step in where:
            value = value[step]
        return value

    def _without(self, value: Any, where: Parts) -> Any:
        """``value`` with the string at ``where`` nulled, or its key removed, whichever the
        schema accepts first; raises SchemaMismatch when it accepts neither."""
        if not where:  # the whole value is the grounded string
            with contextlib.suppress(SchemaMismatch):
                self.schema.validate(None)
                return None
        for change in ("null", "remove") if where else ():
            changed = json.loads(json.dumps(value))
            parent = changed
            for step in where[:-1]:
                parent = parent[step]
            if change == "null":
                parent[where[-1]] = None
            elif isinstance(parent, dict):
                del parent[where[-1]]
            else:
                continue
            with contextlib.suppress(SchemaMismatch):
                self.schema.validate(changed)
                return changed
        found = value
        for step in where:
            found = found[step]
        raise SchemaMismatch(
            f"{found!r} does not occur in the document; copy the value from the document "
            "exactly as written",
            path=json_path(where),
        )


def choose_format(mode: str | None, schema: Schema, schema_format: bool) -> Format | None:
    """What to send as ``format`` for a mode of "auto", "json", "schema" or None, to a server
    that takes a JSON Schema as ``format`` or not (``schema_format``, a backend's fact).

    Raises ConfigError for an unknown mode, or "schema" with a schema the grammar cannot take.
    """
    if mode is None:
        return None
    if mode == "json":
        return "json"
    if mode == "schema":
        if schema.grammar is None:
            raise ConfigError(
                "format='schema': this schema cannot be turned into a grammar; "
                "use format='json' (the reply is still validated against the schema)"
            )
        return schema.grammar
    if mode == "auto":
        if schema.grammar is not None and schema_format:
            return schema.grammar
        return "json"
    raise ConfigError(f"format={mode!r}: use 'auto', 'json', 'schema' or None")
