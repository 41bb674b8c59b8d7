"""The extraction core end to end on a real model: SmolLM2-135M via the llama.cpp engine.

These tests assert what the library guarantees whatever the model's numerics (which differ
between llama.cpp builds and CPUs): every call ends in a value the schema accepts, with its
grounded strings found in the document, or in ExtractionFailed carrying one typed output error
per attempt. Whether a 135M model gets a given document right is measured in bench/, not
asserted here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from extract import Extraction, ExtractionFailed, Extractor, OutputError, Schema
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

pytestmark = pytest.mark.real_model

MAX_ATTEMPTS = 4


class Person(BaseModel):
    name: str
    age: int
    city: str


class Review(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]


@pytest.fixture(scope="module")
def ex() -> Iterator[Extractor]:
    with (
        serve(LlamaEngine()) as srv,
        Extractor(
            DEFAULT_LOCAL_MODEL,
            host=srv.url,
            options={"temperature": 0, "seed": 1},
            max_attempts=MAX_ATTEMPTS,
        ) as extractor,
    ):
        yield extractor


def outcome(ex: Extractor, text: str, schema: Any, **options: Any) -> Extraction[Any] | None:
    """The call's result, checked against what the library guarantees; None when it failed
    (after checking the failure is a typed one that used every attempt)."""
    failed: ExtractionFailed | None = None
    try:
        result = ex.extract(text, schema=schema, **options)
    except ExtractionFailed as exc:
        failed = exc
    if failed is not None:
        assert len(failed.attempts) == MAX_ATTEMPTS
        assert all(isinstance(a.error, OutputError) for a in failed.attempts)
        assert [a.number for a in failed.attempts] == list(range(1, MAX_ATTEMPTS + 1))
        assert failed.last_error is failed.attempts[-1].error
        return None
    assert 1 <= len(result.attempts) <= MAX_ATTEMPTS
    assert result.attempts[-1].ok
    assert not any(a.ok for a in result.attempts[:-1])
    assert (result.usage.eval_count or 0) > 0
    loaded = Schema.load(schema)
    data = (
        result.value.model_dump(mode="json")
        if isinstance(result.value, BaseModel)
        else result.value
    )
    loaded.validate(data)  # raises when the value breaks the schema
    assert all(0 <= s.start < s.end <= len(text) for s in result.spans)
    _, missing = loaded.ground(data, text)
    assert missing == []
    return result


@pytest.mark.parametrize("mode", ["auto", "schema", "json"])
def test_pydantic_model(ex: Extractor, mode: Literal["auto", "schema", "json"]) -> None:
    result = outcome(ex, "Maria Lopez is 42 years old and lives in Madrid.", Person, format=mode)
    if result is not None:
        assert isinstance(result.value, Person)
        assert (result.usage.tokens_per_second or 0) > 0


@pytest.mark.parametrize("mode", ["auto", "schema", "json"])
def test_bundled_schema(ex: Extractor, mode: Literal["auto", "schema", "json"]) -> None:
    text = "Terrible service, the package arrived broken and nobody answered my emails."
    result = outcome(ex, text, "sentiment", format=mode)
    if result is not None:
        assert result.value["sentiment"] in ("positive", "negative", "neutral", "mixed")


def test_a_choice_under_the_schema_grammar_is_one_of_its_options(ex: Extractor) -> None:
    result = outcome(ex, "I adore this phone, best purchase this year.", Review, format="schema")
    if result is not None:
        assert result.value.sentiment in ("positive", "negative", "neutral")
        assert 0 < result.confidence["$.sentiment"] <= 1
