"""Confidence of choice fields from scripted token log-probabilities (Ollama's shape)."""

from __future__ import annotations

import enum
import math
from typing import Any, Literal

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.core.choices import options_at
from extract.core.confidence import confidences, field_key, score_choices
from extract.core.json_spans import scalar_spans
from extract.core.schema import Schema
from extract.core.wire import TokenLogprob

TICKET = Schema.load(
    {
        "type": "object",
        "properties": {
            "category": {"enum": ["billing", "feature_request", "feature_flag"]},
            "urgent": {"type": "boolean"},
            "note": {"type": "string"},
        },
        "required": ["category", "urgent", "note"],
    }
)


def tok(token: str, logprob: float = -0.01, *top: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(token, logprob, tuple(TokenLogprob(t, lp) for t, lp in top))


def reply(*tokens: TokenLogprob) -> tuple[str, tuple[TokenLogprob, ...]]:
    return "".join(t.token for t in tokens), tokens


def p(*logprobs: float) -> list[float]:
    """Probabilities renormalised over the given log-probabilities."""
    total = sum(math.exp(lp) for lp in logprobs)
    return [math.exp(lp) / total for lp in logprobs]


def test_one_token_options_are_renormalised_over_the_options() -> None:
    schema = Schema.load({"enum": ["positive", "negative"]})
    text, tokens = reply(
        tok('"', -0.1, ('"', -0.1), ("The", -2.0)),
        tok("positive", -0.5, ("positive", -0.5), ("Positive", -1.0), ("negative", -1.5)),
        tok('"', -0.01),
    )
    scores = score_choices(schema, text, tokens)["$"]
    assert scores.options == ("positive", "negative")
    # "Positive" fits no option (the grammar forbids it): it is left out, not counted for either.
    assert scores.confidence == pytest.approx(p(-0.5, -1.5)[0])
    assert [math.exp(lp) for lp in scores.logprobs] == pytest.approx(p(-0.5, -1.5))


def test_shared_prefix_is_decided_where_the_options_part() -> None:
    text, tokens = reply(
        tok('{"'),
        tok("category"),
        tok('":'),
        tok(' "', -0.01, (' "', -0.01), ('"', -3.0)),  # the quote alone says nothing
        tok("feature", -0.3, ("feature", -0.3), ("b", -1.6), ("fe", -2.0), ("billing", -9.0)),
        tok("_request", -0.2, ("_request", -0.2), ("_flag", -1.8), ("_req", -2.5)),
        tok('",'),
        tok(' "urgent": false, "note": "x"}'),
    )
    scores = score_choices(TICKET, text, tokens)["$.category"]
    billing = math.exp(-1.6) + math.exp(-9.0)  # "b" and "billing" both start it
    feature = math.exp(-0.3) + math.exp(-2.0)  # "fe" starts both feature options
    at_first = billing + feature
    request = math.exp(-0.2) + math.exp(-2.5)
    at_second = request + math.exp(-1.8)
    expected = [
        billing / at_first,
        feature / at_first * request / at_second,
        feature / at_first * math.exp(-1.8) / at_second,
    ]
    assert [math.exp(lp) for lp in scores.logprobs] == pytest.approx(expected)
    assert scores.chosen == 1
    assert scores.confidence == pytest.approx(expected[1])


def test_a_token_may_hold_the_quote_with_the_value_or_the_value_with_the_quote() -> None:
    text, tokens = reply(
        tok('{"category":'),
        tok(' "b', -0.2, (' "b', -0.2), (' "fe', -1.2), (' "', -2.0), ('"b', -3.0)),
        tok('illing",', -0.01),
        tok(' "urgent": true, "note": "x"}'),
    )
    scores = score_choices(TICKET, text, tokens)["$.category"]
    # ' "fe' could start either feature option: it is shared evenly between them.
    billing = math.exp(-0.2) + math.exp(-3.0)
    expected = [billing, math.exp(-1.2) / 2, math.exp(-1.2) / 2]
    total = sum(expected)
    assert [math.exp(lp) for lp in scores.logprobs] == pytest.approx([e / total for e in expected])


def test_booleans_are_unquoted() -> None:
    text, tokens = reply(
        tok('{"category": "billing", "urgent":'),
        tok(" false", -0.7, (" false", -0.7), (" true", -1.1), (' "', -0.5), (" ", -2.0)),
        tok(', "note": "x"}'),
    )
    scores = score_choices(TICKET, text, tokens)
    assert "$.category" not in scores  # its tokens carry no alternatives
    urgent = scores["$.urgent"]
    assert urgent.options == (True, False)
    assert urgent.chosen == 1
    assert urgent.confidence == pytest.approx(p(-1.1, -0.7)[1])


def test_an_option_missing_from_the_list_gets_the_lowest_listed_probability() -> None:
    text, tokens = reply(
        tok('{"category": "'),
        tok("billing", -0.05, ("billing", -0.05), ("The", -4.0), ("_", -6.0)),
        tok('", "urgent": true, "note": "x"}'),
    )
    scores = score_choices(TICKET, text, tokens)["$.category"]
    # Both feature options part from billing here, unlisted: each gets at most exp(-6).
    expected = p(-0.05, -6.0, -6.0)
    assert [math.exp(lp) for lp in scores.logprobs] == pytest.approx(expected)


def test_nested_paths_in_arrays() -> None:
    schema = Schema.load(
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"kind": {"enum": ["a", "b"]}},
                        "required": ["kind"],
                    },
                }
            },
            "required": ["items"],
        }
    )
    text, tokens = reply(
        tok('{"items": [{"kind": "'),
        tok("a", -0.1, ("a", -0.1), ("b", -2.4)),
        tok('"}, {"kind": "'),
        tok("b", -0.3, ("a", -1.4), ("b", -0.3)),
        tok('"}]}'),
    )
    scores = score_choices(schema, text, tokens)
    assert set(scores) == {"$.items[0].kind", "$.items[1].kind"}
    assert scores["$.items[1].kind"].confidence == pytest.approx(p(-1.4, -0.3)[1])
    assert scores["$.items[1].kind"].key == "$.items[].kind"
    assert field_key(("a", 0, "b c", 12)) == "$.a[]['b c'][]"


