"""``extract one``: the ``N/A`` prior kept in the cache between runs, the confidence under
``-v``, and ``--stream`` saying when calibration changed the streamed choice."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import Scripted, sentiment_reply

from extract.batch.cache import Cache, default_cache_path
from extract.batch.priors import StoredPriors, prior_data, stored_key
from extract.cli import main
from extract.core.calibration import CONTENT_FREE_DOCUMENT, Prior
from extract.server import Reply

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}


def document_of(body: Mapping[str, Any]) -> str:
    prompt = str(body["prompt"])
    return prompt[prompt.rindex("<document>\n") + 11 : prompt.rindex("\n</document>")]


def leaning(document_odds: float, na_odds: float) -> Callable[[Mapping[str, Any]], Reply]:
    """Replies whose log-odds positive − negative are ``na_odds`` for the N/A document and
    ``document_odds`` for any other; the reply always says "positive"."""

    def respond(body: Mapping[str, Any]) -> Reply:
        odds = na_odds if document_of(body) == CONTENT_FREE_DOCUMENT else document_odds
        return sentiment_reply(-math.log1p(math.exp(-odds)), -math.log1p(math.exp(odds)))

    return respond


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "sentiment.json"
    path.write_text(json.dumps(SENTIMENT))
    return path


def one(server: Scripted, schema: Path, *args: str) -> Result:
    base = ["one", "-s", str(schema), "-m", "tiny", "--host", server.url]
    return CliRunner().invoke(main, [*base, *args, "Loved it."])


def prior_requests(server: Scripted) -> int:
    return sum(document_of(b) == CONTENT_FREE_DOCUMENT for b in server.generates())


def test_the_prior_is_kept_in_the_default_cache_between_runs(
    scripted: Callable[..., Scripted], schema_file: Path
) -> None:
    server = scripted(responder=leaning(2.0, 1.0))
    first = one(server, schema_file)
    assert first.exit_code == 0, first.output
    assert (len(server.generates()), prior_requests(server)) == (2, 1)
    assert default_cache_path().is_file()  # the store `label` uses
    second = one(server, schema_file)
    assert second.exit_code == 0, second.output
    assert (len(server.generates()), prior_requests(server)) == (3, 1)  # the prior was not asked
    assert json.loads(second.stdout) == json.loads(first.stdout)


def test_no_cache_asks_for_the_prior_each_run(
    scripted: Callable[..., Scripted], schema_file: Path
) -> None:
    server = scripted(responder=leaning(2.0, 1.0))
    for _ in range(2):
        assert one(server, schema_file, "--no-cache").exit_code == 0
    assert (len(server.generates()), prior_requests(server)) == (4, 2)
    assert not default_cache_path().exists()


def test_the_prior_goes_to_a_given_cache_file(
    scripted: Callable[..., Scripted], schema_file: Path, tmp_path: Path
) -> None:
    server = scripted(responder=leaning(2.0, 1.0))
    cache = tmp_path / "c.sqlite"
    assert one(server, schema_file, "--cache", str(cache)).exit_code == 0
    assert one(server, schema_file, "--cache", str(cache)).exit_code == 0
    assert prior_requests(server) == 1
    with Cache(cache) as kept:
        assert len(kept) == 1


def test_a_changed_schema_asks_for_its_own_prior(
    scripted: Callable[..., Scripted], schema_file: Path, tmp_path: Path
) -> None:
    server = scripted(responder=leaning(2.0, 1.0))
    assert one(server, schema_file).exit_code == 0
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**SENTIMENT, "title": "another"}))
    assert one(server, other).exit_code == 0
    assert prior_requests(server) == 2


def test_stored_priors_round_trip_and_skip_empty_ones(tmp_path: Path) -> None:
    key = ("tiny", "head", "fingerprint")
    prior = Prior({"$.sentiment": {'"positive"': -0.1, '"negative"': -2.4}})
    with Cache(tmp_path / "c.sqlite") as cache:
        StoredPriors(cache).put(key, prior)
        StoredPriors(cache).put(("tiny", "head", "other"), Prior({}))
        assert StoredPriors(cache).get(key) == prior
        assert StoredPriors(cache).get(("tiny", "head", "other")) is None
        assert cache.get(stored_key(key)) == prior_data(prior)
        cache.put(stored_key(key), {"$.sentiment": "damaged"})
        assert StoredPriors(cache).get(key) is None  # asked for again, not trusted


def test_verbose_shows_the_confidence(scripted: Callable[..., Scripted], schema_file: Path) -> None:
    server = scripted(responder=leaning(2.0, 0.0))
    result = one(server, schema_file, "-v")
    assert result.exit_code == 0, result.output
    # N/A leans nowhere, so the confidence is the reply's own: σ(2.0).
    expected = f"{1 / (1 + math.exp(-2.0)):.3f}"
    assert f"confidence: $.sentiment {expected}; overall {expected}" in result.stderr


def test_verbose_says_when_there_is_no_confidence(
    scripted: Callable[..., Scripted], schema_file: Path
) -> None:
    server = scripted(responder=lambda _body: Reply.text('{"sentiment": "positive"}'))
    result = one(server, schema_file, "-v")
    assert result.exit_code == 0, result.output
    assert "confidence: none" in result.stderr


def test_stream_says_when_calibration_changed_the_choice(
    scripted: Callable[..., Scripted], schema_file: Path
) -> None:
    # The reply says positive (log-odds 1.0), but the model leans 3.0 toward positive on N/A.
    server = scripted(responder=leaning(1.0, 3.0))
    result = one(server, schema_file, "--stream")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sentiment": "negative"}
    assert '{"sentiment": "positive"}' in result.stderr
    assert 'calibration changed $.sentiment from "positive" (as streamed) to "negative"' in (
        result.stderr
    )


def test_stream_is_quiet_when_calibration_kept_the_choice(
    scripted: Callable[..., Scripted], schema_file: Path
) -> None:
    server = scripted(responder=leaning(3.0, 1.0))
    result = one(server, schema_file, "--stream")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sentiment": "positive"}
    assert "calibration changed" not in result.stderr
