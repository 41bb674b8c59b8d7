"""Prompt renderings compared on the real model: the output shape vs the raw JSON Schema.

    python -m bench.renderings [--docs N]

For each rendering and each format (none, "json", schema grammar), extracts the bench's
support messages with SmolLM2-135M (llama.cpp engine, temperature 0) and prints first-try
validity and mean attempts (re-asks included, at most 3).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from extract.client.config import Settings
from extract.client.transport import Transport
from extract.core.flow import AttemptFlow
from extract.core.prompt import build_prompt
from extract.core.schema import Schema
from extract.errors import ExtractionFailed, OutputError
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from .docs import MESSAGES, Contact, Ticket

FORMATS: dict[str, Any] = {"none": None, "json": "json", "schema": "grammar"}


def run_one(t: Transport, schema: Schema, doc: str, style: str, fmt: Any) -> tuple[bool, int]:
    request: dict[str, Any] = {
        "model": DEFAULT_LOCAL_MODEL,
        "prompt": build_prompt(doc, schema, style=style),
        "stream": True,
        "options": {"temperature": 0, "seed": 1, "num_predict": 256},
    }
    if fmt is not None:
        request["format"] = schema.grammar if fmt == "grammar" else fmt
    flow = AttemptFlow(schema=schema, request=request, max_attempts=3, host=t.host)  # type: ignore[arg-type]
    while True:
        flow.begin()
        reply: Any
        try:
            reply = t.generate(flow.request(), on_text=flow.on_text)
        except OutputError as exc:
            reply = exc
        try:
            done = flow.record(reply)
        except ExtractionFailed:
            return flow.attempts[0].ok, len(flow.attempts)
        if done is not None:
            return done.attempts[0].ok, len(done.attempts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10)
    args = parser.parse_args()
    docs = MESSAGES[: args.docs]
    rows = []
    with serve(LlamaEngine()) as srv, Transport(Settings.resolve(srv.url)) as t:
        for model in (Contact, Ticket):
            schema = Schema.load(model)
            for style in ("shape", "schema"):
                for name, fmt in FORMATS.items():
                    start = time.perf_counter()
                    outcomes = [run_one(t, schema, d, style, fmt) for d in docs]
                    first = sum(ok for ok, _ in outcomes) / len(outcomes)
                    attempts = sum(n for _, n in outcomes) / len(outcomes)
                    rows.append((model.__name__, style, name, first, attempts))
                    print(
                        f"{model.__name__:8} {style:6} format={name:6} first-try valid "
                        f"{first:5.0%}  mean attempts {attempts:.2f}  "
                        f"({time.perf_counter() - start:.0f}s)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
