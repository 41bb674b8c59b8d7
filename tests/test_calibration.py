"""Calibrated choices: the content-free and batch priors, the maths, the write-back, the cache."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.core.calibration import (
    Prior,
    PriorCache,
    RunningPrior,
    calibrate,
    calibrated,
    prior_key,
    replace_at,
)
from extract.core.confidence import ChoiceScores
from extract.core.prompt import build_prompt
from extract.core.schema import Schema


def scores(parts: tuple[str | int, ...], probs: list[float], chosen: int) -> ChoiceScores:
    return ChoiceScores(parts, ("pos", "neg", "neu"), tuple(math.log(x) for x in probs), chosen)


def test_the_prior_is_taken_out_and_renormalised() -> None:
    # The model says "pos" to everything: 0.7 for this document, 0.9 for no document at all.
    reply = scores(("label",), [0.7, 0.2, 0.1], 0)
    prior = Prior.from_scores([scores(("label",), [0.9, 0.05, 0.05], 0)])
    fixed = calibrated(reply, prior)
    assert fixed is not None
    raw = [0.7 / 0.9, 0.2 / 0.05, 0.1 / 0.05]
    assert [math.exp(lp) for lp in fixed.logprobs] == pytest.approx([r / sum(raw) for r in raw])
    assert fixed.chosen == 1
    assert fixed.confidence == pytest.approx(4 / sum(raw))
    assert (fixed.parts, fixed.options) == (reply.parts, reply.options)


def test_a_tie_keeps_the_reply_s_choice() -> None:
    reply = scores(("label",), [0.5, 0.25, 0.25], 2)
    prior = Prior.from_scores([scores(("label",), [0.5, 0.25, 0.25], 0)])
    fixed = calibrated(reply, prior)
    assert fixed is not None
    assert fixed.chosen == 2


def test_a_prior_that_does_not_cover_the_field_changes_nothing() -> None:
    reply = scores(("label",), [0.7, 0.2, 0.1], 0)
    assert calibrated(reply, Prior({})) is None
    assert calibrated(reply, Prior({"$.label": {'"pos"': -0.1}})) is None  # an option missing
    result = calibrate({"label": "pos"}, {"$.label": reply}, Prior({}))
    assert (result.value, result.changed, result.scores) == (
        {"label": "pos"},
        (),
        {"$.label": reply},
    )


def test_the_batch_prior_is_the_mean_log_probability_per_field_key() -> None:
    running = RunningPrior()
    running.add([scores(("items", 0, "kind"), [0.8, 0.1, 0.1], 0)])
    running.add([scores(("items", 3, "kind"), [0.2, 0.4, 0.4], 1), scores(("x",), [1, 1, 1], 0)])
    mean = running.prior().fields["$.items[].kind"]
    assert mean['"pos"'] == pytest.approx((math.log(0.8) + math.log(0.2)) / 2)
    assert mean['"neg"'] == pytest.approx((math.log(0.1) + math.log(0.4)) / 2)
    assert set(running.prior().fields) == {"$.items[].kind", "$.x"}


def test_calibrate_writes_the_new_choice_into_a_copy() -> None:
    value = {"items": [{"kind": "pos", "n": 1}, {"kind": "pos", "n": 2}], "label": "pos"}
    prior = Prior.from_scores([scores(("items", 0, "kind"), [0.9, 0.05, 0.05], 0)])
    found = {
        "$.items[0].kind": scores(("items", 0, "kind"), [0.95, 0.03, 0.02], 0),
        "$.items[1].kind": scores(("items", 1, "kind"), [0.6, 0.1, 0.3], 0),
        "$.label": scores(("label",), [0.6, 0.1, 0.3], 0),  # not in the prior
    }
    result = calibrate(value, found, prior)
    assert result.value == {
        "items": [{"kind": "pos", "n": 1}, {"kind": "neu", "n": 2}],
        "label": "pos",
    }
    assert result.changed == ("$.items[1].kind",)
    assert value["items"][1]["kind"] == "pos"  # the caller's value is left alone
    assert result.value["items"][0] is value["items"][0]  # untouched parts are shared
    assert result.scores["$.items[1].kind"].chosen == 2


def test_replace_at() -> None:
    assert replace_at("a", (), "b") == "b"
    assert replace_at([[0, 1]], (0, 1), None) == [[0, None]]
    with pytest.raises(KeyError):
        replace_at({"a": 1}, ("b",), 2)
    with pytest.raises(IndexError):
        replace_at([1], (3,), 2)
    with pytest.raises(KeyError):
        replace_at({"a": 1}, (0,), 2)


@given(
    st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3),
    st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3),
)
def test_calibrated_scores_are_a_distribution(reply: list[float], lean: list[float]) -> None:
    norm = [x / sum(reply) for x in reply]
    fixed = calibrated(
        scores(("f",), norm, 0),
        Prior.from_scores([scores(("f",), [x / sum(lean) for x in lean], 0)]),
    )
    assert fixed is not None
    assert sum(math.exp(lp) for lp in fixed.logprobs) == pytest.approx(1.0)
    ratios = [r / q for r, q in zip(norm, lean, strict=True)]
    assert ratios[fixed.chosen] == pytest.approx(max(ratios))


def test_the_prior_key_ignores_the_document_only() -> None:
    schema = Schema.load({"enum": ["a", "b"]})
    one = prior_key("m", build_prompt("first text", schema), schema)
    assert one == prior_key("m", build_prompt("N/A", schema), schema)
    assert one != prior_key("m", build_prompt("x", schema, instructions="Other task."), schema)
    assert one != prior_key("other", build_prompt("x", schema), schema)
    with_examples = build_prompt("x", schema, examples=[("an example", "a")])
    assert prior_key("m", with_examples, schema) != one


def test_prior_cache_keeps_the_most_recently_used() -> None:
    cache = PriorCache(size=2)
    a, b, c = (("m", str(i), "f") for i in range(3))
    cache.put(a, Prior({"a": {}}))
    cache.put(b, Prior({"b": {}}))
    assert cache.get(a) == Prior({"a": {}})  # a is now the most recent
    cache.put(c, Prior({"c": {}}))
    assert (cache.get(a), cache.get(b), cache.get(c)) == (
        Prior({"a": {}}),
        None,
        Prior({"c": {}}),
    )
    assert len(cache) == 2
