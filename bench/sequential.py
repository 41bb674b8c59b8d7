"""P1 and P2: sequential extractions per second, instant scripted replies, the small schema.

Three clients take turns on the same server, round after round, each doing the same calls:

- extract: ``Extractor.extract(text, schema=Person)`` (format auto: the schema goes as
  ``format``; the reply passes the guards, is decoded and validated; once the first reply
  shows the server generating far faster than a second per ``num_predict`` budget, extract
  asks for one body instead of a stream, as the floor does);
- the floor: the official ``ollama`` client's ``generate`` with the schema as ``format`` and
  ``Person.model_validate_json`` on the reply — no prompt building, no retry, no streaming;
- instructor in JSON mode over the server's OpenAI-compatible route.

Within a round the clients take turns every ``BLOCK`` calls, each adding up its own time, so a
busy spell on the machine (these are shared) falls on all of them alike; each round's rates are
compared with each other, and the median of those ratios is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import instructor
import ollama
import openai

from extract import Extractor

from ._harness import Outcome, Scale, median_ratio, progress, rate
from ._servers import ServerSpec, running
from .docs import PERSON_REPLY, Person, person_text

WARMUP_CALLS = 20
BLOCK = 25  # calls a client makes before the next one takes its turn
P1_GOAL, P2_GOAL = 1.0, 2.0
_PROMPT = "Extract the person's name, age and email from this text.\n\n"

Call = Callable[[str], Person]


def extract_client(url: str) -> tuple[Call, Callable[[], None]]:
    """extract's call, and how to close its client."""
    extractor = Extractor("tiny", host=url)

    def call(text: str) -> Person:
        return extractor.extract(text, schema=Person).value

    return call, extractor.close


def ollama_client(url: str) -> tuple[Call, Callable[[], None]]:
    """The floor: one generate with the schema as format, then Pydantic on the reply."""
    client = ollama.Client(host=url)
    schema = Person.model_json_schema()

    def call(text: str) -> Person:
        reply = client.generate(model="tiny", prompt=_PROMPT + text, format=schema)
        return Person.model_validate_json(reply.response or "")

    return call, client.close


def instructor_client(url: str) -> tuple[Call, Callable[[], None]]:
    """instructor in JSON mode over the OpenAI-compatible route."""
    raw = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    client: Any = instructor.from_openai(raw, mode=instructor.Mode.JSON)

    def call(text: str) -> Person:
        person: Person = client.chat.completions.create(
            model="tiny",
            response_model=Person,
            messages=[{"role": "user", "content": _PROMPT + text}],
            max_retries=3,
        )
        return person

    return call, raw.close


CLIENTS: dict[str, Callable[[str], tuple[Call, Callable[[], None]]]] = {
    "extract": extract_client,
    "ollama": ollama_client,
    "instructor": instructor_client,
}


def _round(calls: dict[str, Call], texts: list[str]) -> dict[str, float]:
    """Each client's extractions/s over ``texts``, the clients taking turns block by block."""
    seconds = dict.fromkeys(calls, 0.0)
    for first in range(0, len(texts), BLOCK):
        block = texts[first : first + BLOCK]
        for name, call in calls.items():
            start = time.perf_counter()
            for text in block:
                call(text)
            seconds[name] += time.perf_counter() - start
    return {name: rate(len(texts), spent) for name, spent in seconds.items()}


def run(scale: Scale) -> list[Outcome]:
    """Measure P1 and P2 in one interleaved run."""
    texts = [person_text(i) for i in range(scale.sequential_calls)]
    rates: dict[str, list[float]] = {name: [] for name in CLIENTS}
    with running(ServerSpec(reply=PERSON_REPLY)) as server:
        made = {name: make(server.url) for name, make in CLIENTS.items()}
        try:
            for call, _close in made.values():
                for text in texts[:WARMUP_CALLS]:
                    call(text)
            # Rotate who goes first, so no client always runs on a warmer (or busier) machine.
            names = list(CLIENTS)
            for number in range(scale.sequential_rounds):
                order = names[number % 3 :] + names[: number % 3]
                measured = _round({name: made[name][0] for name in order}, texts)
                for name in names:
                    rates[name].append(measured[name])
                progress(
                    f"P1/P2 round {number + 1}/{scale.sequential_rounds}: "
                    + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in names)
                )
        finally:
            for _call, close in made.values():
                close()
    p1 = median_ratio(rates["extract"], rates["ollama"])
    p2 = median_ratio(rates["extract"], rates["instructor"])
    medians = {name: statistics.median(values) for name, values in rates.items()}
    detail = (
        f"{scale.sequential_rounds} rounds of {scale.sequential_calls} calls per client, taking "
        f"turns every {BLOCK} calls, after a warm-up; median extractions/s: "
        + ", ".join(f"{name} {value:.0f}" for name, value in medians.items()),
        "per-round ratios extract/ollama: "
        + ", ".join(f"{e / o:.2f}" for e, o in zip(rates["extract"], rates["ollama"], strict=True)),
        "per-round ratios extract/instructor: "
        + ", ".join(
            f"{e / i:.2f}" for e, i in zip(rates["extract"], rates["instructor"], strict=True)
        ),
    )
    return [
        Outcome(
            "P1",
            "sequential extractions/s vs ollama.generate + model_validate_json",
            f"{p1:.2f}× ({medians['extract']:.0f} vs {medians['ollama']:.0f}/s)",
            f"≥ {P1_GOAL}×",
            p1 >= P1_GOAL,
            detail,
        ),
        Outcome(
            "P2",
            "sequential extractions/s vs instructor JSON mode",
            f"{p2:.2f}× ({medians['extract']:.0f} vs {medians['instructor']:.0f}/s)",
            f"≥ {P2_GOAL:g}×",
            p2 >= P2_GOAL,
        ),
    ]
