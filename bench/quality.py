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
would get.
"""

from __future__ import annotations

import collections
import dataclasses
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


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """How one configuration did on one (document, schema)."""

    first_valid: bool
    valid: bool
    attempts: int
    tokens: int
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
        tokens = sum(
            (a.metrics.prompt_eval_count or 0) + (a.metrics.eval_count or 0) for a in attempts
        )
        errors = tuple(type(a.error).__name__ for a in attempts if a.error is not None)
        return Record(valid and len(attempts) == 1, valid, len(attempts), tokens, errors=errors)

    return run, extractor.close


def _ollama_runner(url: str, model: str) -> tuple[Run, Callable[[], None]]:
    client = ollama.Client(host=url)
    formats = {name: schema.model_json_schema() for name, schema in SCHEMAS.items()}

    def run(schema_name: str, text: str) -> Record:
        tokens, errors = 0, []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            reply = client.generate(
                model=model,
                prompt=plain_prompt(schema_name, text),
                format=formats[schema_name],
                options={"num_predict": MAX_TOKENS},
            )
            tokens += (reply.prompt_eval_count or 0) + (reply.eval_count or 0)
            try:
                SCHEMAS[schema_name].model_validate_json(reply.response or "")
            except pydantic.ValidationError as exc:
                errors.append(_pydantic_kind(exc))
                continue
            return Record(attempt == 1, True, attempt, tokens, errors=tuple(errors))
        return Record(False, False, MAX_ATTEMPTS, tokens, errors=tuple(errors))

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
        tokens = sum(c.usage.prompt_tokens + c.usage.completion_tokens for c in seen if c.usage)
        attempts = max(len(seen), 1)
        return Record(valid and attempts == 1, valid, attempts, tokens, errors=errors)

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
    tokens: int
    seconds: float
    errors: collections.Counter[str]

    @classmethod
    def of(cls, records: list[Record]) -> Summary:
        return cls(
            records=len(records),
            first_valid=sum(r.first_valid for r in records),
            valid=sum(r.valid for r in records),
            attempts=sum(r.attempts for r in records),
            tokens=sum(r.tokens for r in records),
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
        return self.tokens / self.valid if self.valid else float("inf")


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
    summaries = {name: Summary.of(records) for name, records in results.items()}
    return [_outcome(summaries, measured, len(docs), scale.real_budget)]


def _outcome(summaries: dict[str, Summary], n_docs: int, planned: int, budget: float) -> Outcome:
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
        "| s / record |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        lines.append(
            f"| {name} | {s.first_valid}/{s.records} ({s.first_share:.0%}) "
            f"| {s.valid}/{s.records} ({s.valid_share:.0%}) | {s.mean_attempts:.2f} "
            f"| {s.tokens_per_valid:.0f} | {s.seconds / max(s.records, 1):.2f} |"
        )
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
