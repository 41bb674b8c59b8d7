"""AsyncExtractor: several documents at once from asyncio code.

For large batches prefer `extract.Labeling` / `extract label`, which bound the in-flight
requests to what the server can take and write one record per input.
"""

import asyncio
import os

from extract import AsyncExtractor

TICKETS = [
    "I was charged twice for my March invoice, please refund one payment.",
    "The app crashes every time I open the settings page on Android 14.",
    "How do I change the email address on my account?",
]


async def main() -> None:
    async with AsyncExtractor(os.environ.get("EXTRACT_MODEL", "llama3.2")) as aex:
        results = await asyncio.gather(*(aex.extract(t, schema="ticket") for t in TICKETS))
    for ticket, result in zip(TICKETS, results, strict=True):
        print(f"{result.value['category']:>10} {result.value['priority']:>7}  {ticket[:50]}")


asyncio.run(main())
