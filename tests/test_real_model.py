"""The extraction core end to end on a real model: SmolLM2-135M via the llama.cpp engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel

from extract import Extractor
from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, serve

pytestmark = pytest.mark.real_model


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
            DEFAULT_LOCAL_MODEL, host=srv.url, options={"temperature": 0, "seed": 1}, max_attempts=4
        ) as extractor,
    ):
        yield extractor


@pytest.mark.parametrize("mode", ["auto", "schema", "json"])
def test_pydantic_model(ex: Extractor, mode: Literal["auto", "schema", "json"]) -> None:
    result = ex.extract(
        "Maria Lopez is 42 years old and lives in Madrid.", schema=Person, format=mode
    )
    assert isinstance(result.value, Person)
    assert (result.usage.eval_count or 0) > 0
    assert (result.usage.tokens_per_second or 0) > 0


@pytest.mark.parametrize("mode", ["auto", "schema", "json"])
def test_bundled_schema(ex: Extractor, mode: Literal["auto", "schema", "json"]) -> None:
    result = ex.extract(
        "Terrible service, the package arrived broken and nobody answered my emails.",
        schema="sentiment",
        format=mode,
    )
    assert result.value["sentiment"] in ("positive", "negative", "neutral", "mixed")
    assert isinstance(result.value["evidence"], str)


def test_schema_grammar_gets_it_first_try(ex: Extractor) -> None:
    result = ex.extract("I adore this phone, best purchase this year.", schema=Review)
    assert len(result.attempts) == 1
    assert result.value.sentiment in ("positive", "negative", "neutral")
