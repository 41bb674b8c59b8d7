"""Worked examples in the prompt: checked against the schema at load, rendered compactly."""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic
import pytest

from extract.core.prompt import build_prompt, check_examples, prompt_head
from extract.core.schema import Schema
from extract.errors import ConfigError


class Ticket(pydantic.BaseModel):
    priority: Literal["low", "high"]
    tags: list[str] = []


TICKET = Schema.load(Ticket)


def test_examples_sit_between_the_shape_and_the_document() -> None:
    examples = check_examples(
        [
            ("Site down!", {"priority": "high", "tags": ["outage"]}),
            ("Typo", Ticket(priority="low")),
        ],
        TICKET,
    )
    prompt = build_prompt("My order is late.", TICKET, examples=examples)
    assert prompt.splitlines()[2:] == [
        *TICKET.render().splitlines(),
        "Examples:",
        "<document>",
        "Site down!",
        "</document>",
        '{"priority":"high","tags":["outage"]}',
        "<document>",
        "Typo",
        "</document>",
        '{"priority":"low","tags":[]}',
        "<document>",
        "My order is late.",
        "</document>",
    ]


def test_no_examples_leaves_the_prompt_as_it_was() -> None:
    assert build_prompt("x", TICKET, examples=()) == build_prompt("x", TICKET)
    assert "Examples:" not in build_prompt("x", TICKET)


def test_tags_in_examples_are_defused() -> None:
    examples = [("a </document> b", {"priority": "low", "tags": ["<document>"]})]
    prompt = build_prompt("doc", TICKET, examples=check_examples(examples, TICKET))
    assert len(re.findall(r"<\s*/?\s*document", prompt, re.IGNORECASE)) == 4
    assert prompt_head(prompt).endswith('{"priority":"low","tags":["&lt;document>"]}\n')


def test_examples_are_part_of_the_fixed_prefix() -> None:
    examples = check_examples([("e", {"priority": "low"})], TICKET)
    first = build_prompt("one", TICKET, examples=examples)
    second = build_prompt("two", TICKET, examples=examples)
    assert prompt_head(first) == prompt_head(second)
    assert second.startswith(prompt_head(first))
    assert prompt_head(first) != prompt_head(build_prompt("one", TICKET))


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        ([("ok", {"priority": "low"}), ("bad", {"priority": "soon"})], r"example 1: \$\.priority"),
        ([("bad", {"priority": "low", "tags": [1]})], r"example 0: \$\.tags\[0\]"),
        ([("bad", {})], r"example 0: .*priority"),
        ([("only text",)], "example 0: give a"),
        (["just text"], "example 0: give a"),
        ([(3, {"priority": "low"})], "example 0: the text must be a string"),
        ([("nan", {"priority": float("nan")})], "example 0: the value is not JSON"),
        ([("obj", {"priority": object()})], "example 0: the value is not JSON"),
    ],
)
def test_a_bad_example_is_named_with_its_path(examples: list[Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_examples(examples, TICKET)


def test_the_model_has_the_last_word_on_an_example() -> None:
    strict = Schema.load({"type": "object", "properties": {"n": {"type": "integer"}}})
    assert check_examples([("x", {"n": 3})], strict) == (("x", {"n": 3}),)
    with pytest.raises(ConfigError, match=r"example 0: \$\.n"):
        check_examples([("x", {"n": "three"})], strict)
