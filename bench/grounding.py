"""Grounded values and long documents on the real model (SmolLM2-135M via llama.cpp).

    python -m bench.grounding [--messages N] [--long N]

1. **Invented values.** The bundled ``contact`` schema over the bench's support messages, with
   its ``x-grounded`` marks and with them removed: how many string values are absent from their
   message (case and whitespace ignored, or the same digits), and how many fields were filled.
2. **Long documents.** Each of the first ``--long`` messages is padded to about 20,000
   characters with neutral contract text after it; the padded document is read with
   ``chunk="auto"``, and its values (the sender's name, company and email, grounded, without
   the ``email`` format the small model often breaks) compared with the short message's. Also
   checked: without ``chunk`` the padded document is a DocumentTooLong, never a value.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

from extract import DocumentTooLong, ExtractionFailed, Extractor, Schema
from extract.core.grounding import locate
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

from .docs import MESSAGES

PADDING = (
    " The parties agree that the goods described in the schedule shall be delivered in good"
    " condition, that payment shall be made within thirty days of the invoice date, and that"
    " any dispute shall be settled under the laws of the seller's country."
)
LONG_CHARS = 20_000
OPTIONS = {"temperature": 0, "seed": 1}
SENDER = {
    "type": "object",
    "properties": {
        name: {"type": ["string", "null"], "description": hint, "x-grounded": True}
        for name, hint in (
            ("name", "full name of the person"),
            ("company", "company or organisation"),
            ("email", "email address"),
        )
    },
    "required": ["name", "company", "email"],
    "additionalProperties": False,
}


def ungrounded_schema() -> dict[str, Any]:
    """The bundled contact schema without its x-grounded marks."""
    schema = copy.deepcopy(Schema.load("contact").json_schema)
    for node in schema["properties"].values():
        node.pop("x-grounded", None)
    return schema


def absent(value: dict[str, Any], document: str) -> tuple[int, int]:
    """(string values not in the document, string values in all)."""
    strings = [v for v in value.values() if isinstance(v, str) and v.strip()]
    return sum(locate(v, document) is None for v in strings), len(strings)


def invented(ex: Extractor, messages: tuple[str, ...]) -> list[tuple[str, int, int, int, float]]:
    rows = []
    for name, schema in (("no marks", ungrounded_schema()), ("x-grounded", "contact")):
        missing = filled = failed = 0
        started = time.perf_counter()
        for message in messages:
            try:
                value = ex.extract(message, schema=schema).value
            except ExtractionFailed:
                failed += 1
                continue
            miss, count = absent(value, message)
            missing, filled = missing + miss, filled + count
        rows.append((name, filled, missing, failed, time.perf_counter() - started))
    return rows


def long_documents(ex: Extractor, messages: tuple[str, ...]) -> dict[str, Any]:
    same = refused = pieces = failed = fields_same = fields = 0
    seconds = 0.0
    for message in messages:
        padded = message + PADDING * (LONG_CHARS // len(PADDING))
        try:
            ex.extract(padded, schema=SENDER)
        except DocumentTooLong:
            refused += 1
        started = time.perf_counter()
        try:
            short = ex.extract(message, schema=SENDER).value
            long = ex.extract(padded, schema=SENDER, chunk="auto")
        except ExtractionFailed:
            failed += 1
            continue
        finally:
            seconds += time.perf_counter() - started
        pieces += long.chunks
        same += long.value == short
        fields += len(short)
        fields_same += sum(long.value.get(k) == v for k, v in short.items())
    return {
        "documents": len(messages),
        "refused without chunk": refused,
        "chunks": pieces,
        "same values as the short message": same,
        "fields equal to the short message's": f"{fields_same} of {fields}",
        "failed (short or long)": failed,
        "seconds per document (short + long)": round(seconds / max(len(messages), 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--long", type=int, default=5)
    parser.add_argument("--long-only", action="store_true", help="Skip part 1.")
    args = parser.parse_args()
    with (
        serve(LlamaEngine()) as server,
        Extractor(DEFAULT_LOCAL_MODEL, host=server.url, options=OPTIONS) as ex,
    ):
        if not args.long_only:
            print(f"contact schema, {args.messages} support messages, SmolLM2-135M, temperature 0")
            print("| schema | string values | absent from the message | failed | seconds |")
            print("|---|---|---|---|---|")
            for name, filled, missing, failed, seconds in invented(ex, MESSAGES[: args.messages]):
                print(f"| {name} | {filled} | {missing} | {failed} | {seconds:.0f} |")
            print()
        report = long_documents(ex, MESSAGES[: args.long])
        print(f"long documents (~{LONG_CHARS} characters each):")
        for key, value in report.items():
            print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
