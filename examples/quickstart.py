"""Quickstart: label a few texts with a bundled schema.

    ollama pull llama3.2 && python examples/quickstart.py
(EXTRACT_MODEL and OLLAMA_HOST choose another model or server.)
"""

import os

from extract import Extractor

REVIEWS = [
    "Battery lasts two days and the screen is gorgeous. Best phone I've owned.",
    "Arrived late, the box was crushed and support never answered.",
]

with Extractor(os.environ.get("EXTRACT_MODEL", "llama3.2")) as ex:
    for review in REVIEWS:
        result = ex.extract(review, schema="sentiment")
        print(result.value["sentiment"], "-", result.value["evidence"])
        print(f"  {len(result.attempts)} attempt(s), {result.usage.eval_count} tokens")
