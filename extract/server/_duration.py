"""Go duration strings (``keep_alive: "5m"``), read as Ollama reads them."""

from __future__ import annotations

import json
import re

from ._engine import Fault

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
}
_DURATION_PART = re.compile(r"(\d*\.?\d*)([^\d.]*)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string, as ``time.ParseDuration`` reads it.

    >>> parse_duration("1m30s")
    90.0
    >>> parse_duration("0")
    0.0
    >>> parse_duration("10")
    Traceback (most recent call last):
    extract.server._engine.Fault: time: missing unit in duration "10"

    Raises:
        Fault: 400 with Go's message for a malformed duration.
    """
    quoted = json.dumps(text)
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise Fault(400, f"time: invalid duration {quoted}")
    total, position = 0.0, 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        number, unit = match.groups() if match else ("", "")
        if number in ("", "."):
            raise Fault(400, f"time: invalid duration {quoted}")
        if not unit:
            raise Fault(400, f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise Fault(400, f"time: unknown unit {json.dumps(unit)} in duration {quoted}")
        total += float(number) * _DURATION_UNITS[unit]
        position += len(number) + len(unit)
    return sign * total
