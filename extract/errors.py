"""The errors extract raises, as one documented tree.

Every error carries data, not just a message, and says through ``retryable``
whether trying again can help. The retry logic reads the class, never flags::

    ExtractError                    base of everything below
    ├── ConfigError                 bad argument or environment value (fix the call)
    ├── SchemaError                 the schema is not a valid JSON Schema (.path)
    ├── InputError                  a document or image extract cannot send (.field)
    │   ├── DocumentTooLong         the prompt does not fit the context (.chars, .tokens, .context)
    │   └── DuplicateId             a batch line repeats an earlier line's id (.first_line)
    ├── TransportError              retryable: resend the same request after a back-off
    │   ├── ConnectError            the host is unreachable
    │   ├── RequestTimeout          no answer within the timeout
    │   ├── ServerError             5xx from the server (.status)
    │   │   └── ServerBusy          503: the server's queue is full
    │   └── StreamError             an ``{"error": ...}`` line after the stream started
    ├── RequestRejected             fatal: the server refused the request (.status)
    │   ├── BadRequest              400: a field or option the server rejects
    │   └── ModelNotFound           404: the model is not pulled on that host
    ├── OutputError                 retryable: the model's reply is unusable, re-ask
    │   ├── EmptyOutput             the reply holds no text
    │   ├── TruncatedOutput         cut off (``done_reason: "length"`` or no done line)
    │   ├── RunawayOutput           aborted: whitespace flood, size cap or a token loop
    │   ├── InvalidJSON             no JSON value could be read from the reply
    │   └── SchemaMismatch          valid JSON that breaks the schema (.path)
    │       └── PlaceholderEcho     a value copied from the shape's placeholder (.path)
    └── ExtractionFailed            every attempt failed (.attempts, .raw, .last_error)

Messages name the host and model involved and never contain the API key.
``exit_code`` is what the ``extract`` command exits with when the error ends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .core.result import Attempt

__all__ = [
    "BadRequest",
    "ConfigError",
    "ConnectError",
    "DocumentTooLong",
    "DuplicateId",
    "EmptyOutput",
    "ExtractError",
    "ExtractionFailed",
    "InputError",
    "InvalidJSON",
    "ModelNotFound",
    "OutputError",
    "PlaceholderEcho",
    "RequestRejected",
    "RequestTimeout",
    "RunawayOutput",
    "SchemaError",
    "SchemaMismatch",
    "ServerBusy",
    "ServerError",
    "StreamError",
    "TransportError",
    "TruncatedOutput",
]

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_FAILED = 4


class ExtractError(Exception):
    """Base class of every error extract raises."""

    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready record: ``{"type", "message", ...data}``."""
        return {"type": type(self).__name__, "message": self.message}


class ConfigError(ExtractError):
    """An argument or environment variable has a value extract cannot use."""

    exit_code = EXIT_USAGE


class SchemaError(ExtractError):
    """The schema is not valid JSON Schema; ``path`` locates the bad keyword."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, path: str = "$") -> None:
        super().__init__(f"{message} (at {path})" if path != "$" else message)
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "path": self.path}


class InputError(ExtractError):
    """A document, record or image that cannot be sent as given."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DocumentTooLong(InputError):
    """The prompt does not fit the model's context, so the server would cut it or refused it.

    ``tokens`` is the prompt's size in tokens when the server said, ``context`` the context
    (``num_ctx``) it had to fit, ``chars`` the document's length. Not retryable: split the
    document (``chunk=``), raise ``num_ctx``, or shorten it.
    """

    def __init__(
        self,
        message: str,
        *,
        chars: int | None = None,
        tokens: int | None = None,
        context: int | None = None,
    ) -> None:
        super().__init__(message, field="text")
        self.chars, self.tokens, self.context = chars, tokens, context

    def to_dict(self) -> dict[str, Any]:
        sizes = {"chars": self.chars, "tokens": self.tokens, "context": self.context}
        return {**super().to_dict(), **{k: v for k, v in sizes.items() if v is not None}}


