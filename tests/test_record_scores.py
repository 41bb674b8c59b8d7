"""What a batch record reports beside its value (confidence, option scores), kept everywhere:
in the output line, through the cache, in review marks and in exported tables. On the scripted
engine with scripted log-probabilities."""

from __future__ import annotations

import csv
import json
import math
import re
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from conftest import Scripted, sentiment_reply

from extract import evaluate
from extract.batch.records import Record
from extract.batch.scores import Report, distributions
from extract.cli import main
from extract.core.calibration import scaled
from extract.core.confidence import ChoiceScores
from extract.server import Reply

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}
TWEETS = 20


def positive(i: int) -> float:
    """The probability tweet ``i``'s reply gives "positive" (its chosen option)."""
    return 0.52 + 0.022 * i


def by_tweet(body: Mapping[str, Any]) -> Reply:
    """Tweet i: "positive" at ``positive(i)``; a "plain" tweet: a reply without logprobs."""
    prompt = str(body.get("prompt", ""))
    if "plain tweet" in prompt:
        return Reply.text('{"sentiment": "positive"}')
    found = re.search(r"tweet (\d+)", prompt)
    assert found is not None, prompt
    p = positive(int(found[1]))
    return sentiment_reply(math.log(p), math.log(1 - p))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The schema, the input (tweets 0..19) and their gold (every one positive)."""
    schema = tmp_path / "sentiment.json"
    schema.write_text(json.dumps(SENTIMENT))
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": i, "text": f"tweet {i}"}) + "\n" for i in range(TWEETS))
    )
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        "".join(json.dumps({"id": i, "sentiment": "positive"}) + "\n" for i in range(TWEETS))
    )
    return schema, source, gold


def label(server: Scripted, schema: Path, source: Path, out: Path, *extra: str) -> Result:
    args = ["label", str(source), "-s", str(schema), "-m", "tiny", "--host", server.url]
    result = CliRunner().invoke(main, [*args, "-o", str(out), "--no-calibrate", *extra])
    assert result.exit_code == 0, result.output
    return result


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_carry_each_options_probability_beside_confidence(
    scripted: Callable[..., Scripted], files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    schema, source, _ = files
    out = tmp_path / "out.jsonl"
    label(scripted(responder=by_tweet), schema, source, out, "--no-cache")
    for i, record in enumerate(lines(out)):
        p = positive(i)
        assert record["confidence"] == {"$.sentiment": pytest.approx(p, abs=1e-4)}
        assert record["scores"] == {
            "$.sentiment": {
                "positive": pytest.approx(p, abs=1e-4),
                "negative": pytest.approx(1 - p, abs=1e-4),
            }
        }


def test_under_a_temperature_the_chosen_score_is_the_confidence(
    scripted: Callable[..., Scripted], files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    schema, source, _ = files
    out = tmp_path / "out.jsonl"
    extra = ("--no-cache", "--confidence-temperature", "0.5")
    label(scripted(responder=by_tweet), schema, source, out, *extra)
    for i, record in enumerate(lines(out)):
        scores = record["scores"]["$.sentiment"]
        assert scores["positive"] == pytest.approx(scaled(positive(i), 0.5), abs=1e-4)
        assert scores["positive"] == pytest.approx(record["confidence"]["$.sentiment"], abs=1e-4)
        assert sum(scores.values()) == pytest.approx(1.0, abs=2e-4)


def test_distributions_share_what_a_temperature_frees_in_the_models_proportions() -> None:
    logprobs = tuple(math.log(p) for p in (0.6, 0.3, 0.1))
    field = ChoiceScores(("c",), ("a", True, None), logprobs, 0)
    got = distributions({"$.c": field}, {"$.c": 0.8})["$.c"]
    assert got == {
        "a": pytest.approx(0.8),
        "true": pytest.approx(0.15),
        "null": pytest.approx(0.05),
    }
    # A model that gave the others nothing: they share the freed mass evenly.
    sure = ChoiceScores(("c",), ("a", "b", "c"), (0.0, -math.inf, -math.inf), 0)
    assert distributions({"$.c": sure}, {"$.c": 0.9})["$.c"] == pytest.approx(
        {"a": 0.9, "b": 0.05, "c": 0.05}
    )


def test_a_rerun_from_the_cache_reports_what_the_first_run_did(
    scripted: Callable[..., Scripted], files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    schema, source, gold = files
    cache = tmp_path / "cache.sqlite"
    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    review = ("--cache", str(cache), "--min-confidence", "0.8")
    label(scripted(responder=by_tweet), schema, source, first, *review)
    server = scripted(responder=by_tweet)
    label(server, schema, source, again, *review)
    assert server.generates() == []  # every record came from the cache
    keep = ("confidence", "min_confidence", "scores", "review", "value")
    for a, b in zip(lines(first), lines(again), strict=True):
        assert b["cached"] is True
        assert {k: b.get(k) for k in keep} == {k: a.get(k) for k in keep}
    marked = sum(r.get("review", False) for r in lines(again))
    assert marked == sum(positive(i) < 0.8 for i in range(TWEETS)) > 1
    # The README's snippet, on the cached output.
    report = evaluate(again, gold, SENTIMENT)
    assert report.calibration.records == TWEETS
    assert report.calibration.ece is not None


def test_a_cached_value_without_its_report_is_labeled_again(
    scripted: Callable[..., Scripted], files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    schema, source, _ = files
    cache = tmp_path / "cache.sqlite"
    label(scripted(responder=by_tweet), schema, source, tmp_path / "a.jsonl", "--cache", str(cache))
    # As an older extract left it: values without what their records said.
    with sqlite3.connect(cache) as db:
        db.execute("UPDATE extract_cache SET report = NULL")
    server = scripted(responder=by_tweet)
    out = tmp_path / "b.jsonl"
    label(server, schema, source, out, "--cache", str(cache))
    assert len(server.generates()) == TWEETS
    assert all(not r["cached"] and r["confidence"] for r in lines(out))


def test_a_cache_file_from_before_reports_gains_the_column(tmp_path: Path) -> None:
    from extract.batch.cache import Cache

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE extract_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " created REAL NOT NULL)"
        )
        db.execute("INSERT INTO extract_cache VALUES ('k', '{\"a\": 1}', 0)")
    with Cache(path) as cache:
        assert cache.entry("k") == ({"a": 1}, None)
        cache.put("j", 2, Report({"$": 0.9}).to_dict())
        assert Report.from_dict(cache.entry("j")[1]) == Report({"$": 0.9})


def test_how_confidence_is_scored_is_part_of_the_cache_key(
    scripted: Callable[..., Scripted], files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    schema, source, _ = files
    cache = ("--cache", str(tmp_path / "cache.sqlite"))
    label(scripted(responder=by_tweet), schema, source, tmp_path / "a.jsonl", *cache)
    server = scripted(responder=by_tweet)
    out = tmp_path / "b.jsonl"
    label(server, schema, source, out, *cache, "--confidence-temperature", "0.5")
    assert len(server.generates()) == TWEETS
    assert lines(out)[0]["confidence"]["$.sentiment"] == pytest.approx(
        scaled(positive(0), 0.5), abs=1e-4
    )


def test_an_ok_record_without_confidence_is_counted_and_marked_for_review(
    scripted: Callable[..., Scripted], files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    schema, source, _ = files
    with source.open("a") as f:
        f.write(json.dumps({"id": "p", "text": "a plain tweet"}) + "\n")
    out = tmp_path / "out.jsonl"
    result = label(
        scripted(responder=by_tweet), schema, source, out, "--no-cache", "--min-confidence", "0.5"
    )
    plain = lines(out)[-1]
    assert plain["ok"] is True
    assert "confidence" not in plain
    assert plain["review"] is True
    assert "ok records without confidence: 1" in result.output
    assert "marked for review (under --min-confidence): 1" in result.output
    # Without --min-confidence it is still counted, and not marked.
    again = tmp_path / "again.jsonl"
    counted = label(scripted(responder=by_tweet), schema, source, again, "--no-cache")
    assert "ok records without confidence: 1" in counted.output
    assert "review" not in lines(again)[-1]


def test_a_record_without_scores_writes_none() -> None:
    assert "scores" not in Record(1, True, {"a": 1}).to_json()


def test_export_writes_review_confidence_and_scores_as_columns(
    scripted: Callable[..., Scripted], files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    schema, source, _ = files
    out = tmp_path / "out.jsonl"
    label(
        scripted(responder=by_tweet), schema, source, out, "--no-cache", "--min-confidence", "0.7"
    )
    for target in (tmp_path / "t.csv", tmp_path / "t.parquet"):
        result = CliRunner().invoke(main, ["export", str(out), "--to", str(target)])
        assert result.exit_code == 0, result.output
        if target.suffix == ".csv":
            with open(target, encoding="utf-8", newline="") as f:
                rows: list[dict[str, Any]] = list(csv.DictReader(f))
        else:
            rows = pq.read_table(target).to_pylist()
        assert list(rows[0])[-6:] == [
            "sentiment",
            "review",
            "confidence",
            "confidence.$.sentiment",
            "score.$.sentiment.positive",
            "score.$.sentiment.negative",
        ]
        for i, (row, record) in enumerate(zip(rows, lines(out), strict=True)):
            typed = target.suffix == ".parquet"
            assert row["review"] == (positive(i) < 0.7 if typed else str(positive(i) < 0.7))
            expected = record["scores"]["$.sentiment"]
            assert float(row["score.$.sentiment.positive"]) == expected["positive"]
            assert float(row["score.$.sentiment.negative"]) == expected["negative"]
            assert float(row["confidence.$.sentiment"]) == record["confidence"]["$.sentiment"]


def test_scores_are_the_calibrated_distribution_and_survive_the_cache(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    from extract import Labeling

    def leaning(body: Mapping[str, Any]) -> Reply:
        # The document barely favours positive; with no content at all, the model is sure of it.
        if "<document>\nN/A\n</document>" in str(body.get("prompt", "")):
            return sentiment_reply(-0.01, -4.6)
        return sentiment_reply(-0.1, -2.4)

    server = scripted(responder=leaning)
    shifted = {"positive": -0.1 + 0.01, "negative": -2.4 + 4.6}
    total = sum(math.exp(v) for v in shifted.values())
    expected = {k: math.exp(v) / total for k, v in shifted.items()}
    cache = tmp_path / "cache.sqlite"
    runs = []
    for _ in range(2):
        with Labeling(
            SENTIMENT, model="tiny", hosts=server.url, cache=cache, domain_prior=False
        ) as session:
            runs.append(list(session.results(["Meh, it broke."])))
    (first,), (again,) = runs
    assert first.value == {"sentiment": "negative"}  # calibration changed the choice
    assert dict(first.scores["$.sentiment"]) == pytest.approx(expected)
    assert first.confidence["$.sentiment"] == pytest.approx(expected["negative"])
    assert again.cached
    assert (again.value, again.confidence, again.scores) == (
        first.value,
        first.confidence,
        first.scores,
    )
