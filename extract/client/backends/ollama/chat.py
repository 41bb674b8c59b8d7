"""A reply begun for the server to continue, through Ollama's /api/chat. No I/O.

/api/generate has no way to begin the reply short of ``raw`` (the caller renders the whole
prompt with the model's template, which extract does not have in runnable form). /api/chat
does it: a final assistant message is rendered open and generation continues it
(``server/prompt.go`` chatPrompt, ``template/template.go`` Execute; see
``facts.continues_final_message`` for which templates leave it open). ``logprobs`` and
``top_logprobs`` are passed to the runner as on /api/generate and cover the generated tokens
only; ``format`` would constrain those tokens from the start of a JSON value, so a
continuation goes without it.
"""

from __future__ import annotations

from typing import Any

from ....core.wire import GenerateRequest, GenerateResult, Metrics, parse_logprobs
from ....errors import StreamError

# The request fields /api/chat takes as /api/generate does.
_SHARED = ("model", "options", "keep_alive", "think", "truncate", "shift", "logprobs")


def continuation_body(request: GenerateRequest, prefill: str) -> dict[str, Any]:
    """The /api/chat body that asks ``request``'s generation with its reply begun as
    ``prefill``: the system prompt, the prompt as the user's turn, the prefill as the
    assistant's; not streamed.

    >>> body = continuation_body({"model": "m", "prompt": "Label it.", "system": "Be brief."},
    ...                          '{"label": "')
    >>> [(m["role"], m["content"]) for m in body["messages"]]
    [('system', 'Be brief.'), ('user', 'Label it.'), ('assistant', '{"label": "')]
    """
    messages: list[dict[str, Any]] = []
    if request.get("system"):
        messages.append({"role": "system", "content": request["system"]})
    messages.append({"role": "user", "content": request.get("prompt", "")})
    messages.append({"role": "assistant", "content": prefill})
    body: dict[str, Any] = {k: request[k] for k in _SHARED if k in request}  # type: ignore[literal-required]
    if request.get("top_logprobs"):
        body["top_logprobs"] = request["top_logprobs"]
    body["messages"] = messages
    body["stream"] = False
    return body


def continuation_result(reply: Any, *, host: str, model: str) -> GenerateResult:
    """A /api/chat reply (not streamed) as a ``GenerateResult`` of the text it added.

    Raises StreamError for a reply that is not a chat reply.
    """
    message = reply.get("message") if isinstance(reply, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise StreamError("the chat reply holds no message content", host=host, model=model)
    thinking = message.get("thinking") if isinstance(message, dict) else None
    return GenerateResult(
        text=content,
        thinking=thinking if isinstance(thinking, str) else "",
        done=reply.get("done") is True,
        done_reason=reply.get("done_reason"),
        metrics=Metrics.from_wire(reply),
        logprobs=parse_logprobs(reply.get("logprobs")) if reply.get("logprobs") else None,
    )
