"""Ollama's wire shapes: the /api/generate request and its fields, reply metrics and logprobs."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypedDict

Think = bool | Literal["low", "medium", "high"]
Format = Literal["json"] | dict[str, Any]


class GenerateRequest(TypedDict, total=False):
    """The body of ``POST /api/generate``; every field Ollama accepts, none renamed."""

    model: str
    prompt: str
    suffix: str
    images: list[str]
    format: Format
    options: dict[str, Any]
    system: str
    template: str
    context: list[int]
    stream: bool
    raw: bool
    keep_alive: float | str
    think: Think
    truncate: bool
    shift: bool
    logprobs: bool
    top_logprobs: int


GENERATE_FIELDS = frozenset(GenerateRequest.__annotations__)


FieldKind = Literal[
    "string", "bool", "int", "ints", "images", "object", "format", "duration", "think"
]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestField:
    """One field of ``POST /api/generate``, as every layer sees it.

    ``kind`` is the JSON shape the server checks; ``given`` marks a field the caller sets per
    Extractor or per call and extract copies into the request as given (once checked), while
    the others (model, prompt, format, options, stream) are worked out by extract itself.
    """

    name: str
    kind: Literal[
        "string", "bool", "int", "ints", "images", "object", "format", "duration", "think"
    ]
    given: bool = True


# The one table of request fields: the call options, request planning and the server's
# validation all read it; a test pins it to GenerateRequest. A new Ollama field is one row here.
REQUEST_FIELDS = (
    RequestField("model", "string", given=False),
    RequestField("prompt", "string", given=False),
    RequestField("suffix", "string"),
    RequestField("images", "images"),
    RequestField("format", "format", given=False),
    RequestField("options", "object", given=False),
    RequestField("system", "string"),
    RequestField("template", "string"),
    RequestField("context", "ints"),
    RequestField("stream", "bool", given=False),
    RequestField("raw", "bool"),
    RequestField("keep_alive", "duration"),
    RequestField("think", "think"),
    RequestField("truncate", "bool"),
    RequestField("shift", "bool"),
    RequestField("logprobs", "bool"),
    RequestField("top_logprobs", "int"),
)
GIVEN_FIELDS = tuple(f.name for f in REQUEST_FIELDS if f.given)

# Ollama's Options and Runner structs: the type each known option must have. Load-time options
# (num_ctx, num_batch, num_gpu, main_gpu, use_mmap, num_thread) reload the model when changed.
OPTION_KINDS: dict[str, Literal["integer", "float32", "boolean", "strings"]] = {
    **dict.fromkeys(
        ("num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx"), "integer"
    ),
    **dict.fromkeys(("num_batch", "num_gpu", "main_gpu", "num_thread"), "integer"),
    **dict.fromkeys(("temperature", "top_p", "min_p", "typical_p", "repeat_penalty"), "float32"),
    **dict.fromkeys(("presence_penalty", "frequency_penalty"), "float32"),
    "stop": "strings",
    "use_mmap": "boolean",
}

METRIC_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Metrics:
    """A reply's counters. Ollama omits zero values, so every field is optional.

    Durations are nanoseconds, as on the wire.

    >>> Metrics(eval_count=50, eval_duration=500_000_000).tokens_per_second
    100.0
    >>> Metrics().tokens_per_second is None
    True
    """

    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed, ``eval_count / eval_duration * 1e9``; None when unknown."""
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / self.eval_duration * 1e9

    @classmethod
    def from_wire(cls, line: dict[str, Any]) -> Metrics:
        """Read the metrics of a final reply line, ignoring absent or non-integer values."""
        values = {k: line[k] for k in METRIC_FIELDS if type(line.get(k)) is int}
        return cls(**values)

    def __add__(self, other: Metrics) -> Metrics:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Metrics(*(add(getattr(self, f), getattr(other, f)) for f in METRIC_FIELDS))

    def to_dict(self) -> dict[str, Any]:
        """The present counters plus ``tokens_per_second``, for JSON output."""
        out: dict[str, Any] = {
            f: getattr(self, f) for f in METRIC_FIELDS if getattr(self, f) is not None
        }
        if (tps := self.tokens_per_second) is not None:
            out["tokens_per_second"] = round(tps, 2)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its text, its natural-log probability under the model (before any
    sampling or grammar), and the most likely tokens at its place, most likely first.

    Ollama (0.12.11+) sends these as ``logprobs: [{token, logprob, bytes, top_logprobs}]``
    when asked with ``logprobs: true`` (and ``top_logprobs: n`` for the alternatives).
    """

    token: str
    logprob: float
    top: tuple[TokenLogprob, ...] = ()

    @classmethod
    def from_wire(cls, value: Any) -> TokenLogprob | None:
        """One wire entry, or None when it is not one (wrong types, a logprob above 0 or NaN).

        Malformed alternatives are dropped from ``top``; the entry itself stands.

        >>> TokenLogprob.from_wire({"token": "a", "logprob": -0.1, "top_logprobs": [1]})
        TokenLogprob(token='a', logprob=-0.1, top=())
        >>> TokenLogprob.from_wire({"token": "a", "logprob": 0.5}) is None
        True
        """
        head = _token_and_logprob(value)
        if head is None:
            return None
        top = value.get("top_logprobs")
        alternatives = (_token_and_logprob(t) for t in (top if isinstance(top, list) else ()))
        return cls(*head, tuple(cls(*t) for t in alternatives if t is not None))


def _token_and_logprob(value: Any) -> tuple[str, float] | None:
    if not isinstance(value, dict):
        return None
    token, logprob = value.get("token"), value.get("logprob")
    if not isinstance(token, str) or isinstance(logprob, bool):
        return None
    if not isinstance(logprob, int | float):
        return None
    try:
        number = float(logprob)
    except OverflowError:  # an integer literal too long for a float
        return None
    # A probability's log is never above 0; NaN (json.loads reads it) fails the test too.
    return (token, number) if number <= 0 else None


def parse_logprobs(value: Any) -> tuple[TokenLogprob, ...] | None:
    """The entries of one reply line's ``logprobs``; None when any of them is malformed, since a
    list with holes would no longer line up with the reply's tokens.

    >>> parse_logprobs([{"token": "a", "logprob": -1}])
    (TokenLogprob(token='a', logprob=-1.0, top=()),)
    >>> parse_logprobs([{"token": "a", "logprob": "-1"}]) is None
    True
    """
    if not isinstance(value, list):
        return None
    entries = [TokenLogprob.from_wire(item) for item in value]
    valid = [e for e in entries if e is not None]
    return tuple(valid) if len(valid) == len(entries) else None


@dataclasses.dataclass(frozen=True, slots=True)
class GenerateResult:
    """One finished /api/generate call: the joined text and what the final line said.

    ``logprobs`` joins every line's entries in order; None when the server sent none (not
    asked, or a server older than 0.12.11) or sent some that were malformed.
    """

    text: str
    thinking: str = ""
    done: bool = True
    done_reason: str | None = None
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    context: list[int] | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
