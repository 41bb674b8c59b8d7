"""Reply text → JSON value: strict, lenient, repair, and nothing but the two output errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extract.core.decode import decode, decode_with_stage
from extract.errors import EmptyOutput, InvalidJSON


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2]\n", [1, 2]),
        ('"positive"', "positive"),
        ("42", 42),
        ("null", None),
        ('{"s": "caf\\u00e9 \\"quoted\\""}', {"s": 'café "quoted"'}),
    ],
)
def test_strict_json_is_read_as_is(text: str, value: Any) -> None:
    assert decode_with_stage(text) == (value, "strict")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('JSON: {"name": "Ada"} This is the answer.', {"name": "Ada"}),
        ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ('Here you go:\n```\n["x", "y"]\n```\nAnything else?', ["x", "y"]),
        ('```json\n"positive"\n```', "positive"),
        ('Use {braces} wisely. {"ok": true}', {"ok": True}),
        ('{"a": 1}\n{"b": 2}', {"a": 1}),
        ('{"a": 1} trailing } junk', {"a": 1}),
    ],
)
def test_lenient_finds_a_complete_value_in_chatter(text: str, value: Any) -> None:
    assert decode_with_stage(text) == (value, "lenient")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"name": "Ada", "tags": ["x", "y",', {"name": "Ada", "tags": ["x", "y"]}),
        ('{"a": 1, "b": 2,}', {"a": 1, "b": 2}),
        ("{'a': 'single quotes'}", {"a": "single quotes"}),
        ('Sure! {"summary": "done", "note": "cut off', {"summary": "done"}),
        ("[1, 2, 3", [1, 2]),  # the 3 may be the start of 30
        ("[1, 2, 3\n", [1, 2, 3]),
    ],
)
def test_repair_fixes_broken_or_cut_replies(text: str, value: Any) -> None:
    assert decode_with_stage(text) == (value, "repair")


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n"])
def test_blank_reply_is_empty_output(text: str) -> None:
    with pytest.raises(EmptyOutput) as caught:
        decode(text)
    assert caught.value.raw == text


@pytest.mark.parametrize(
    "text",
    [
        "I cannot help with that.",
        "True",
        "{",  # repair would say {}: an empty container is not a recovered value
        "[",
        'Sure! {"summary": "cut off',  # a string whose closing quote never came did not arrive
        "}{",
        "positive",
    ],
)
def test_no_json_is_invalid_json_with_the_raw_text(text: str) -> None:
    with pytest.raises(InvalidJSON) as caught:
        decode(text)
    assert caught.value.raw == text
    assert "no JSON value" in caught.value.message


def test_deep_nesting_is_invalid_json_not_a_recursion_error() -> None:
    with pytest.raises(InvalidJSON):
        decode("[" * 100_000)


def test_deeply_nested_but_closed_value_never_escapes_as_recursion_error() -> None:
    text = "[" * 5000 + "]" * 5000
    try:
        value = decode(text)
    except InvalidJSON:
        return
    assert isinstance(value, list)


def _mutations(draw: st.DrawFn) -> str:
    value = draw(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            ),
            max_leaves=8,
        )
    )
    text = json.dumps(value)
    for _ in range(draw(st.integers(0, 4))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        action = draw(st.sampled_from(["cut", "drop", "insert", "dup"]))
        if action == "cut":
            text = text[:at]
        elif action == "drop":
            text = text[:at] + text[at + 1 :]
        elif action == "insert":
            text = text[:at] + draw(st.sampled_from(list('{}[]",:\\ \nabc0'))) + text[at:]
        else:
            text = text[:at] + text[at:] * 2
    prefix = draw(st.sampled_from(["", "JSON: ", "```json\n", "Sure! "]))
    return prefix + text


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_arbitrary_text_only_raises_output_errors(text: str) -> None:
    raw = None
    try:
        json.dumps(decode(text))  # whatever comes back is a JSON value
    except (EmptyOutput, InvalidJSON) as exc:
        raw = exc.raw
    assert raw in (None, text)


@settings(max_examples=200, deadline=None)
@given(st.composite(_mutations)())
def test_mutated_json_only_raises_output_errors(text: str) -> None:
    try:
        value, stage = decode_with_stage(text)
    except (EmptyOutput, InvalidJSON):
        return
    assert stage in ("strict", "lenient", "repair")
    json.dumps(value)  # whatever comes back is a JSON value


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_valid_json_round_trips_strictly(value: Any) -> None:
    assert decode_with_stage(json.dumps(value)) == (value, "strict")


@pytest.mark.parametrize(
    "text", ["NaN", '{"x": Infinity}', "[-Infinity]", '```json\n{"x": NaN}\n```']
)
def test_non_finite_numbers_are_not_json(text: str) -> None:
    with pytest.raises(InvalidJSON):
        decode(text)
