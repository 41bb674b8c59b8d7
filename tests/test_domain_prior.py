"""The in-domain prior: documents of random words from the batch, asked once per session, and
the choices then decided against it rather than against ``N/A``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Scripted, sentiment_reply
from hypothesis import given
from hypothesis import strategies as st

from extract import ConfigError, Extractor, Labeling
from extract.batch.run import WARM_UP_DOCUMENTS
from extract.cli import main
from extract.core.calibration import (
    DOMAIN_DOCUMENTS,
    DOMAIN_MAX_WORDS,
    DOMAIN_MIN_DOCUMENTS,
    domain_documents,
)
from extract.server import Reply

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}
# log-odds positive − negative: the model leans 1.0 toward positive on a document about
# nothing in this domain, 3.0 on N/A; the documents sit between.
LEAN, NA_LEAN = 1.0, 3.0
DOCUMENTS = {"Meh, it broke again.": 0.5, "Really loved the crew.": 1.5, "So-so flight.": 2.0}
PRIOR = DOMAIN_MIN_DOCUMENTS  # documents of random words drawn from three texts


def document_of(body: Mapping[str, Any]) -> str:
    prompt = str(body["prompt"])
    return prompt[prompt.rindex("<document>\n") + 11 : prompt.rindex("\n</document>")]


def responder(body: Mapping[str, Any]) -> Reply:
    """Each known document at its log-odds; N/A and anything else (random words) leaning."""
    document = document_of(body)
    odds = DOCUMENTS.get(document, NA_LEAN if document == "N/A" else LEAN)
    return sentiment_reply(-math.log1p(math.exp(-odds)), -math.log1p(math.exp(odds)))


def test_domain_documents_are_random_words_of_the_texts() -> None:
    texts = ["one two three four", "five six seven", "eight nine ten eleven twelve"]
    documents = domain_documents(texts)
    words = {w for t in texts for w in t.split()}
    assert len(documents) == DOMAIN_MIN_DOCUMENTS  # one per four texts, at least four
    assert len(domain_documents(texts * 40)) == DOMAIN_DOCUMENTS  # at most sixteen
    assert len(domain_documents(texts, count=2)) == 2
    assert all(len(d.split()) == 4 for d in documents)  # the median text's length
    assert all(set(d.split()) <= words for d in documents)
    assert documents == domain_documents(texts)  # the same draw every time
    assert domain_documents(texts, seed=1) != documents
    assert domain_documents([]) == []
    assert domain_documents(["", " "]) == []
    # Texts without spaces are drawn from by character.
    assert all(set(d) <= set("数据标注工具") for d in domain_documents(["数据标注", "工具"]))
    assert len(domain_documents(["w " * 1000])[0].split()) == DOMAIN_MAX_WORDS


@given(st.lists(st.text(max_size=40), max_size=8))
def test_domain_documents_never_invent_text(texts: list[str]) -> None:
    # Each text's own words (joining the texts first would fuse the words at their seams).
    units = {word for text in texts for word in text.split()} | set("".join("".join(texts).split()))
    for document in domain_documents(texts, count=3):
        assert document.strip()
        assert set(document.split()) <= units or set(document) <= units


def test_learn_prior_then_calls_decide_against_it(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=responder)
    with Extractor("tiny", host=server.url) as ex:
        learned = ex.learn_prior(list(DOCUMENTS), SENTIMENT)
        values = [ex.extract(d, SENTIMENT).value["sentiment"] for d in DOCUMENTS]
    assert learned is not None
    assert learned.documents == PRIOR
    assert set(learned.prior.fields) == {"$.sentiment"}
    # Against the in-domain lean of 1.0: below it negative, above it positive (against N/A's
    # 3.0 all three would be negative), and N/A is never asked.
    assert values == ["negative", "positive", "positive"]
    sent = [document_of(b) for b in server.generates()]
    assert "N/A" not in sent
    assert len(sent) == PRIOR + 3
    assert set(" ".join(sent[:PRIOR]).split()) <= set(" ".join(DOCUMENTS).split())


def test_labeling_learns_once_before_any_record(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=responder)
    with Labeling(SENTIMENT, model="tiny", hosts=server.url) as session:
        first = [r.value["sentiment"] for r in session.results(list(DOCUMENTS))]
        again = [r.value["sentiment"] for r in session.results(["So-so flight."])]
    assert first == ["negative", "positive", "positive"]
    assert again == ["positive"]
    sent = [document_of(b) for b in server.generates()]
    assert sent[PRIOR:] == [*DOCUMENTS, "So-so flight."]
    assert not set(sent[:PRIOR]) & set(DOCUMENTS)
    assert [p.documents for p in session.priors] == [PRIOR]


def test_the_prior_reads_the_first_64_documents_whatever_the_window(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(responder=responder)
    texts = [f"word{i}a word{i}b word{i}c" for i in range(100)]
    with Labeling(SENTIMENT, model="tiny", hosts=server.url, concurrency=1) as session:
        assert len(list(session.results(texts))) == len(texts)
    drawn = {w for b in server.generates()[:DOMAIN_DOCUMENTS] for w in document_of(b).split()}
    assert drawn <= {w for t in texts[:WARM_UP_DOCUMENTS] for w in t.split()}
    assert [p.documents for p in session.priors] == [DOMAIN_DOCUMENTS]  # one per four texts


def test_labeling_can_keep_the_na_prior_or_take_given_texts(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted(responder=responder)
    with Labeling(SENTIMENT, model="tiny", hosts=server.url, domain_prior=False) as session:
        values = [r.value["sentiment"] for r in session.results(list(DOCUMENTS))]
    assert values == ["negative", "negative", "negative"]
    assert [document_of(b) for b in server.generates()][:2] == ["Meh, it broke again.", "N/A"]
    assert session.priors == []

    server = scripted(responder=responder)
    given_texts = ["alpha beta gamma", "delta epsilon zeta"]
    with Labeling(SENTIMENT, model="tiny", hosts=server.url, domain_prior=given_texts) as s:
        list(s.results(list(DOCUMENTS)))
    drawn = " ".join(document_of(b) for b in server.generates()[:PRIOR]).split()
    assert set(drawn) <= set(" ".join(given_texts).split())


def test_no_prior_requests_without_logprobs_or_choices(scripted: Callable[..., Scripted]) -> None:
    server = scripted(version="0.12.0")  # before logprobs
    server.engine.script(*[Reply.text('{"sentiment": "positive"}')] * 3)
    with Labeling(SENTIMENT, model="tiny", hosts=server.url) as session:
        assert all(r.ok for r in session.results(list(DOCUMENTS)))
    assert len(server.generates()) == 3
    assert session.priors == []

    server = scripted()
    server.engine.script(*[Reply.text('{"n": 1}')] * 2)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    with Labeling(schema, model="tiny", hosts=server.url) as session:
        assert all(r.ok for r in session.results(["a b c", "d e f"]))
    assert len(server.generates()) == 2


def test_an_empty_input_asks_nothing(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=responder)
    with Labeling(SENTIMENT, model="tiny", hosts=server.url) as session:
        assert list(session.results([])) == []
    assert server.generates() == []


def test_the_cli_reads_the_prior_from_the_file_head_even_when_resuming(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    schema = tmp_path / "sentiment.json"
    schema.write_text(json.dumps(SENTIMENT))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"id": {i}, "text": "{t}"}}\n' for i, t in enumerate(DOCUMENTS)))
    out = tmp_path / "out.jsonl"
    base = ["label", str(source), "-o", str(out), "-s", str(schema), "-m", "tiny", "--no-cache"]

    server = scripted(responder=responder)
    result = CliRunner().invoke(main, [*base, "--host", server.url])
    assert result.exit_code == 0, result.output
    assert f"calibration: {PRIOR} requests for the in-domain prior" in result.output
    first_prior = [document_of(b) for b in server.generates()[:PRIOR]]

    # Drop the last record: the rerun labels that line only, against the same prior.
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:-1]))
    server = scripted(responder=responder)
    result = CliRunner().invoke(main, [*base, "--host", server.url])
    assert result.exit_code == 0, result.output
    sent = [document_of(b) for b in server.generates()]
    assert sent == [*first_prior, "So-so flight."]

    out.unlink()
    server = scripted(responder=responder)
    result = CliRunner().invoke(main, [*base, "--host", server.url, "--no-domain-prior"])
    assert result.exit_code == 0, result.output
    assert [document_of(b) for b in server.generates()][1] == "N/A"
    assert "calibration:" not in result.output


def test_a_single_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="list of texts"):
        Labeling(SENTIMENT, model="tiny", hosts="http://127.0.0.1:9", domain_prior="one text")
