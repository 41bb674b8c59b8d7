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

from extract import ExtractionFailed, Extractor, Schema
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from .docs import MESSAGES, Contact, Ticket

FORMATS: dict[str, Any] = {"none": None, "json": "json", "schema": "schema"}
OPTIONS = {"temperature": 0, "seed": 1, "num_predict": 256}


def run_one(ex: Extractor, schema: Schema, doc: str, style: str, fmt: Any) -> tuple[bool, int]:
    """First-try validity and attempts for one document, through the extractor itself."""
    try:
        result = ex.extract(doc, schema, rendering=style, format=fmt)
    except ExtractionFailed as failed:
        return failed.attempts[0].ok, len(failed.attempts)
    return result.attempts[0].ok, len(result.attempts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10)
    args = parser.parse_args()
    docs = MESSAGES[: args.docs]
    rows = []
    with (
        serve(LlamaEngine()) as srv,
        Extractor(DEFAULT_LOCAL_MODEL, host=srv.url, max_attempts=3, options=OPTIONS) as ex,
    ):
        for model in (Contact, Ticket):
            schema = Schema.load(model)
            for style in ("shape", "schema"):
                for name, fmt in FORMATS.items():
                    start = time.perf_counter()
                    outcomes = [run_one(ex, schema, d, style, fmt) for d in docs]
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
