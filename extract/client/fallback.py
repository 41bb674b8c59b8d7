"""Falling back to format "json" when a server refuses a schema as ``format``.

A server that cannot turn the schema into a grammar answers 400 (Ollama: ``invalid JSON
schema in format``; a grammar its sampler cannot load names the grammar), or Ollama's 500
``invalid format``. Such a document is sent once more with ``format: "json"`` and the same
prompt: the reply is still validated against the schema, only the decoding is not
constrained by it. The fallback is remembered per schema for the host (one ``Planner`` is one
host), and every attempt made so says why (``Attempt.format_fallback``).

A refusal that names the format, grammar or schema is taken as caused by it at once. A 400 that
names no cause at all (a bare "Bad Request") is put to the test: the request goes again
without the schema, and only if that one is accepted is the fallback remembered; if it is
refused too, that refusal is raised as before. Any other refusal names another cause (an
option, a capability) and fails at once, as it always did.
"""

from __future__ import annotations

import re

from ..core.wire import Format, GenerateRequest
from ..errors import BadRequest

_NAMES_FORMAT = re.compile(r"\b(format|grammar|schema)\b", re.IGNORECASE)
# A 400 that says nothing of its cause (a server's bare "Bad Request"): the one put to the
# test. Ollama's other 400s name their cause (an option, a capability) and fail at once.
_SAYS_NOTHING = re.compile(r"^HTTP 400: (bad request)?\s*(\[|$)", re.IGNORECASE)


class FormatFallbacks:
    """The schemas (by fingerprint) one host refused as format, each with its refusal."""

    def __init__(self) -> None:
        self.refused: dict[str, str] = {}

    def format_for(self, fingerprint: str, chosen: Format | None) -> Format | None:
        """The format to send: "json" in place of a schema this host refused."""
        if isinstance(chosen, dict) and fingerprint in self.refused:
            return "json"
        return chosen

    def reason(self, fingerprint: str) -> str | None:
        """The host's refusal of this schema, when it refused it."""
        return self.refused.get(fingerprint)

    def retry(self, fingerprint: str, request: GenerateRequest, error: BadRequest) -> bool:
        """Whether ``request``, which the server refused with ``error``, goes again with
        format "json": it sent a schema, and the refusal names the format or no cause at all.
        One that names the format is remembered at once (see the module docstring)."""
        if not isinstance(request.get("format"), dict):
            return False
        names_format = _NAMES_FORMAT.search(error.message) is not None
        if not names_format and not _SAYS_NOTHING.search(error.message):
            return False
        if names_format:
            self.refused[fingerprint] = error.message
        return True

    def confirm(self, fingerprint: str, reason: str | None) -> None:
        """A request sent with "json" after the refusal ``reason`` was accepted: remember it."""
        if reason is not None:
            self.refused.setdefault(fingerprint, reason)
