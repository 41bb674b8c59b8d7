"""Which value a reply gives: the outer value the reply opened, never a part of it; the
largest complete one without a schema; the first one that validates with a schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Scripted
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from extract import ExtractionFailed, Extractor, InvalidJSON, Schema, SchemaMismatch
from extract.core.decode import candidates, decode
from extract.core.flow import AttemptFlow
from extract.core.wire import GenerateResult
from extract.server import Reply


class Person(BaseModel):
    name: str
    manager: Person | None = None


NAMED = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": [1, 2], "b": 3', {"a": [1, 2]}),
        ('{"name": "x", "address": {"city": "y"}', {"name": "x", "address": {"city": "y"}}),
        ('[{"a":1},{"a":2},{"a"', [{"a": 1}, {"a": 2}]),
        ('See [1]. {"a": 1}', {"a": 1}),
    ],
)
def test_an_unclosed_reply_gives_its_outer_value_not_an_inner_one(text: str, value: Any) -> None:
    assert decode(text) == value


def test_a_value_inside_an_unclosed_one_is_never_offered() -> None:
    offered = [value for value, _stage in candidates('{"a": [1, 2], "b": {"c": 3}, "d": 4')]
    assert offered == [{"a": [1, 2], "b": {"c": 3}}]


@pytest.mark.parametrize(
    "text",
    [
        'Here is the data (see [note below): {"a": 1}',  # the [ is never closed
        'Sure {see {"a": 1}',
    ],
)
def test_a_value_inside_an_unclosed_bracket_in_prose_is_not_promoted(text: str) -> None:
    # json_repair reads these as ["note below): {", "a", 1] and {"a": 1}: values moved out of
    # the container they came in are not trusted, so nothing is left.
    with pytest.raises(InvalidJSON):
        decode(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('See [1]. {"a": 1}', {"a": 1}),
        ('{"a": 1} and [1, 2, 3, 4, 5]', [1, 2, 3, 4, 5]),
        ('{"a": 1}\n{"b": 2}', {"a": 1}),  # as large: the first
        ('[1, 2, 3, 4]\n```json\n{"a": 1}\n```', {"a": 1}),  # what the fence holds comes first
        ('{"big": [1, 2, 3]} and {"cut": ', {"big": [1, 2, 3]}),  # complete before repaired
    ],
)
def test_without_a_schema_the_largest_complete_value_wins(text: str, value: Any) -> None:
    assert decode(text) == value


def flow(schema: Schema) -> AttemptFlow:
    return AttemptFlow(
        schema=schema, request={"model": "tiny", "prompt": "p"}, max_attempts=1, host="h"
    )


def test_the_first_value_that_validates_is_taken() -> None:
    text = 'Example: {"title": "x", "tags": [1, 2]}. Answer: {"name": "Ann"}'
    assert decode(text) == {"title": "x", "tags": [1, 2]}
    result = flow(Schema(NAMED)).record(GenerateResult(text, done_reason="stop"))
    assert result is not None
    assert result.value == {"name": "Ann"}


def test_when_none_validates_the_best_ones_error_is_reported() -> None:
    text = 'See [1]. {"name": 5}'
    with pytest.raises(ExtractionFailed) as caught:
        flow(Schema(NAMED)).record(GenerateResult(text, done_reason="stop"))
    error = caught.value.last_error
    assert isinstance(error, SchemaMismatch)
    assert error.path == "$.name"


def test_a_value_inside_a_complete_one_is_not_a_candidate() -> None:
    text = 'Result: {"wrapper": {"name": "Ann"}} ok'
    with pytest.raises(ExtractionFailed):
        flow(Schema(NAMED)).record(GenerateResult(text, done_reason="stop"))


LEAVES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
# Containers the schema refuses: arrays, and objects without a name.
DECOYS = st.lists(LEAVES, max_size=3) | st.dictionaries(
    st.text(max_size=4).filter(lambda key: key != "name"), LEAVES, max_size=3
)
PROSE = st.text(alphabet=st.characters(exclude_characters="{}[]`\"'\\"), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(DECOYS, min_size=1, max_size=4), st.text(max_size=30), st.data())
def test_a_candidate_that_validates_is_preferred(
    decoys: list[Any], name: str, data: st.DataObject
) -> None:
    answer = {"name": name}
    values = list(decoys)
    values.insert(data.draw(st.integers(0, len(values)), label="where"), answer)
    text = "".join(data.draw(PROSE) + " " + json.dumps(value) for value in values) + " ."
    result = flow(Schema(NAMED)).record(GenerateResult(text, done_reason="stop"))
    assert result is not None
    assert result.value == answer


def test_a_reply_missing_its_last_brace_keeps_the_outer_person(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted()
    server.engine.script(
        Reply.text('{"name": "Ann", "manager": {"name": "Bob"}', done_reason="stop")
    )
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("Ann reports to Bob.", schema=Person, max_attempts=2)
    assert result.value == Person(name="Ann", manager=Person(name="Bob"))
    assert len(result.attempts) == 1
    assert len(server.generates()) == 1


def test_a_field_that_never_arrived_is_asked_again(scripted: Callable[..., Scripted]) -> None:
    schema = {**NAMED, "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}
    schema["required"] = ["name", "email"]
    server = scripted()
    server.engine.script(
        Reply.text('{"name": "Ann", "email":', done_reason="stop"),
        Reply.text('{"name": "Ann", "email": "ann@example.com"}'),
    )
    with Extractor("tiny", host=server.url) as ex:
        result = ex.extract("Ann, ann@example.com", schema=schema, max_attempts=2)
    assert result.value == {"name": "Ann", "email": "ann@example.com"}
    first, second = result.attempts
    assert isinstance(first.error, SchemaMismatch)
    assert "email" in first.error.message
    assert second.ok
