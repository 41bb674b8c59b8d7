"""P6: the real model (SmolLM2-135M through the llama.cpp engine) on the sample messages.

Every message is read with both schemas by five configurations, taking turns document by
document so that a busy spell on the machine falls on all of them alike:

- extract with ``format`` "json", "schema" and "auto" (its prompt, its re-asks);
- the official ``ollama`` client with the schema as ``format`` and a plain prompt (task and
  text only), resending the same request when the reply does not validate;
- instructor in JSON mode over the OpenAI-compatible route, with its own re-asks.

Each gets three attempts (extract's default) and the same cap of ``MAX_TOKENS`` generated
tokens per attempt: valid replies here take under 100, and an uncapped runaway (``format:
"json"`` emitting whitespace) would run to the end of the context, about 35 s a time.

On a local model the cost of a record is the server's time, so the server is metered: it logs
the counters of every generation it finishes (``total_duration``, prompt and generated tokens),
failed attempts included, and the log is read after each record, when that record's requests
have all been answered, so each configuration is charged for its own requests only, extract's
calibration request included (the prompt about a content-free document that a schema with a
choice field costs once per extractor). The same figures from the replies themselves
(extract's attempts, the ollama client's responses; instructor's OpenAI replies carry tokens
but no durations) check the log. Each configuration runs on its own llama.cpp instance of the
model, so the prompt prefix it finds cached is its own previous request's, as when it runs
alone, not that of whichever configuration went before it.
"""

from __future__ import annotations

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
from ._servers import RunningServer, ServerSpec, running
from .docs import MESSAGES, SCHEMAS, plain_prompt
from .labels_meter import Cost
from .quality_report import MAX_ATTEMPTS, MAX_TOKENS, Record, outcome

# The model's name on the server for each configuration: one llama.cpp instance each.
SERVED = {
    "extract json": "p6-extract-json",
    "extract schema": "p6-extract-schema",
    "extract auto": "p6-extract-auto",
    "ollama format=schema": "p6-ollama",
    "instructor JSON": "p6-instructor",
}

Run = Callable[[str, str], Record]
"""(schema name, document) → Record, without the server's log (added by the caller)."""


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
        reported = Cost(
            len(attempts),
            sum(a.metrics.total_duration or 0 for a in attempts) / 1e9,
            sum(a.metrics.prompt_eval_count or 0 for a in attempts),
            sum(a.metrics.eval_count or 0 for a in attempts),
        )
        errors = tuple(type(a.error).__name__ for a in attempts if a.error is not None)
        first = valid and len(attempts) == 1
        return Record(first, valid, len(attempts), reported, errors=errors)

    return run, extractor.close


def _ollama_runner(url: str, model: str) -> tuple[Run, Callable[[], None]]:
    client = ollama.Client(host=url)
    formats = {name: schema.model_json_schema() for name, schema in SCHEMAS.items()}

    def run(schema_name: str, text: str) -> Record:
        reported = Cost()
        errors = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            reply = client.generate(
                model=model,
                prompt=plain_prompt(schema_name, text),
                format=formats[schema_name],
                options={"num_predict": MAX_TOKENS},
            )
            reported += Cost.of(reply.model_dump())
            try:
                SCHEMAS[schema_name].model_validate_json(reply.response or "")
            except pydantic.ValidationError as exc:
                errors.append(_pydantic_kind(exc))
                continue
            return Record(attempt == 1, True, attempt, reported, errors=tuple(errors))
        return Record(False, False, MAX_ATTEMPTS, reported, errors=tuple(errors))

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
        # OpenAI's usage has tokens but no durations: the seconds are the server's alone.
        # instructor rewrites each reply's usage in place with its running total over the
        # retries, so the last reply's usage is the whole call's.
        usage = seen[-1].usage if seen else None
        reported = Cost(
            len(seen),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )
        attempts = max(len(seen), 1)
        return Record(
            valid and attempts == 1, valid, attempts, reported, durations=False, errors=errors
        )

    return run, raw.close


def _pydantic_kind(exc: pydantic.ValidationError) -> str:
    """The first error's type: json_invalid, missing, string_too_long, literal_error..."""
    found = exc.errors(include_url=False)
    return f"ValidationError:{found[0]['type']}" if found else "ValidationError"


def _runners(url: str) -> dict[str, tuple[Run, Callable[[], None]]]:
    return {
        "extract json": _extract_runner(url, SERVED["extract json"], "json"),
        "extract schema": _extract_runner(url, SERVED["extract schema"], "schema"),
        "extract auto": _extract_runner(url, SERVED["extract auto"], "auto"),
        "ollama format=schema": _ollama_runner(url, SERVED["ollama format=schema"]),
        "instructor JSON": _instructor_runner(url, SERVED["instructor JSON"]),
    }


def _measured(server: RunningServer, run: Run, schema_name: str, text: str) -> Record:
    """One record, with its wall time and what the server logged for its requests."""
    start = time.perf_counter()
    record = run(schema_name, text)
    seconds = time.perf_counter() - start
    # Every request of this record has been answered, and nothing else ran meanwhile.
    logged = server.take_generations()
    return dataclasses.replace(
        record,
        server=sum((g.cost for g in logged), Cost()),
        prior=sum((g.cost for g in logged if g.content_free), Cost()),
        seconds=seconds,
    )


def run(scale: Scale) -> list[Outcome]:
    """Measure P6."""
    spec = ServerSpec(kind="llama", names=tuple(SERVED.values()), metered=True)
    docs = MESSAGES[: scale.real_docs]
    results: dict[str, list[Record]] = {}
    measured = 0
    started = time.perf_counter()
    with running(spec) as server:
        runners = _runners(server.url)
        results = {name: [] for name in runners}
        server.take_generations()  # loading generates nothing; start from an empty log all the same
        try:
            for text in docs:
                # Documents are whole turns of every configuration, so stopping between two
                # keeps the comparison fair.
                if time.perf_counter() - started > scale.real_budget:
                    progress(f"P6 time budget spent after {measured} documents")
                    break
                for schema_name in SCHEMAS:
                    for name, (runner, _close) in runners.items():
                        results[name].append(_measured(server, runner, schema_name, text))
                measured += 1
                progress(f"P6 document {measured}/{len(docs)}")
        finally:
            for _runner, close in runners.values():
                close()
    return [outcome(results, measured, len(docs), scale.real_budget)]