def test_nothing_to_score_is_no_error() -> None:
    text, tokens = reply(
        tok('{"category": "'), tok("billing"), tok('", "urgent": true, "note": "x"}')
    )
    assert score_choices(TICKET, text, None) == {}
    assert score_choices(TICKET, text, ()) == {}
    assert score_choices(TICKET, text, tokens) == {}  # no alternatives listed
    listed = (tok('{"category": "'), tok("billing", -0.1, ("billing", -0.1), ("feature", -3.0)))
    rest = tok('", "urgent": true, "note": "x"}')
    assert "$.category" in confidences(TICKET, text, (*listed, rest))
    # Tokens that do not spell the text (a repaired reply, a split character): no scores.
    assert score_choices(TICKET, text.replace("{", "{ "), (*listed, rest)) == {}
    assert score_choices(TICKET, text, (tok('{"category": "'), tok("bi\ufffd"), rest)) == {}
    assert score_choices(TICKET, "not json", (*listed, rest)) == {}


def test_fields_scored_before_the_tokens_stop_lining_up_are_kept() -> None:
    text, tokens = reply(
        tok('{"category": "'),
        tok("billing", -0.1, ("billing", -0.1), ("feature", -3.0)),
        tok('", "urgent": true, "note": "'),
        tok("\ufffd"),  # half of a character: the text says "é"
        tok('"}'),
    )
    text = text.replace("\ufffd", "é")
    assert set(score_choices(TICKET, text, tokens)) == {"$.category"}


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Shirt(pydantic.BaseModel):
    colour: Colour
    size: Literal["s", "m"] | None
    fit: Literal["slim"]


@pytest.mark.parametrize(
    ("schema", "parts", "options"),
    [
        (Shirt, ("colour",), ("red", "blue")),  # an Enum class: a $ref to its enum
        (Shirt, ("size",), ("s", "m", None)),  # Optional: null is an option
        (Shirt, ("fit",), None),  # one option is no choice
        ({"oneOf": [{"const": 1}, {"const": True}]}, (), (1, True)),
        ({"type": ["boolean", "null"]}, (), (True, False, None)),
        ({"type": "integer", "enum": [1, 2.0, 2.5, "x"]}, (), (1, 2.0)),
        ({"anyOf": [{"enum": ["a"]}, {"type": "string"}]}, (), None),
        ({"type": "string"}, (), None),
        ({"prefixItems": [{"type": "string"}, {"type": "boolean"}]}, (1,), (True, False)),
        ({"additionalProperties": {"enum": ["x", "y"]}}, ("any key",), ("x", "y")),
    ],
)
def test_what_counts_as_a_choice(schema: Any, parts: tuple[Any, ...], options: Any) -> None:
    assert options_at(Schema.load(schema).index, parts) == options


def test_optional_choice_weighs_null_against_the_quote() -> None:
    schema = Schema.load(Shirt)
    text, tokens = reply(
        tok('{"colour": "red", "size":'),
        tok(' "', -0.2, (' "', -0.2), (" null", -1.7)),
        tok("m", -0.4, ("m", -0.4), ("s", -1.2)),
        tok('", "fit": "slim"}'),
    )
    size = score_choices(schema, text, tokens)["$.size"]
    quote, null = p(-0.2, -1.7)
    m, s = p(-0.4, -1.2)
    assert [math.exp(lp) for lp in size.logprobs] == pytest.approx([quote * s, quote * m, null])


@given(
    st.lists(
        st.sampled_from(["alpha", "alps", "beta", "al", "b"]), min_size=2, max_size=5, unique=True
    ),
    st.data(),
)
def test_scores_are_a_distribution_however_the_reply_is_cut(options: list[str], data: Any) -> None:
    schema = Schema.load({"enum": options})
    chosen = data.draw(st.sampled_from(options))
    text = f'"{chosen}"'
    cuts = sorted(data.draw(st.sets(st.integers(1, len(text) - 1), max_size=4)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    tokens = []
    for piece in pieces:
        at = "".join(t.token for t in tokens)
        rivals = [f'"{o}"'[len(at) :][: len(piece)] for o in options if f'"{o}"'.startswith(at)]
        top = [(r, -float(data.draw(st.integers(0, 8)))) for r in rivals if r]
        tokens.append(tok(piece, -0.5, *top))
    scores = score_choices(schema, text, tokens)["$"]
    assert sum(math.exp(lp) for lp in scores.logprobs) == pytest.approx(1.0)
    assert scores.options[scores.chosen] == chosen
    assert 0 < scores.confidence <= 1


def test_spans_map_each_scalar_to_its_text() -> None:
    text = ' {"a": [true, null, -1.5e3], "b\\"": {"c": "x\\u00e9"}} trailing'
    spans = scalar_spans(text)
    assert spans is not None
    assert [(s.parts, s.value, text[s.start : s.end]) for s in spans] == [
        (("a", 0), True, "true"),
        (("a", 1), None, "null"),
        (("a", 2), -1500.0, "-1.5e3"),
        (('b"', "c"), "xé", '"x\\u00e9"'),
    ]
    for bad in ("", "{", '{"a" 1}', "[1 2]", "tru", '{"a": 1,}', "[" * 300 + "]" * 300):
        assert scalar_spans(bad) is None
