"""The stream guard: whitespace floods, size cap, token loops; verdicts independent of chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extract.core.guard import JSON_WHITESPACE, StreamGuard
from extract.errors import ConfigError, RunawayOutput


def feed_all(guard: StreamGuard, chunks: list[str]) -> RunawayOutput | None:
    """Feed every chunk; the error the guard raised, if any."""
    try:
        for chunk in chunks:
            guard.feed(chunk)
    except RunawayOutput as exc:
        return exc
    return None


def reference_verdict(
    text: str, *, max_chars: int, max_ws: int, repeats: int, unit: int, loop_chars: int
) -> bool:
    """The rules, written the slow and obvious way over the whole text."""
    if len(text) > max_chars:
        return True
    in_string = escaped = False
    run = 0
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string, run = True, 0
        elif ch in JSON_WHITESPACE:
            run += 1
            if run > max_ws:
                return True
        else:
            run = 0
    for p in range(1, unit + 1):
        equal = 0
        for i in range(p, len(text)):
            equal = equal + 1 if text[i] == text[i - p] else 0
            if equal >= max(repeats * p, loop_chars) and text[i - p + 1 : i + 1].strip(
                JSON_WHITESPACE
            ):
                return True
    return False


def test_plain_json_passes_and_text_is_kept() -> None:
    guard = StreamGuard()
    reply = '{"name": "Ada Lovelace", "tags": ["math", "poetry"], "age": 36}'
    assert feed_all(guard, [reply[i : i + 3] for i in range(0, len(reply), 3)]) is None
    assert guard.text == reply


def test_whitespace_flood_outside_strings_is_runaway() -> None:
    guard = StreamGuard(max_whitespace_run=10)
    error = feed_all(guard, ['{"a": 1,', *[" "] * 5, "\n" * 6])
    assert error is not None
    assert "whitespace" in error.message
    assert error.raw == '{"a": 1,' + " " * 5 + "\n" * 6


def test_rules_see_the_short_head_once_the_reply_grows_past_it() -> None:
    # A reply shorter than both rules' reach is not scanned; once it grows past that, the run
    # that began in the unscanned head still counts, and so does the string state there.
    guard = StreamGuard(max_whitespace_run=10, max_loop_chars=50)
    error = feed_all(guard, ['{"a": 1,', " " * 6, " " * 6])
    assert error is not None
    assert "whitespace" in error.message
    quiet = StreamGuard(max_whitespace_run=10, max_loop_chars=50)
    assert feed_all(quiet, ['{"a": "', " " * 6, " " * 6, '"}']) is None


def test_whitespace_at_the_limit_passes() -> None:
    guard = StreamGuard(max_whitespace_run=10)
    assert feed_all(guard, ["{", " " * 10, '"a": 1}']) is None


def test_whitespace_inside_strings_is_fine() -> None:
    guard = StreamGuard(max_whitespace_run=10)
    assert feed_all(guard, ['{"a": "', " " * 500, "\n" * 50, '"}']) is None


def test_escaped_quote_split_across_chunks_keeps_string_state() -> None:
    guard = StreamGuard(max_whitespace_run=10)
    # The quote after the backslash is escaped: the spaces are still inside the string.
    assert feed_all(guard, ['{"a": "x\\', '" ' + " " * 30, '"}']) is None
    guard = StreamGuard(max_whitespace_run=10)
    # Here the backslash is itself escaped, so the quote closes the string.
    assert feed_all(guard, ['{"a": "x\\\\', '"' + " " * 30]) is not None


def test_size_cap() -> None:
    guard = StreamGuard(max_chars=10)
    guard.feed("0123456789")
    with pytest.raises(RunawayOutput, match="10 characters") as caught:
        guard.feed("x")
    assert caught.value.raw == "0123456789x"


def test_token_loop_is_runaway() -> None:
    guard = StreamGuard()
    error = feed_all(guard, ['{"summary": "'] + ["the cat "] * 45)
    assert error is not None
    assert "repeats" in error.message


def test_repeats_up_to_the_limit_pass() -> None:
    guard = StreamGuard(max_repeats=4, max_loop_chars=1)
    assert feed_all(guard, ["ab" * 4, "c"]) is None
    assert feed_all(StreamGuard(max_repeats=4, max_loop_chars=1), ["ab" * 5]) is not None


def test_a_loop_of_a_long_unit_is_cut_as_soon_as_a_short_one() -> None:
    # A small model looping on a name: caught within about 120 characters, not 40 repeats.
    error = feed_all(StreamGuard(), ['{"name": "', *["PriyaRaman/"] * 40])
    assert error is not None
    assert len(error.raw) < 180
    assert "'PriyaRaman/'" in error.message


def test_a_line_of_dashes_is_not_a_loop() -> None:
    assert feed_all(StreamGuard(), ['{"note": "', "-" * 100, '"}']) is None
    assert feed_all(StreamGuard(), ['{"note": "', "-" * 130, '"}']) is not None


def test_whitespace_only_units_are_left_to_the_whitespace_rule() -> None:
    guard = StreamGuard(max_repeats=3, max_whitespace_run=100, max_loop_chars=1)
    assert feed_all(guard, ["{", " \n" * 40, '"a": 1}']) is None


def test_units_longer_than_max_unit_are_not_loops() -> None:
    assert feed_all(StreamGuard(max_repeats=2, max_unit=3, max_loop_chars=1), ["abcd" * 5]) is None
    assert (
        feed_all(StreamGuard(max_repeats=2, max_unit=4, max_loop_chars=1), ["abcd" * 5]) is not None
    )


def test_a_failed_guard_keeps_failing() -> None:
    guard = StreamGuard(max_chars=3)
    with pytest.raises(RunawayOutput):
        guard.feed("abcd")
    with pytest.raises(RunawayOutput):
        guard.feed("")
    assert guard.text == "abcd"


def test_empty_deltas_are_ignored() -> None:
    guard = StreamGuard()
    guard.feed("")
    guard.feed("{}")
    guard.feed("")
    assert guard.text == "{}"


@pytest.mark.parametrize(
    "limits",
    [
        {"max_chars": 0},
        {"max_whitespace_run": -1},
        {"max_repeats": 0},
        {"max_loop_chars": 0},
        {"max_unit": True},
    ],
)
def test_limits_must_be_positive_integers(limits: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        StreamGuard(**limits)


def test_long_loop_in_one_big_delta() -> None:
    text = '{"a": "' + "x" * 10 + "la" * 1000 + '"}'
    assert feed_all(StreamGuard(), [text]) is not None


def test_long_varied_reply_passes() -> None:
    words = [f"word{i}" for i in range(2000)]
    reply = '{"items": [' + ", ".join(f'"{w}"' for w in words) + "]}"
    assert feed_all(StreamGuard(), [reply[i : i + 7] for i in range(0, len(reply), 7)]) is None


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, list[str], dict[str, int]]:
    text = draw(st.text(alphabet='ab \n"\\{', max_size=80))
    limits = {
        "max_chars": draw(st.integers(20, 100)),
        "max_whitespace_run": draw(st.integers(1, 6)),
        "max_repeats": draw(st.integers(1, 6)),
        "max_loop_chars": draw(st.integers(1, 12)),
        "max_unit": draw(st.integers(1, 4)),
    }
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=12))
    return text, split_at(text, cuts), limits


@settings(max_examples=400, deadline=None)
@given(_cases())
def test_verdict_matches_the_reference_whatever_the_chunking(
    case: tuple[str, list[str], dict[str, int]],
) -> None:
    text, chunks, limits = case
    expected = reference_verdict(
        text,
        max_chars=limits["max_chars"],
        max_ws=limits["max_whitespace_run"],
        repeats=limits["max_repeats"],
        unit=limits["max_unit"],
        loop_chars=limits["max_loop_chars"],
    )
    whole = feed_all(StreamGuard(**limits), [text])
    chunked = feed_all(StreamGuard(**limits), chunks)
    assert (whole is not None) == expected
    assert (chunked is not None) == expected


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_default_limits_agree_on_long_periodic_text(data: st.DataObject) -> None:
    unit = data.draw(st.text(alphabet="ab c", min_size=1, max_size=22))
    times = data.draw(st.integers(1, 60))
    text = data.draw(st.text(alphabet="xyz", max_size=5)) + unit * times
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=30))
    expected = reference_verdict(
        text, max_chars=32_000, max_ws=200, repeats=8, unit=20, loop_chars=120
    )
    assert (feed_all(StreamGuard(), [text]) is not None) == expected
    assert (feed_all(StreamGuard(), split_at(text, cuts)) is not None) == expected