class DuplicateId(InputError):
    """A batch input line whose id an earlier line already has; ``first_line`` is that line.

    ``extract label`` labels the first line with an id and gives each later one this error.
    """

    def __init__(self, message: str, *, first_line: int) -> None:
        super().__init__(message)
        self.first_line = first_line

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "first_line": self.first_line}


class _Remote(ExtractError):
    """An error that involves a host (and perhaps a model)."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, *, host: str = "", model: str | None = None) -> None:
        where = f"{host} (model {model!r})" if model else host
        super().__init__(f"{message} [{where}]" if where else message)
        self.reason = message
        self.host = host
        self.model = model

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "host": self.host, "model": self.model}


class TransportError(_Remote):
    """The request did not complete; the same request may succeed later."""

    retryable = True


class ConnectError(TransportError):
    """The host could not be reached (refused, reset, DNS)."""


class RequestTimeout(TransportError):
    """The host did not answer within the configured timeout."""


class ServerError(TransportError):
    """The server answered with a 5xx status."""

    def __init__(
        self, message: str, *, status: int, host: str = "", model: str | None = None
    ) -> None:
        super().__init__(f"HTTP {status}: {message}", host=host, model=model)
        self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "status": self.status}


class ServerBusy(ServerError):
    """503: the server's queue is full; back off before trying again."""


class StreamError(TransportError):
    """The server reported an error after the reply had started streaming."""


class RequestRejected(_Remote):
    """The server refused the request; resending it cannot help."""

    def __init__(
        self, message: str, *, status: int, host: str = "", model: str | None = None
    ) -> None:
        super().__init__(f"HTTP {status}: {message}", host=host, model=model)
        self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "status": self.status}


class BadRequest(RequestRejected):
    """400: a request field, option or capability the server rejects."""

    exit_code = EXIT_USAGE


class ModelNotFound(RequestRejected):
    """404: the model is not available on the host; the message says how to pull it."""

    def __init__(self, *, host: str = "", model: str | None = None, detail: str = "") -> None:
        hint = f"model {model!r} not found; pull it with `ollama pull {model}`"
        super().__init__(
            f"{hint} ({detail})" if detail else hint, status=404, host=host, model=model
        )


class OutputError(ExtractError):
    """The model answered, but the reply is unusable: re-ask with the error."""

    retryable = True

    def __init__(self, message: str, *, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class EmptyOutput(OutputError):
    """The reply holds no text."""


class TruncatedOutput(OutputError):
    """The reply was cut off before the JSON ended."""

    def __init__(self, message: str, *, raw: str = "", done_reason: str | None = None) -> None:
        super().__init__(message, raw=raw)
        self.done_reason = done_reason


class RunawayOutput(OutputError):
    """Aborted mid-generation: a whitespace flood, the size cap, or a repeated-token loop."""


class InvalidJSON(OutputError):
    """No JSON value could be read from the reply, even after repair."""


class SchemaMismatch(OutputError):
    """The reply is JSON but breaks the schema; ``path`` is the JSON path of the best error."""

    def __init__(self, message: str, *, path: str = "$", raw: str = "") -> None:
        super().__init__(f"{path}: {message}", raw=raw)
        self.reason = message
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "path": self.path}


class PlaceholderEcho(SchemaMismatch):
    """A value that repeats the shape's placeholder (``<the request in one sentence>``): the
    model copied the prompt instead of reading the document."""


class ExtractionFailed(ExtractError):
    """Every attempt failed; ``attempts`` holds each one, ``raw`` the last reply."""

    def __init__(
        self, message: str, *, attempts: Sequence[Attempt], last_error: ExtractError
    ) -> None:
        super().__init__(message)
        self.attempts = list(attempts)
        self.last_error = last_error
        self.raw = next((a.raw for a in reversed(self.attempts) if a.raw), "")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "last_error": self.last_error.to_dict()}
