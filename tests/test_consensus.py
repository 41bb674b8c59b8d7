"""Self-consistency: the majority value of several sampled replies, field by field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.core.consensus import vote
from extract.errors import ConfigError


def test_objects_are_voted_key_by_key() -> None:
    samples = [
        {"category": "billing", "priority": "low", "tags": ["a", "b"]},
        {"category": "technical", "priority": "high", "tags": ["a", "b"]},
        {"category": "billing", "priority": "high", "tags": ["b", "a"]},
    ]
    result = vote(samples)
    assert result.value == {"category": "billing", "priority": "high", "tags": ["a", "b"]}
    assert result.agreement == {
        "$.category": pytest.approx(2 / 3),
        "$.priority": pytest.approx(2 / 3),
        "$.tags": pytest.approx(2 / 3),  # a list is one ballot: its order counts
    }


def test_ties_go_to_the_value_seen_first() -> None:
    assert vote(["b", "a", "a", "b"]).value == "b"
    assert vote([{"x": 2}, {"x": 1}]).value == {"x": 2}
    assert vote(["b", "a", "a", "b"]).agreement == {"$": 0.5}


def test_nested_objects_recurse_and_rates_count_every_sample() -> None:
    samples: list[Any] = [
        {"who": {"name": "Ann", "age": 30}},
        {"who": {"name": "Ann", "age": 31}},
        {"who": None},
        {"who": {"name": "Bob", "age": 30}},
    ]
    result = vote(samples)
    assert result.value == {"who": {"name": "Ann", "age": 30}}
    assert result.agreement == {"$.who.name": 0.5, "$.who.age": 0.5}


def test_a_key_most_samples_leave_out_stays_out() -> None:
    result = vote([{"a": 1}, {"a": 1, "note": "x"}, {"a": 1}])
    assert result.value == {"a": 1}
    assert result.agreement == {"$.a": 1.0}


def test_values_of_different_types_never_merge() -> None:
    # 1, 1.0 and true are different JSON, as are "1" and 1.
    result = vote([1, True, "1", True])
    assert result.value is True
    assert result.agreement == {"$": 0.5}


def test_no_samples_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        vote([])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b"]),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=6,
)


@given(st.lists(json_values, min_size=1, max_size=5))
def test_unanimous_samples_give_themselves_back(samples: list[Any]) -> None:
    result = vote([samples[0]] * len(samples))
    assert result.value == samples[0]
    assert all(rate == 1.0 for rate in result.agreement.values())


@given(st.lists(json_values, min_size=1, max_size=5))
def test_agreement_rates_are_shares(samples: list[Any]) -> None:
    for rate in vote(samples).agreement.values():
        assert 0 < rate <= 1
        votes = rate * len(samples)
        assert votes == pytest.approx(round(votes))
