"""Choice fields decided from one token each (core.decide), against the same replies generated
whole: the same value, the same scores, the same calibrated result; and every case where the
server cannot do it falls back to generating the reply."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from conftest import Scripted, logprob_entry

from extract import Extractor
from extract.client.backends.ollama.facts import model_facts
from extract.core.confidence import score_choices
from extract.core.decide import Layout, decide, layout, step_request
from extract.core.schema import Schema
from extract.core.wire import TokenLogprob
from extract.server.scripted import Reply

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
    "required": ["sentiment"],
}
KIND = {
    "type": "object",
    "properties": {"kind": {"enum": ["feature_request", "feature_flag", "billing"]}},
    "required": ["kind"],
}
NESTED = {
    "type": "object",
    "properties": {
        "urgent": {"type": "boolean"},
        "topic": {
            "type": "object",
            "properties": {"area": {"enum": ["app", "web"]}, "score": {"enum": [1, 10]}},
            "required": ["area", "score"],
        },
    },
    "required": ["urgent", "topic"],
}


def entry(token: str, **top: float) -> TokenLogprob:
    found = TokenLogprob.from_wire(logprob_entry(token, **top))
    assert found is not None
    return found


def run(plan: Layout, entries: Sequence[TokenLogprob | None]) -> tuple[Any, list[str]]:
    """Drive ``decide`` with ``entries``; the outcome and the prefills it asked for."""
    machine = decide(plan)
    prefills = [next(machine)]
    try:
        for item in entries:
            prefills.append(machine.send(item))
    except StopIteration as stop:
        return stop.value, prefills
    raise AssertionError(f"decide asked for more than {len(entries)} tokens: {prefills}")


def test_layout_is_fixed_text_around_the_choice_fields() -> None:
    plan = layout(Schema.load(NESTED))
    assert plan is not None
    texts = [i if isinstance(i, str) else i.spelled for i in plan.items]
    assert texts == [
        '{"urgent": ',
        ("true", "false"),
        ', "topic": {"area": ',
        ('"app"', '"web"'),
        ', "score": ',
        ("1", "10"),
        "}}",
    ]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]},
        {"type": "object", "properties": {"ok": {"type": "boolean"}}},  # optional: may be left out
        {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}},
            "required": ["ok", "n"],
        },
    ],
)
def test_a_schema_with_a_field_that_is_not_a_choice_has_no_layout(schema: Any) -> None:
    assert layout(Schema.load(schema)) is None


def test_one_token_decides_and_scores_as_the_generated_reply_would() -> None:
    schema = Schema.load(SENTIMENT)
    plan = layout(schema)
    assert plan is not None
    top = {"negative": -0.4, "positive": -1.5, "neutral": -2.5, "The": -3.0}
    outcome, prefills = run(plan, [entry("negative", **top)])
    assert prefills == ['{"sentiment": "']
    text, scores = outcome
    assert json.loads(text) == {"sentiment": "negative"}
    generated = score_choices(
        schema,
        text,
        [entry('{"sentiment": "'), entry("negative", **top), entry('"}')],
    )
    assert scores == generated
    assert math.isclose(
        scores["$.sentiment"].confidence,
        math.exp(-0.4) / (math.exp(-0.4) + math.exp(-1.5) + math.exp(-2.5)),
    )


def test_the_likeliest_token_that_fits_an_option_decides_not_the_first_listed() -> None:
    plan = layout(Schema.load(SENTIMENT))
    assert plan is not None
    # "The" is likelier but fits no option: the schema grammar would have forbidden it.
    (text, _), _ = run(plan, [entry("The", The=-0.1, neutral=-2.0, positive=-3.0)])
    assert json.loads(text) == {"sentiment": "neutral"}


def test_shared_prefix_is_followed_up_where_the_options_part() -> None:
    schema = Schema.load(KIND)
    plan = layout(schema)
    assert plan is not None
    first = entry("feature", feature=-0.2, billing=-1.8)
    second = entry("_request", _request=-0.5, _flag=-1.0)
    outcome, prefills = run(plan, [first, second])
    assert prefills == ['{"kind": "', '{"kind": "feature']
    text, scores = outcome
    assert json.loads(text) == {"kind": "feature_request"}
    # The generated reply with the same tokens scores the same.
    generated = score_choices(
        schema,
        text,
        [entry('{"kind": "'), first, second, entry('"}')],
    )
    assert scores == generated
    assert (
        scores["$.kind"].by_option()['"billing"'] < scores["$.kind"].by_option()['"feature_flag"']
    )


def test_a_prefix_all_options_share_moves_nothing_and_is_followed() -> None:
    schema = Schema.load(
        {
            "type": "object",
            "properties": {"kind": {"enum": ["feature_request", "feature_flag"]}},
            "required": ["kind"],
        }
    )
    plan = layout(schema)
    assert plan is not None
    shared = entry("feature", feature=-0.01, bug=-5.0)
    parting = entry("_flag", _request=-0.9, _flag=-0.6)
    (text, scores), prefills = run(plan, [shared, parting])
    assert prefills == ['{"kind": "', '{"kind": "feature']
    assert json.loads(text) == {"kind": "feature_flag"}
    generated = score_choices(schema, text, [entry('{"kind": "'), shared, parting, entry('"}')])
    assert scores == generated
    assert scores["$.kind"].confidence == pytest.approx(
        math.exp(-0.6) / (math.exp(-0.6) + math.exp(-0.9))
    )


def test_options_that_part_at_their_first_token_take_one_request_however_long() -> None:
    schema = Schema.load(
        {
            "type": "object",
            "properties": {"x": {"enum": ["strongly_disagree", "mildly_agree"]}},
            "required": ["x"],
        }
    )
    plan = layout(schema)
    assert plan is not None
    (text, scores), prefills = run(plan, [entry("strongly", strongly=-0.3, mild=-1.4)])
    assert len(prefills) == 1
    assert json.loads(text) == {"x": "strongly_disagree"}
    assert scores["$.x"].chosen == 0


def test_nested_booleans_and_numbers_are_decided_in_order() -> None:
    schema = Schema.load(NESTED)
    plan = layout(schema)
    assert plan is not None
    (text, scores), prefills = run(
        plan,
        [
            entry("true", true=-0.1, false=-2.5),
            entry("web", web=-0.3, app=-1.5),
            # "1" fits both 1 and 10; "10" and "1}" tell them apart.
            entry("10", **{"10": -0.2, "1}": -1.9, "1": -2.2}),
        ],
    )
    assert prefills == [
        '{"urgent": ',
        '{"urgent": true, "topic": {"area": "',
        '{"urgent": true, "topic": {"area": "web", "score": ',
    ]
    assert json.loads(text) == {"urgent": True, "topic": {"area": "web", "score": 10}}
    assert set(scores) == {"$.urgent", "$.topic.area", "$.topic.score"}


@pytest.mark.parametrize(
    "item",
    [None, TokenLogprob("negative", -0.1), entry("<|im_start|>", **{"<|im_start|>": -0.1})],
)
def test_a_token_that_cannot_be_read_gives_up(item: TokenLogprob | None) -> None:
    plan = layout(Schema.load(SENTIMENT))
    assert plan is not None
    outcome, _ = run(plan, [item])
    assert outcome is None


def test_a_step_asks_one_token_with_alternatives_and_no_format() -> None:
    request = step_request(
        {"model": "m", "prompt": "p", "format": {"type": "object"}, "options": {"num_ctx": 512}}
    )
    assert "format" not in request
    assert request["options"] == {"num_ctx": 512, "num_predict": 1}
    assert (request["logprobs"], request["top_logprobs"], request["stream"]) == (True, 20, False)


@pytest.mark.parametrize(
    ("template", "continues"),
    [
        ("{{ .System }}{{ .Prompt }}<|assistant|>{{ .Response }}<|end|>", True),
        ("{{ .Prompt }}", False),  # the assistant's text would not be rendered
        ("{{ range .Messages }}{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}", False),
        (
            "{{- range $i, $_ := .Messages }}{{ .Content }}{{ if not $last }}<|im_end|>{{ end }}"
            "{{ end }}",
            True,
        ),
        ("{% for m in messages %}{{ m.content }}{% endfor %}", True),
    ],
)
def test_the_template_says_whether_ollama_continues_a_reply(template: str, continues: bool) -> None:
    assert model_facts("0.13.0", {"template": template}).continues_reply is continues
    # Before log-probabilities (0.12.11) there is nothing to read the options from.
    assert model_facts("0.12.10", {"template": template}).continues_reply is False


# End to end on the scripted server: the choice path against full generation.


def generated_reply(token: str, **top: float) -> Reply:
    chunks = ['{"sentiment": "', token, '"}']
    logprobs = [[logprob_entry(chunks[0])], [logprob_entry(token, **top)], [logprob_entry('"}')]]
    return Reply.text("".join(chunks), chunks=chunks, logprobs=logprobs)


def continued_reply(token: str, **top: float) -> Reply:
    return Reply.text(token, chunks=[token], logprobs=[[logprob_entry(token, **top)]])


TOP = {"negative": -0.3, "positive": -1.6, "neutral": -2.2}


def test_the_choice_path_gives_what_full_generation_gives(
    scripted: Callable[..., Scripted],
) -> None:
    server = scripted()
    server.engine.script(generated_reply("negative", **TOP), continued_reply("negative", **TOP))
    with Extractor("tiny", host=server.url, calibrate=False) as whole:
        full = whole.extract("The app crashes.", SENTIMENT)
    with Extractor("tiny", host=server.url, calibrate=False, decide_choices=True) as deciding:
        decided = deciding.extract("The app crashes.", SENTIMENT)
    assert decided.value == full.value == {"sentiment": "negative"}
    assert decided.confidence == pytest.approx(full.confidence)
    assert decided.choices == full.choices
    chats = [r.body for r in server.engine.requests if r.path == "/api/chat"]
    assert len(chats) == 1
    assert len(server.generates()) == 1
    body = chats[0]
    assert body["messages"][-1] == {"role": "assistant", "content": '{"sentiment": "'}
    assert body["messages"][-2]["content"] == server.generates()[0]["prompt"]
    assert "format" not in body
    assert body["options"]["num_predict"] == 1
    assert (body["logprobs"], body["top_logprobs"], body["stream"]) == (True, 20, False)


def test_calibration_applies_to_the_decided_choice_as_to_the_generated_one(
    scripted: Callable[..., Scripted],
) -> None:
    # The content-free prior leans hard to "negative": calibration moves the choice.
    prior = generated_reply("negative", negative=-0.05, positive=-4.0, neutral=-4.0)
    top = {"negative": -0.5, "positive": -1.0, "neutral": -3.0}
    server = scripted()
    server.engine.script(generated_reply("negative", **top), prior)
    with Extractor("tiny", host=server.url) as whole:
        full = whole.extract("Fine, I guess.", SENTIMENT)
    server.engine.script(continued_reply("negative", **top), prior)
    with Extractor("tiny", host=server.url, decide_choices=True) as deciding:
        decided = deciding.extract("Fine, I guess.", SENTIMENT)
    assert full.value == {"sentiment": "positive"}  # calibrated away from the lean
    assert decided.value == full.value
    assert decided.confidence == pytest.approx(full.confidence)


@pytest.mark.parametrize(
    ("engine_args", "extractor_args", "reply"),
    [
        ({"version": "0.12.10"}, {"decide_choices": True}, None),  # no logprobs
        ({}, {"decide_choices": False}, None),  # turned off
        ({}, {}, None),  # a template that would not continue the reply: off unless asked
        ({}, {"decide_choices": True}, Reply.text('"negative"')),  # a reply without logprobs
        ({}, {"decide_choices": True}, Reply.status(400, "this model has no chat template")),
    ],
)
def test_a_server_without_the_mechanism_generates_the_reply(
    scripted: Callable[..., Scripted],
    engine_args: dict[str, Any],
    extractor_args: dict[str, Any],
    reply: Reply | None,
) -> None:
    server = scripted(**engine_args)
    if reply is not None:
        server.engine.script(reply)
    server.engine.script(generated_reply("positive", **TOP))
    with Extractor("tiny", host=server.url, calibrate=False, **extractor_args) as extractor:
        done = extractor.extract("Love it.", SENTIMENT)
    assert done.value == {"sentiment": "positive"}
    assert len(server.generates()) == 1


def test_the_openai_backend_refuses_to_continue_a_reply_when_told_to() -> None:
    from extract.errors import ConfigError

    with Extractor("tiny", host="http://127.0.0.1:9", backend="openai") as extractor:
        backend = extractor._backend
        with pytest.raises(ConfigError, match="decide_choices"):
            backend.continue_reply({"model": "tiny", "prompt": "p"}, '{"a": ')


def test_decide_choices_is_checked() -> None:
    from extract.errors import ConfigError

    extractor = Extractor("tiny", host="http://127.0.0.1:9", decide_choices="yes")  # type: ignore[arg-type]
    with extractor, pytest.raises(ConfigError, match="decide_choices='yes'"):
        extractor.preview("text", SENTIMENT)


class Sentiments:
    """Answers a document by its first word, generated whole or continued from a prefill."""

    def __call__(self, body: Any) -> Reply:
        text = body["messages"][-2]["content"] if "messages" in body else body["prompt"]
        word = "positive" if "good" in text.split("<document>")[-1] else "negative"
        top = {
            word: -0.2,
            "neutral": -2.0,
            ("negative" if word == "positive" else "positive"): -1.7,
        }
        if "messages" in body:
            return continued_reply(word, **top)
        return generated_reply(word, **top)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_batch_writes_the_same_records_either_way(
    scripted: Callable[..., Scripted], concurrency: int
) -> None:
    from extract import Labeling

    documents = [{"id": k, "text": ("good day" if k % 3 else "bad day")} for k in range(9)]

    def label(decide_choices: bool) -> list[dict[str, Any]]:
        server = scripted(responder=Sentiments())
        with Labeling(
            SENTIMENT,
            model="tiny",
            hosts=server.url,
            concurrency=concurrency,
            calibrate=False,
            decide_choices=decide_choices,
        ) as session:
            records = [r.to_json() for r in session.results(documents)]
        paths = {r.path for r in server.engine.requests}
        assert ("/api/chat" in paths) is decide_choices
        return [{k: v for k, v in r.items() if k != "usage"} for r in records]

    decided, whole = label(True), label(False)
    assert decided == whole
    assert [r["value"]["sentiment"] for r in decided] == [
        "negative" if k % 3 == 0 else "positive" for k in range(9)
    ]


@pytest.mark.parametrize(("flag", "chats"), [("--decide-choices", 2), ("--generate-choices", 0)])
def test_label_takes_the_flag(
    scripted: Callable[..., Scripted], tmp_path: Any, flag: str, chats: int
) -> None:
    from click.testing import CliRunner

    from extract.cli import main

    server = scripted(responder=Sentiments())
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "good"}\n{"id": 2, "text": "bad"}\n', encoding="utf-8")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(SENTIMENT), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "label",
            str(source),
            "-o",
            str(out),
            "-s",
            str(schema),
            "--host",
            server.url,
            "-m",
            "tiny",
            "--no-calibrate",
            flag,
        ],
    )
    assert result.exit_code == 0, result.output
    values = [json.loads(line)["value"] for line in out.read_text().splitlines()]
    assert values == [{"sentiment": "positive"}, {"sentiment": "negative"}]
    assert sum(r.path == "/api/chat" for r in server.engine.requests) == chats
