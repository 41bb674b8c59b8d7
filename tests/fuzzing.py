"""Hypothesis settings and strategies shared by the fuzz tests (``test_fuzz*``)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None)
FEW = settings(max_examples=50, deadline=None, derandomize=True, database=None)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
JSONISH = st.text(alphabet=st.sampled_from(list("{}[]\",:\\ \n\t-.0123456789eEtrufalsn`'abc")))
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "replace", "truncate", "double"]),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from([*"{}[]\",:\\ \n0a-.eE'", "```", "```json\n", "NaN", "null", "//"]),
    ),
    max_size=4,
)


def mutate(text: str, edits: list[tuple[str, int, str]]) -> str:
    """Apply edits (at positions taken modulo the text's length) to ``text``."""
    for op, at, piece in edits:
        i = at % (len(text) + 1)
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "replace":
            text = text[:i] + piece + text[i + len(piece) :]
        elif op == "truncate":
            text = text[:i]
        else:
            text = text[:i] + text[i:] + text[i:]
    return text


def is_json_data(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
