"""One call planned: the call options, the request built from the field table, the server
facts it needs, and what its outcome adds (confidence, calibration, chunks, samples).

``Planner`` holds everything the sync and async extractors share; they differ only where they
wait (``extractor.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict, Unpack

import httpx
import tenacity

from ..core import calibration, decide
from ..core.calibration import Prior, PriorCache, PriorKey
from ..core.confidence import score_choices
from ..core.decide import Layout
from ..core.flow import AttemptFlow, choose_format
from ..core.images import ImageInput
from ..core.prompt import build_prompt, check_examples
from ..core.result import AttemptFailed, Extraction, Partial
from ..core.schema import COMPACT_LEVELS, Schema
from ..core.sentences import offer_sentences
from ..core.wire import GIVEN_FIELDS, GenerateRequest, GenerateResult, Think
from ..errors import BadRequest, ConfigError, DocumentTooLong, OutputError
from .backends import BackendName, ModelFacts, check_backend, check_request
from .backoff import Retry, check_retry
from .checks import GIVEN_CHECKS, check_keep_alive, check_options, check_text
from .config import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_NUM_CTX,
    DEFAULT_NUM_PREDICT,
    DEFAULT_TRANSPORT_ATTEMPTS,
    MIN_TIMED_TOKENS,
    STREAM_WORTH_SECONDS,
    Settings,
    TimeoutArg,
    resolve_model,
    resolve_timeout,
)
from .fallback import FormatFallbacks

FormatMode = Literal["auto", "json", "schema"] | None
Event = Partial[Any] | AttemptFailed | Extraction[Any]
Chunk = int | Literal["auto"] | None

# The smallest piece a long document may be split into.
MIN_CHUNK = 100
# Sizing prompts: characters per token assumed (low, so estimates err on the large side), and
# the share of the context kept for the reply.
CHARS_PER_TOKEN = 3
REPLY_SHARE = 0.25
# Alternatives per generated token asked of the server: Ollama's most.
TOP_LOGPROBS = 20


class CallOptions(TypedDict, total=False):
    """What can be set per Extractor and overridden per call.

    Besides extract's own settings, every request field a caller sets as given (see
    ``core.wire.REQUEST_FIELDS``) is here under its Ollama name.
    """

    format: FormatMode
    max_attempts: int
    retry: Retry
    instructions: str | None
    rendering: Literal["shape", "schema"]
    stream: bool | None
    timeout: TimeoutArg
    options: Mapping[str, Any] | None
    chunk: Chunk
    merge: Callable[[list[Any]], Any] | None
    confidence: bool
    confidence_temperature: float
    calibrate: bool
    samples: int
    decide_choices: bool | None
    examples: Sequence[tuple[str, Any]] | None
    # Request fields copied as given:
    suffix: str | None
    images: Sequence[ImageInput] | None
    system: str | None
    template: str | None
    context: Sequence[int] | None
    raw: bool | None
    keep_alive: float | str | None
    think: Think | None
    truncate: bool | None
    shift: bool | None
    logprobs: bool | None
    top_logprobs: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One extract() call, planned: everything but what the server must tell us."""

    schema: Schema
    request: GenerateRequest
    format_mode: FormatMode
    max_attempts: int
    retry: tenacity.BaseRetrying
    stream: bool | None
    timeout: httpx.Timeout | None
    text: str
    chunk: Chunk = None
    merge: Callable[[list[Any]], Any] | None = None
    truncate_given: bool = False
    confidence: bool = True
    confidence_temperature: float = 1.0
    calibrate: bool = True
    samples: int = 1
    decide_choices: bool | None = None
    given: CallOptions = dataclasses.field(default_factory=lambda: CallOptions())
    rendering: Literal["shape", "schema"] = "shape"


