"""P6: the real model (SmolLM2-135M through the llama.cpp engine) on the sample messages.

Every message is read with both schemas by five configurations, taking turns document by
document so that a busy spell on the machine falls on all of them alike:

- extract with ``format`` "json", "schema" and "auto" (its prompt, its re-asks);
- the official ``ollama`` client with the schema as ``format`` and a plain prompt (task and
  text only), resending the same request when the reply does not validate;
- instructor in JSON mode over the OpenAI-compatible route, with its own re-asks.

Each gets three attempts (extract's default) and the same cap of ``MAX_TOKENS`` generated
tokens per attempt: valid replies here take under 100, and an uncapped runaway (``format:
"json"`` emitting whitespace) would run to the end of the context, about 35 s a time. Counted
per configuration: replies valid on the first attempt, records valid in the end, mean attempts,
and prompt + generated tokens summed over every attempt (failed ones included) divided by the
valid records. Sampling is the server's default (temperature 0.8), as a user who sets nothing
would get, so a single run is noisy: beside each ratio of token costs stands a 95% interval
from a paired bootstrap over the records, and the tokens are split into prompt and reply.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

import instructor
import ollama
import openai
import pydantic
from instructor.core import InstructorError

from extract import ExtractionFailed, Extractor

from ._harness import Outcome, Scale, progress
from ._servers import ServerSpec, model_name, running
from .docs import MESSAGES, SCHEMAS, plain_prompt

MAX_ATTEMPTS = 3
MAX_TOKENS = 192
GOAL_ATTEMPTS = 1.05
BOOTSTRAP_ROUNDS = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """How one configuration did on one (document, schema)."""

    first_valid: bool
    valid: bool
    attempts: int
    prompt_tokens: int  # prompt tokens over every attempt
    reply_tokens: int  # generated tokens over every attempt
    seconds: float = 0.0
    errors: tuple[str, ...] = ()  # what went wrong in each failed attempt


Run = Callable[[str, str], Record]
"""(schema name, document) → Record."""


def _extract_runner(url: str, model: str, fmt: str) -> tuple[Run, Callable[[], None]]:
    extractor = Extractor(
        model,
        host=url,
        format=fmt,  # type: ignore[arg-type]
        max_attempts=MAX_ATTEMPTS,
        options={"num_predict": MAX_TOKENS},
    )

    def run(schema_name: str, text: str) -> Record:
        try:
            result = extractor.extract(text, schema=SCHEMAS[schema_name])
        except ExtractionFailed as exc:
            attempts = exc.attempts
            valid = False
        else:
            attempts, valid = list(result.attempts), True
        prompt = sum(a.metrics.prompt_eval_count or 0 for a in attempts)
        reply = sum(a.metrics.eval_count or 0 for a in attempts)
        errors = tuple(type(a.error).__name__ for a in attempts if a.error is not None)
        first = valid and len(attempts) == 1
        return Record(first, valid, len(attempts), prompt, reply, errors=errors)

    return run, extractor.close


def _ollama_runner(url: str, model: str) -> tuple[Run, Callable[[], None]]:
    client = ollama.Client(host=url)
    formats = {name: schema.model_json_schema() for name, schema in SCHEMAS.items()}

    def run(schema_name: str, text: str) -> Record:
        prompt = reply_tokens = 0
        errors = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            reply = client.generate(
                model=model,
                prompt=plain_prompt(schema_name, text),
                format=formats[schema_name],
                options={"num_predict": MAX_TOKENS},
            )
            prompt += reply.prompt_eval_count or 0
            reply_tokens += reply.eval_count or 0
            try:
                SCHEMAS[schema_name].model_validate_json(reply.response or "")
            except pydantic.ValidationError as exc:
                errors.append(_pydantic_kind(exc))
                continue
            return Record(attempt == 1, True, attempt, prompt, reply_tokens, errors=tuple(errors))
        return Record(False, False, MAX_ATTEMPTS, prompt, reply_tokens, errors=tuple(errors))

    return run, client.close


def _instructor_runner(url: str, model: str) -> tuple[Run, Callable[[], None]]:
    raw = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    client: Any = instructor.from_openai(raw, mode=instructor.Mode.JSON)
    seen: list[Any] = []
    # Every completion instructor receives, retries included, passes through this hook.
    client.on("completion:response", seen.append)

    def run(schema_name: str, text: str) -> Record:
        seen.clear()
        valid, errors = True, tuple[str, ...]()
        try:
            client.chat.completions.create(
                model=model,
                response_model=SCHEMAS[schema_name],
                messages=[{"role": "user", "content": plain_prompt(schema_name, text)}],
                max_retries=MAX_ATTEMPTS,
                max_tokens=MAX_TOKENS,
            )
        except InstructorError as exc:
            # Retries exhausted, or a reply cut at max_tokens (which instructor does not retry).
            valid, errors = False, (type(exc).__name__,)
        prompt = sum(c.usage.prompt_tokens for c in seen if c.usage)
        reply = sum(c.usage.completion_tokens for c in seen if c.usage)
        attempts = max(len(seen), 1)
        return Record(valid and attempts == 1, valid, attempts, prompt, reply, errors=errors)

    return run, raw.close


def _pydantic_kind(exc: pydantic.ValidationError) -> str:
    """The first error's type: json_invalid, missing, string_too_long, literal_error..."""
    found = exc.errors(include_url=False)
    return f"ValidationError:{found[0]['type']}" if found else "ValidationError"


