"""A reply cut short keeps what arrived and nothing else: no filled-in value, no inner value
promoted to the answer, no container that was never sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extract import Schema, SchemaMismatch
from extract.core.decode import decode, decode_with_stage
from extract.errors import EmptyOutput, InvalidJSON

Path = tuple[str | int, ...]


def test_a_key_whose_value_never_arrived_is_dropped_not_filled() -> None:
    value = decode('{"name": "Ann", "email":')
    assert value == {"name": "Ann"}
    schema = Schema(
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
            "required": ["name", "email"],
        }
    )
    with pytest.raises(SchemaMismatch, match="email"):
        schema.validate(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": "x", "b": "unfinish', {"a": "x"}),  # no closing quote
        ('{"a": "x", "n": 12', {"a": "x"}),  # may be the start of 1250
        ('{"a": "x", "n": -0.5e', {"a": "x"}),
        ('{"a": "x", "b": tru', {"a": "x"}),
        ('{"a": "x", "b": true', {"a": "x"}),  # a literal at the very end may be cut too
        ('{"a": "x", "b"', {"a": "x"}),  # a key with no value
        ('{"a": "x", "b":  ', {"a": "x"}),
        ('{"a": "x",', {"a": "x"}),  # a dangling comma
        ('{"a": "x", "b": [', {"a": "x"}),  # an empty container was never sent
        ('{"a": "x", "b": {"c": ', {"a": "x"}),
        ('{"a": "x", "b": {"c": [{"d": ', {"a": "x"}),
        ('{"a": "x", "b": [[1, 2], [3', {"a": "x", "b": [[1, 2]]}),  # members that came, kept
        ('{"a": "x", "b": []', {"a": "x", "b": []}),  # an empty container that was sent
        ('{"a": "x", "n": 12\n', {"a": "x", "n": 12}),  # what follows the number ends it
        ('[1, 2, {"a": ', [1, 2]),
        ('[1, 2, {"a": 3}', [1, 2, {"a": 3}]),
        ('{"a": 1, "b": , "c": 2}', {"a": 1, "c": 2}),  # closed, but b never got a value
        ('{"a": 1, "b": "", "c": }', {"a": 1, "b": ""}),  # the one "" that came vouches once
        ('```json\n{"a": 1, "b": 2\n```\nDone.', {"a": 1, "b": 2}),  # the fence ended it
    ],
)
def test_what_did_not_arrive_is_dropped(text: str, value: Any) -> None:
    assert decode_with_stage(text) == (value, "repair")


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1',
        '{"a": "cut',
        '{"a": [',
        '{"a": {"b": "c',
        "[[[",
        "[tru",
        'Sure! {"summary": "cut off',
        '{"x": NaN, "y": [1, 2]',  # NaN stays refused, cut or not
    ],
)
def test_a_root_left_with_nothing_is_no_value(text: str) -> None:
    with pytest.raises(InvalidJSON) as caught:
        decode(text)
    assert caught.value.raw == text


def test_a_fence_inside_a_string_is_text_not_a_fence() -> None:
    assert decode('x {"note": "``` [1] ```"}') == {"note": "``` [1] ```"}
    assert decode('{"note": "``` [1] ```", "n": 2') == {"note": "``` [1] ```"}


def test_repair_keeps_what_json_repair_does_well() -> None:
    text = "{'name': 'Ann', tags: ['x', 'y',], \"n\": 1,}"
    assert decode_with_stage(text) == ({"name": "Ann", "tags": ["x", "y"], "n": 1}, "repair")


# -- property: a cut never gains a leaf -------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.text(alphabet=st.sampled_from(list("{}[]\",:\\` \n'ae1")), max_size=8)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
CONTAINERS = st.lists(VALUES, max_size=4) | st.dictionaries(st.text(max_size=5), VALUES, max_size=4)
CHATTER = st.sampled_from(["", "Sure: ", "JSON:\n", "Here you go!\n```json\n", "  "])


def leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Each scalar, and each empty container (it was sent as such), with its path."""
    if isinstance(value, dict) and value:
        for key, member in value.items():
            yield from leaves(member, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def at(value: Any, path: Path) -> tuple[bool, Any]:
    """Whether ``value`` has something at ``path``, and what."""
    for step in path:
        if isinstance(value, list):
            present = isinstance(step, int) and step < len(value)
        else:
            present = isinstance(value, dict) and step in value
        if not present:
            return False, None
        value = value[step]
    return True, value


@settings(max_examples=400, deadline=None)
@given(CONTAINERS, st.sampled_from([None, 2]), CHATTER, st.data())
def test_a_cut_reply_never_gains_a_leaf(
    value: Any, indent: int | None, chatter: str, data: st.DataObject
) -> None:
    text = json.dumps(value, indent=indent)
    cut = data.draw(st.integers(0, len(text) - 1), label="cut")
    try:
        found = decode(chatter + text[:cut])
    except (EmptyOutput, InvalidJSON):
        return
    assert type(found) is type(value)  # never an inner value promoted to the root
    for path, leaf in leaves(found):
        assert at(value, path) == (True, leaf), path
        assert type(at(value, path)[1]) is type(leaf)


# No raw newline: a string holding one beside escapes would defeat the spelling check below.
EDITS = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from([*"{}[]\",:' ", "", "tru", "12"])),
    max_size=4,
)


def spelled(leaf: str, text: str) -> bool:
    """Whether the text holds ``leaf`` as a string's contents, escaped or not (in single
    quotes, a double quote needs no escape)."""
    if not leaf:
        return '""' in text or "''" in text
    escaped = {
        json.dumps(leaf)[1:-1],
        json.dumps(leaf, ensure_ascii=False)[1:-1],
        leaf.replace("\\", "\\\\").replace('"', '\\"'),  # control characters left raw
    }
    forms = {leaf} | escaped | {form.replace('\\"', '"') for form in escaped}
    return any(form in text for form in forms)


@settings(max_examples=300, deadline=None)
@given(CONTAINERS, EDITS, st.data())
def test_a_repaired_reply_holds_no_string_it_did_not_spell(
    value: Any, edits: list[tuple[int, str]], data: st.DataObject
) -> None:
    text = json.dumps(value)
    for at_, piece in edits:  # replace one character (or cut there, for "")
        i = at_ % (len(text) + 1)
        text = text[:i] + piece + text[i + 1 :] if piece else text[:i]
    try:
        found, stage = decode_with_stage(text)
    except (EmptyOutput, InvalidJSON):
        return
    if stage == "repair":
        for _path, leaf in leaves(found):
            assert not isinstance(leaf, str) or spelled(leaf, text), leaf
