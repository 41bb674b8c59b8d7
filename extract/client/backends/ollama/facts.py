"""What an Ollama server's version and /api/show say, as ``ModelFacts``. No I/O.

The version gates live here: which Ollama release added schema formats, ``truncate: false``
and log-probabilities.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..base import ModelFacts

SCHEMA_FORMAT_SINCE = (0, 5, 0)
# Servers since 0.12.6 take `truncate: false` and refuse an over-long prompt instead of cutting it.
TRUNCATE_FLAG_SINCE = (0, 12, 6)
# Servers since 0.12.11 return log-probabilities when asked.
LOGPROBS_SINCE = (0, 12, 11)
_PARAMETER_NUM_CTX = re.compile(r"^num_ctx\s+(\d+)\s*$", re.MULTILINE)


def model_facts(version: str, show: Any) -> ModelFacts:
    """The facts of a server at ``version`` whose /api/show for the model answered ``show``.

    >>> f = model_facts("0.12.0", {"model_info": {"llama.context_length": 8192}})
    >>> f.context_length, f.schema_format, f.refuses_overflow, f.logprobs
    (8192, True, False, False)
    """
    show = show if isinstance(show, dict) else {}
    caps = show.get("capabilities")
    info = show.get("model_info")
    trained = [
        v
        for k, v in (info.items() if isinstance(info, dict) else ())
        if k.endswith(".context_length") and type(v) is int and v > 0
    ]
    params = show.get("parameters")
    found = _PARAMETER_NUM_CTX.search(params) if isinstance(params, str) else None
    return ModelFacts(
        version=version,
        capabilities=tuple(str(c) for c in caps) if isinstance(caps, list) else None,
        context_length=trained[0] if trained else None,
        default_context=int(found.group(1)) if found else None,
        logprobs=server_at_least(version, LOGPROBS_SINCE),
        schema_format=supports_schema_format(version),
        refuses_overflow=server_at_least(version, TRUNCATE_FLAG_SINCE),
        continues_reply=server_at_least(version, LOGPROBS_SINCE)
        and continues_final_message(show.get("template")),
    )


def continues_final_message(template: Any) -> bool:
    """Whether /api/chat continues a final assistant message under the model's ``template``
    (as /api/show gives it) rather than closing it and opening a new turn.

    Ollama renders a chat with the model's Go template (``server/prompt.go`` renderPrompt,
    ``template/template.go`` Execute). A legacy template (no ``.Messages``) is cut right after
    the last ``.Response``, so the last assistant message stays open (a template without
    ``.Response`` drops it); a ``.Messages`` template
    leaves it open only when it says so (``{{ if not $last }}`` around the end-of-turn mark,
    as the library's current templates do). A Jinja template (``{%``) is the GGUF's own,
    rendered by llama-server, which continues a final assistant message (its prefill), as
    extract's own server does.

    >>> continues_final_message("{{ .System }} {{ .Prompt }}{{ .Response }}")
    True
    >>> continues_final_message("{{ range .Messages }}{{ .Content }}<|im_end|>{{ end }}")
    False
    >>> continues_final_message("{{ range $i, $_ := .Messages }}{{ .Content }}"
    ...                         "{{ if not $last }}<|im_end|>{{ end }}{{ end }}")
    True
    """
    if not isinstance(template, str) or not template:
        return False
    if "{%" in template:
        return True
    if ".Messages" not in template:
        return ".Response" in template  # without it the assistant's text is not rendered
    return bool(_OPEN_LAST.search(template))


_OPEN_LAST = re.compile(r"\{\{-?\s*if\s+not\s+\$last\b")


def listed_digest(show: Any, tags: Any, model: str) -> str | None:
    """The model's digest: /api/show's when it has one, else its /api/tags entry's (Ollama
    lists digests only there).

    >>> tags = [{"name": "tiny:latest", "digest": "d1"}]
    >>> listed_digest({"digest": "d0"}, tags, "tiny"), listed_digest({}, tags, "tiny")
    ('d0', 'd1')
    >>> listed_digest({}, tags, "other") is None
    True
    """
    if isinstance(show, dict) and isinstance(found := show.get("digest"), str) and found:
        return found
    names = {model, model if ":" in model else f"{model}:latest"}
    for entry in tags if isinstance(tags, list) else ():
        if not isinstance(entry, dict):
            continue
        if {entry.get("name"), entry.get("model")} & names and isinstance(entry.get("digest"), str):
            return str(entry["digest"])
    return None


@functools.lru_cache(maxsize=64)
def server_at_least(version: str | None, since: tuple[int, ...]) -> bool:
    """Whether a server version is ``since`` or newer; development builds (0.0.0) and versions
    that cannot be read count as current.

    >>> [server_at_least(v, (0, 12, 6)) for v in ("0.12.5", "0.12.6", "0.0.0")]
    [False, True, True]
    """
    parts = re.findall(r"\d+", version or "")[:3]
    if len(parts) < 2:
        return True
    found = tuple(int(p) for p in parts)
    return found == (0, 0, 0)[: len(found)] or found >= since


@functools.lru_cache(maxsize=64)
def supports_schema_format(version: str | None) -> bool:
    """Whether a server version takes a JSON Schema as ``format`` (Ollama 0.5.0+).

    Development builds report 0.0.0 and are taken as current.

    >>> [supports_schema_format(v) for v in ("0.4.7", "0.5.0", "0.0.0")]
    [False, True, True]
    >>> supports_schema_format("v0.12.3-rc1"), supports_schema_format("garbage")
    (True, True)
    """
    return server_at_least(version, SCHEMA_FORMAT_SINCE)