def _runners(url: str, model: str) -> dict[str, tuple[Run, Callable[[], None]]]:
    return {
        "extract json": _extract_runner(url, model, "json"),
        "extract schema": _extract_runner(url, model, "schema"),
        "extract auto": _extract_runner(url, model, "auto"),
        "ollama format=schema": _ollama_runner(url, model),
        "instructor JSON": _instructor_runner(url, model),
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """One configuration's totals."""

    records: int
    first_valid: int
    valid: int
    attempts: int
    prompt_tokens: int
    reply_tokens: int
    seconds: float
    errors: collections.Counter[str]

    @classmethod
    def of(cls, records: list[Record]) -> Summary:
        return cls(
            records=len(records),
            first_valid=sum(r.first_valid for r in records),
            valid=sum(r.valid for r in records),
            attempts=sum(r.attempts for r in records),
            prompt_tokens=sum(r.prompt_tokens for r in records),
            reply_tokens=sum(r.reply_tokens for r in records),
            seconds=sum(r.seconds for r in records),
            errors=collections.Counter(e for r in records for e in r.errors),
        )

    @property
    def first_share(self) -> float:
        return self.first_valid / max(self.records, 1)

    @property
    def valid_share(self) -> float:
        return self.valid / max(self.records, 1)

    @property
    def mean_attempts(self) -> float:
        return self.attempts / max(self.records, 1)

    @property
    def tokens_per_valid(self) -> float:
        tokens = self.prompt_tokens + self.reply_tokens
        return tokens / self.valid if self.valid else float("inf")

    def per_attempt(self, tokens: int) -> float:
        return tokens / max(self.attempts, 1)


def _timed(run: Run, schema_name: str, text: str) -> Record:
    start = time.perf_counter()
    record = run(schema_name, text)
    return dataclasses.replace(record, seconds=time.perf_counter() - start)


def run(scale: Scale) -> list[Outcome]:
    """Measure P6."""
    spec = ServerSpec(kind="llama")
    docs = MESSAGES[: scale.real_docs]
    results: dict[str, list[Record]] = {}
    measured = 0
    started = time.perf_counter()
    with running(spec) as server:
        runners = _runners(server.url, model_name(spec))
        results = {name: [] for name in runners}
        try:
            for text in docs:
                # Documents are whole turns of every configuration, so stopping between two
                # keeps the comparison fair.
                if time.perf_counter() - started > scale.real_budget:
                    progress(f"P6 time budget spent after {measured} documents")
                    break
                for schema_name in SCHEMAS:
                    for name, (runner, _close) in runners.items():
                        results[name].append(_timed(runner, schema_name, text))
                measured += 1
                progress(f"P6 document {measured}/{len(docs)}")
        finally:
            for _runner, close in runners.values():
                close()
    return [_outcome(results, measured, len(docs), scale.real_budget)]


def _ratio_interval(
    ours: list[Record], theirs: list[Record], *, rounds: int = BOOTSTRAP_ROUNDS
) -> tuple[float, float]:
    """A 95% interval of (our tokens per valid record) ÷ (theirs), by a paired bootstrap.

    Both lists hold the same (document, schema) pairs in the same order; each round draws
    pairs with replacement, so one costly run of retries weighs as often on both sides.
    """
    rng = random.Random(0)  # the same draws on every run, for comparable intervals
    pairs = list(zip(ours, theirs, strict=True))
    ratios = []
    for _ in range(rounds):
        drawn = rng.choices(pairs, k=len(pairs))
        mine = Summary.of([a for a, _b in drawn]).tokens_per_valid
        other = Summary.of([b for _a, b in drawn]).tokens_per_valid
        ratios.append(mine / other if other not in (0, float("inf")) else float("inf"))
    ratios.sort()
    return ratios[int(0.025 * rounds)], ratios[int(0.975 * rounds) - 1]


def _outcome(results: dict[str, list[Record]], n_docs: int, planned: int, budget: float) -> Outcome:
    summaries = {name: Summary.of(records) for name, records in results.items()}
    auto = summaries["extract auto"]
    fewest = min(s.tokens_per_valid for s in summaries.values())
    passed = (
        auto.records > 0
        and auto.valid == auto.records
        and auto.mean_attempts <= GOAL_ATTEMPTS
        and auto.tokens_per_valid <= fewest
    )
    cut = (
        f" (of {planned} planned: the {budget / 60:.0f}-minute budget ran out)"
        if n_docs < planned
        else ""
    )
    lines = [
        f"{n_docs} messages{cut} × {len(SCHEMAS)} schemas ({', '.join(SCHEMAS)}) = "
        f"{n_docs * len(SCHEMAS)} records per configuration, up to {MAX_ATTEMPTS} attempts and "
        f"{MAX_TOKENS} generated tokens per attempt",
        "",
        "| configuration | first-try valid | valid | mean attempts | tokens / valid record "
        "| prompt / attempt | reply / attempt | s / record |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        lines.append(
            f"| {name} | {s.first_valid}/{s.records} ({s.first_share:.0%}) "
            f"| {s.valid}/{s.records} ({s.valid_share:.0%}) | {s.mean_attempts:.2f} "
            f"| {s.tokens_per_valid:.0f} | {s.per_attempt(s.prompt_tokens):.0f} "
            f"| {s.per_attempt(s.reply_tokens):.0f} | {s.seconds / max(s.records, 1):.2f} |"
        )
    lines += [
        "",
        "extract auto's tokens per valid record ÷ each other configuration's, with a 95% "
        f"interval from a paired bootstrap over the records ({BOOTSTRAP_ROUNDS} rounds):",
        "",
    ]
    for name, s in summaries.items():
        if name == "extract auto" or not s.valid:
            continue
        low, high = _ratio_interval(results["extract auto"], results[name])
        ratio = auto.tokens_per_valid / s.tokens_per_valid
        lines.append(f"- ÷ {name}: {ratio:.2f} ({low:.2f}–{high:.2f})")
    lines += ["", "What failed attempts failed on:", ""]
    for name, s in summaries.items():
        kinds = ", ".join(f"{kind} × {n}" for kind, n in s.errors.most_common()) or "nothing"
        lines.append(f"- {name}: {kinds}")
    runner_up = min(
        (s.tokens_per_valid for n, s in summaries.items() if n != "extract auto"),
        default=float("inf"),
    )
    return Outcome(
        "P6",
        f"real model (SmolLM2-135M), {n_docs} docs × {len(SCHEMAS)} schemas: extract "
        "json/schema/auto vs ollama format=schema vs instructor JSON",
        f"auto: {auto.valid_share:.0%} valid, {auto.mean_attempts:.2f} attempts, "
        f"{auto.tokens_per_valid:.0f} tok/valid (next best {runner_up:.0f})",
        f"100% valid, ≤ {GOAL_ATTEMPTS} attempts, fewest tokens",
        passed,
        tuple(lines),
    )