class Planner:
    """One model on one host: its defaults, what the server said about it, and how a call to it
    is planned. The extractors subclass it and add the waiting."""

    def __init__(
        self,
        model: str | None,
        host: str | None,
        api_key: str | None,
        options: CallOptions,
        backend: BackendName = "ollama",
    ) -> None:
        self.model = resolve_model(model)
        self.backend = check_backend(backend)
        self.settings = Settings.resolve(
            host, api_key=api_key, timeout=options.get("timeout"), backend=self.backend
        )
        self.defaults: CallOptions = {"format": "auto", **options}
        # Check the defaults now rather than on the first document.
        if self.defaults.get("format") not in ("auto", "json", "schema", None):
            raise ConfigError(
                f"format={options.get('format')!r}: use 'auto', 'json', 'schema' or None"
            )
        self._options = check_options(options.get("options") or {})
        if (keep_alive := options.get("keep_alive")) is not None:
            check_keep_alive(keep_alive)
        self._given = _given(self.defaults)
        check_retry(options.get("retry", DEFAULT_TRANSPORT_ATTEMPTS))
        # What the backend said about the server and the model, once asked.
        self.facts: ModelFacts | None = None
        # The model's lean over each choice field's options, per prompt head and schema.
        self.priors = PriorCache()
        # Seconds the server took per generated token in its latest timed reply.
        self._token_seconds: float | None = None
        # Schemas this host refused as format: their documents are sent with "json".
        self.fallbacks = FormatFallbacks()
        # Set when the server refused a begun reply (``decides``): replies are generated whole.
        self.continuation_refused = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, host={self.settings.host!r})"

    def plan(self, text: str, schema: Any, overrides: CallOptions) -> Call:
        opts: CallOptions = {**self.defaults, **overrides}
        # The defaults were checked once; a call that overrides nothing reuses them.
        if "options" in overrides:
            merged = {**(self.defaults.get("options") or {}), **(overrides["options"] or {})}
            options = check_options(merged)
        else:
            options = dict(self._options)
        options.setdefault("num_predict", DEFAULT_NUM_PREDICT)
        loaded = Schema.load(schema)
        prompt = build_prompt(
            check_text(text),
            loaded,
            instructions=opts.get("instructions"),
            style=opts.get("rendering", "shape"),
            examples=check_examples(opts.get("examples") or (), loaded),
        )
        samples = opts.get("samples", 1)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ConfigError(f"samples={samples!r}: give a number of samples (≥ 1)")
        if samples > 1 and options.get("temperature") == 0:
            raise ConfigError("samples need sampling: leave temperature unset, or above 0")
        request: GenerateRequest = {"model": self.model, "prompt": prompt, "options": options}
        given = self._given if overrides.keys().isdisjoint(GIVEN_FIELDS) else _given(opts)
        request.update(given)  # type: ignore[typeddict-item]
        check_request(self.backend, request)  # a field the backend cannot send, named now
        if request.get("raw") and any(k in request for k in ("system", "template", "context")):
            raise ConfigError("raw=True cannot be combined with system, template or context")
        timeout = overrides.get("timeout")
        stream = opts.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise ConfigError(f"stream={stream!r}: use True, False or None (decide by speed)")
        chunk = opts.get("chunk")
        if chunk not in (None, "auto") and (
            isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < MIN_CHUNK
        ):
            raise ConfigError(f"chunk={chunk!r}: give 'auto' or at least {MIN_CHUNK} characters")
        return Call(
            schema=loaded,
            request=request,
            format_mode=opts.get("format", "auto"),
            max_attempts=opts.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
            retry=check_retry(opts.get("retry", DEFAULT_TRANSPORT_ATTEMPTS)),
            stream=stream,
            timeout=resolve_timeout(timeout) if timeout is not None else None,
            text=text,
            chunk=chunk,
            merge=opts.get("merge"),
            truncate_given="truncate" in request,
            confidence=opts.get("confidence", True),
            confidence_temperature=_temperature(opts.get("confidence_temperature", 1.0)),
            calibrate=opts.get("calibrate", True),
            samples=samples,
            decide_choices=_decide_choices(opts.get("decide_choices")),
            given=overrides,
            rendering=opts.get("rendering", "shape"),
        )

    def fit(self, call: Call) -> Call:
        """``call`` with a compact rendering of its schema when the full one would not leave
        the document room in the context (``schema_render``: each level smaller).

        Sizes are estimated at ``CHARS_PER_TOKEN``; the reply keeps its share of the
        context, and a document read in pieces counts as one ``MIN_CHUNK`` piece. Raises
        DocumentTooLong naming the schema when even the smallest rendering leaves no room.
        """
        context = self.context(call)
        options = call.request.get("options", {})
        budget = context - reply_reserve(options, context)
        document = MIN_CHUNK if call.chunk is not None else len(call.text)
        prompt = call.request.get("prompt", "")
        full = call.schema.render(call.rendering)
        head = len(prompt) - len(call.text)
        if (head + document) / CHARS_PER_TOKEN <= budget or full not in prompt:
            return call
        for level in range(1, COMPACT_LEVELS + 1):
            rendering = call.schema.render(call.rendering, compact=level)
            head = len(prompt) - len(call.text) - len(full) + len(rendering)
            if (head + document) / CHARS_PER_TOKEN <= budget:
                break
        if head / CHARS_PER_TOKEN > budget:
            tokens = math.ceil(head / CHARS_PER_TOKEN)
            name = f" {call.schema.name!r}" if call.schema.name else ""
            raise DocumentTooLong(
                f"the schema{name} does not fit the model's context: shown even in its most "
                f"compact form it takes about {tokens} tokens of the prompt, and the context "
                f"({context} tokens) keeps {context - budget} for the reply; raise num_ctx to "
                f"at least {tokens + context - budget + math.ceil(document / CHARS_PER_TOKEN)},"
                " or send a smaller schema"
                + (
                    " (or rendering='shape', which is smaller)" if call.rendering != "shape" else ""
                ),
                chars=len(call.text),
                tokens=tokens,
                context=context,
            )
        request = {**call.request, "prompt": prompt.replace(full, rendering, 1)}
        return dataclasses.replace(call, request=request)  # type: ignore[arg-type]

    @property
    def known(self) -> ModelFacts:
        """The facts learned, or all unknown before the backend was asked."""
        return self.facts if self.facts is not None else ModelFacts()

    def num_ctx(self, options: Mapping[str, Any]) -> int:
        """The context a request runs with, as Ollama works it out: the ``num_ctx`` option,
        else the model's default (a Modelfile's ``PARAMETER num_ctx``, a server's fixed
        context), else Ollama's default (``DEFAULT_NUM_CTX``); never more than the model was
        trained for."""
        known = self.known
        wanted = options.get("num_ctx") or known.default_context or DEFAULT_NUM_CTX
        trained = known.context_length
        return min(wanted, trained) if trained else int(wanted)

    def context(self, call: Call) -> int:
        """The context ``call`` runs with (see :meth:`num_ctx`)."""
        return self.num_ctx(call.request.get("options", {}))

    def flow(self, call: Call) -> AttemptFlow:
        """Apply what the server said (version, model capabilities) and start the flow."""
        request = call.request.copy()
        if self.scores_choices(call):
            # What a choice field's confidence is read from; the server computes it per token.
            request.setdefault("logprobs", True)
            request.setdefault("top_logprobs", TOP_LOGPROBS)
        known = self.known
        chosen = choose_format(call.format_mode, call.schema, known.schema_format)
        fmt = self.fallbacks.format_for(call.schema.fingerprint, chosen)
        if isinstance(fmt, dict) and call.schema.sentences:
            # The document's own sentences, offered where the schema asks for one of them.
            fmt = offer_sentences(fmt, call.schema.sentences, call.text)
        if fmt is not None:
            request["format"] = fmt
        if "truncate" not in request and known.refuses_overflow:
            # Ollama cuts an over-long prompt from the middle, instructions first; told not to,
            # it refuses instead, and the refusal is a DocumentTooLong.
            request["truncate"] = False
        caps = known.capabilities or ()
        if "think" not in request and "thinking" in caps:
            # A schema constrains from the first token; with thinking on, the JSON would
            # land in `thinking` and `response` would be empty.
            request["think"] = False
        if "images" in request and known.capabilities is not None and "vision" not in caps:
            raise BadRequest(
                f"model {self.model!r} cannot read images (no 'vision' capability); "
                "use a vision model such as llava or llama3.2-vision",
                status=400,
                host=self.settings.host,
                model=self.model,
            )
        return AttemptFlow(
            schema=call.schema,
            request=request,
            max_attempts=call.max_attempts,
            host=self.settings.host,
            document=call.text,
            format_fallback=self.fallbacks.reason(call.schema.fingerprint)
            if fmt != chosen
            else None,
        )

    def fall_back(self, call: Call, request: GenerateRequest, error: BadRequest) -> bool:
        """Whether ``request``, refused with ``error``, goes again with format "json" (see
        ``fallback``)."""
        return self.fallbacks.retry(call.schema.fingerprint, request, error)

    def scores_choices(self, call: Call) -> bool:
        """Whether this call's choice fields get a confidence (the server must be able to)."""
        return call.confidence and call.schema.has_choices and self.known.logprobs

    def decides(self, call: Call) -> Layout | None:
        """The layout of ``call``'s reply when its choice fields are to be decided from one
        token each (``core.decide``), else None (the reply is generated whole).

        ``decide_choices``: None decides where the server continues a reply with
        log-probabilities (``ModelFacts.continues_reply``); True decides wherever the server
        sends log-probabilities; False never.
        """
        known = self.known
        if call.decide_choices is False or self.continuation_refused:
            return None
        if not known.logprobs or call.samples > 1:
            return None
        if call.decide_choices is None and not known.continues_reply:
            return None
        if any(k in call.request for k in ("raw", "template", "context", "suffix", "images")):
            return None  # a chat continuation cannot carry these as /api/generate does
        return decide.layout(call.schema)

    def prior_key(self, call: Call) -> PriorKey | None:
        """Where this call's content-free prior is kept, or None when it is not calibrated."""
        if not (call.calibrate and self.scores_choices(call)):
            return None
        # A system prompt or template changes the model's lean as much as the task does.
        lean = f"{self.model}\n{call.request.get('system', '')}\n{call.request.get('template', '')}"
        return calibration.prior_key(lean, call.request.get("prompt", ""), call.schema)

    def read_prior(self, call: Call, replies: Sequence[GenerateResult]) -> Prior:
        """The prior of ``call``'s choice fields from content-free replies: each option's mean
        score over them (empty when none had scores)."""
        return Prior.from_scores(
            field
            for reply in replies
            for field in score_choices(call.schema, reply.text, reply.logprobs).values()
        )

    def cache_key(self, text: str, schema: Any, **options: Unpack[CallOptions]) -> str:
        """A content address for this call: model, final prompt, schema, format and options.

        Two calls with the same key send the same request, so a validated value can be reused.
        Raises as planning a call does (InputError, SchemaError, ConfigError).
        """
        call = self.plan(text, schema, options)
        request = {k: v for k, v in call.request.items() if k not in ("stream", "keep_alive")}
        material = {
            "request": request,
            "schema": call.schema.fingerprint,
            "format": call.format_mode,
            "chunk": call.chunk,
        }
        blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def next_request(self, flow: AttemptFlow, call: Call, partials: bool) -> GenerateRequest:
        """The next attempt's request, streamed always for partials or when told; otherwise only
        while a runaway reply could cost the server ``STREAM_WORTH_SECONDS`` or more."""
        if partials and call.stream is False:
            raise ConfigError("stream=False gives no partial values; call extract() instead")
        request = flow.request()
        if partials or call.stream is not None:
            request["stream"] = partials or bool(call.stream)
            return request
        budget = call.request.get("options", {}).get("num_predict")
        fast = self._token_seconds is not None and isinstance(budget, int) and budget >= 0
        request["stream"] = not fast or budget * self._token_seconds >= STREAM_WORTH_SECONDS  # type: ignore[operator]
        return request

    def outcome(
        self, call: Call, flow: AttemptFlow, reply: GenerateResult | OutputError, retries: int
    ) -> Extraction[Any] | AttemptFailed:
        """Record one attempt: the Extraction, or AttemptFailed before a re-ask.

        Raises ExtractionFailed after the last allowed attempt, and DocumentTooLong when the
        server cut the prompt.
        """
        if isinstance(reply, GenerateResult):
            self.fallbacks.confirm(call.schema.fingerprint, flow.format_fallback)
            tokens, nanos = reply.metrics.eval_count, reply.metrics.eval_duration
            if tokens and nanos and tokens >= MIN_TIMED_TOKENS:
                self._token_seconds = nanos / tokens / 1e9
            self._check_cut(call, flow.base, reply)
        done = flow.record(reply, transport_retries=retries)
        return done if done is not None else AttemptFailed(flow.attempts[-1])

    def _check_cut(self, call: Call, request: GenerateRequest, reply: GenerateResult) -> None:
        """A server too old for ``truncate: false`` cuts an over-long prompt silently; the cut
        prompt fills the context exactly (``num_ctx`` tokens, or one less on llama-server), so
        a prompt that filled it was cut. Raises DocumentTooLong then."""
        if call.truncate_given or request.get("truncate") is False:
            return  # the caller chose, or the server refuses rather than cuts
        counted = reply.metrics.prompt_eval_count
        context = self.num_ctx(request.get("options", {}))
        if counted and counted >= context - 1:
            raise DocumentTooLong(
                f"the prompt filled the model's whole context ({counted} of {context} tokens): "
                "the server cut it, dropping part of the instructions or the document; split "
                "the document (chunk=), raise num_ctx, or shorten it",
                chars=len(call.text),
                tokens=counted,
                context=context,
            )


def reply_reserve(options: Mapping[str, Any], context: int) -> int:
    """The tokens of ``context`` kept for the reply: ``num_predict``, at most its share."""
    budget = int(options.get("num_predict") or DEFAULT_NUM_PREDICT)
    return int(min(budget if budget >= 0 else context, context * REPLY_SHARE))


def _given(opts: CallOptions) -> dict[str, Any]:
    """The request fields ``opts`` sets as given, each checked (or converted) as it must be."""
    given: dict[str, Any] = {}
    for name in GIVEN_FIELDS:
        value = opts.get(name)
        if value is not None:
            check = GIVEN_CHECKS.get(name)
            given[name] = check(value) if check is not None else value
    return given


def _decide_choices(value: Any) -> bool | None:
    """``decide_choices`` checked: None (where the server allows it), True or False."""
    if value is not None and not isinstance(value, bool):
        raise ConfigError(
            f"decide_choices={value!r}: use None (where the server continues a reply), "
            "True or False"
        )
    return value


def _temperature(value: Any) -> float:
    """A confidence temperature, checked: a positive finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(
            f"confidence_temperature={value!r}: give a positive number (1 reports confidences "
            "as they are; `extract eval` fits one on labeled records)"
        )
    return float(value)
