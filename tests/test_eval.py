"""``extract.evaluate``: per-field scores equal an independent computation (scikit-learn)."""

from __future__ import annotations

import enum
import json
import random
from typing import Any

import pandas as pd
import pydantic
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

import extract
from extract import EvalReport, evaluate

CATEGORIES = ["bug", "billing", "feature"]
TAGS = ["login", "refund", "ui", "slow", "mobile"]
SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": CATEGORIES},
        "urgent": {"type": "boolean"},
        "summary": {"type": "string"},
        "amount": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
PLACEHOLDERS = {"(failed)", "(missing)"}


def noisy(rng: random.Random, gold: dict[str, Any]) -> dict[str, Any]:
    value = dict(gold)
    if rng.random() < 0.3:
        value["category"] = rng.choice(CATEGORIES)
    if rng.random() < 0.2:
        value["urgent"] = not gold["urgent"]
    if rng.random() < 0.3:
        value["summary"] = "  " + gold["summary"].upper() + " "
    if rng.random() < 0.3:
        value["amount"] = gold["amount"] + rng.choice([0.004, 0.2, 3.0])
    if rng.random() < 0.4:
        value["tags"] = rng.sample(TAGS, 2)
    if rng.random() < 0.05:
        del value["category"]
    return value


def dataset(n: int = 90, seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Output records (some failed, some without confidence) and gold rows for them."""
    rng = random.Random(seed)
    outputs, gold = [], []
    for i in range(n):
        truth = {
            "category": rng.choice(CATEGORIES),
            "urgent": rng.random() < 0.3,
            "summary": f"customer {i} reports a problem",
            "amount": round(rng.uniform(1, 100), 2),
            "tags": rng.sample(TAGS, rng.randint(1, 3)),
        }
        gold.append({"id": str(i), **truth})
        usage = {"prompt_eval_count": 100 + i, "eval_count": 20, "total_duration": 500_000_000}
        record: dict[str, Any] = {"id": i, "line": i + 1, "attempts": 1, "usage": usage}
        record["cached"] = i % 10 == 9
        if rng.random() < 0.08:
            last = rng.choice(["SchemaMismatch", "InvalidJSON"])
            error = {"type": "ExtractionFailed", "message": "x", "last_error": {"type": last}}
            outputs.append({**record, "ok": False, "error": error})
            continue
        record.update(ok=True, value=noisy(rng, truth))
        if i % 4:
            record["confidence"] = {"$.category": rng.random(), "$.urgent": rng.random()}
        outputs.append(record)
    return outputs, gold


@pytest.fixture(scope="module")
def data() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return dataset()


@pytest.fixture(scope="module")
def report(data: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> EvalReport:
    outputs, gold = data
    return evaluate(outputs, gold, SCHEMA, tolerance=0.01)


def predicted_label(record: dict[str, Any], name: str) -> str:
    if not record["ok"]:
        return "(failed)"
    if name not in record["value"]:
        return "(missing)"
    value = record["value"][name]
    return value if isinstance(value, str) else json.dumps(value)


@pytest.mark.parametrize("name", ["category", "urgent"])
def test_choice_fields_equal_scikit_learn(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]], report: EvalReport, name: str
) -> None:
    outputs, gold = data
    truth = [g[name] if isinstance(g[name], str) else json.dumps(g[name]) for g in gold]
    guess = [predicted_label(r, name) for r in outputs]
    field = report.field(name)
    assert field.kind == "choice"
    assert field.records == len(gold)
    assert field.accuracy == pytest.approx(accuracy_score(truth, guess))
    ok = [i for i, r in enumerate(outputs) if r["ok"]]
    ok_accuracy = accuracy_score([truth[i] for i in ok], [guess[i] for i in ok])
    assert field.ok_accuracy == pytest.approx(ok_accuracy)
    assert field.choice is not None
    classes = sorted((set(truth) | set(guess)) - PLACEHOLDERS)
    macro = f1_score(truth, guess, labels=classes, average="macro", zero_division=0)
    assert field.choice.macro_f1 == pytest.approx(macro)
    precision, recall, _, support = precision_recall_fscore_support(
        truth, guess, labels=[c.label for c in field.choice.classes], zero_division=0
    )
    assert [c.precision for c in field.choice.classes] == pytest.approx(list(precision))
    assert [c.recall for c in field.choice.classes] == pytest.approx(list(recall))
    assert [c.support for c in field.choice.classes] == list(support)
    expected = confusion_matrix(truth, guess, labels=list(field.choice.labels))
    assert [list(row) for row in field.choice.confusion] == expected.tolist()


def test_enum_classes_keep_the_schema_order(report: EvalReport) -> None:
    choice = report.field("$.category").choice
    assert choice is not None
    assert [c.label for c in choice.classes] == CATEGORIES
    assert choice.labels[-2:] == ("(missing)", "(failed)")
    urgent = report.field("urgent").choice
    assert urgent is not None
    assert urgent.labels[:2] == ("true", "false")


def test_strings_match_exactly_and_ignoring_case_and_spaces(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]], report: EvalReport
) -> None:
    outputs, gold = data
    exact = normalised = 0
    for r, g in zip(outputs, gold, strict=True):
        if r["ok"]:
            exact += r["value"]["summary"] == g["summary"]
            normalised += r["value"]["summary"].strip().lower() == g["summary"].lower()
    field = report.field("summary")
    assert (field.kind, field.choice) == ("string", None)
    assert field.accuracy == pytest.approx(exact / len(gold))
    assert field.normalized_accuracy == pytest.approx(normalised / len(gold))
    assert field.normalized_accuracy > field.accuracy


def test_numbers_match_within_the_tolerance(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]], report: EvalReport
) -> None:
    outputs, gold = data
    close = sum(
        abs(r["value"]["amount"] - g["amount"]) <= 0.01
        for r, g in zip(outputs, gold, strict=True)
        if r["ok"]
    )
    assert report.field("amount").accuracy == pytest.approx(close / len(gold))
    strict = evaluate(outputs, gold, SCHEMA).field("amount")
    assert strict.accuracy < report.field("amount").accuracy


def test_lists_get_micro_set_precision_and_recall(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]], report: EvalReport
) -> None:
    outputs, gold = data
    overlap = predicted = expected = equal = 0
    for r, g in zip(outputs, gold, strict=True):
        mine = set(r["value"]["tags"]) if r["ok"] else set()
        overlap += len(mine & set(g["tags"]))
        predicted += len(mine)
        expected += len(g["tags"])
        equal += r["ok"] and mine == set(g["tags"])
    field = report.field("tags")
    assert field.precision == pytest.approx(overlap / predicted)
    assert field.recall == pytest.approx(overlap / expected)
    assert field.accuracy == pytest.approx(equal / len(gold))


def test_coverage_counts_failures_by_the_last_error(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]], report: EvalReport
) -> None:
    outputs, _ = data
    failed = [r for r in outputs if not r["ok"]]
    c = report.coverage
    assert (c.records, c.failed, c.ok) == (len(outputs), len(failed), len(outputs) - len(failed))
    assert c.rate == pytest.approx(c.ok / c.records)
    kinds = [r["error"]["last_error"]["type"] for r in failed]
    assert c.failures == {k: kinds.count(k) for k in set(kinds)}
    assert (c.gold_without_output, c.output_without_gold, c.duplicate_ids) == (0, 0, 0)


def test_record_accuracy_and_calibration_use_the_lowest_field_confidence(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]], report: EvalReport
) -> None:
    outputs, _ = data
    carrying = [r for r in outputs if r.get("confidence")]
    assert report.calibration is not None
    assert report.calibration.records == len(carrying)
    by_key = {r.key: r for r in report.records}
    for r in carrying:
        assert by_key[str(r["id"])].confidence == min(r["confidence"].values())
    points = [(by_key[str(r["id"])].confidence, not by_key[str(r["id"])].wrong) for r in carrying]
    ece = sum(
        len(b) / len(points) * abs(sum(ok for _, ok in b) / len(b) - sum(c for c, _ in b) / len(b))
        for k in range(10)
        if (b := [p for p in points if min(int(p[0] * 10), 9) == k])
    )
    assert report.calibration.ece == pytest.approx(ece)
    right = sum(not r.wrong for r in report.records)
    assert report.record_accuracy == pytest.approx(right / len(report.records))


def test_no_confidence_means_no_calibration(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    outputs, gold = data
    bare = [{k: v for k, v in r.items() if k != "confidence"} for r in outputs]
    calibration = evaluate(bare, gold, SCHEMA).calibration
    # Still there (a script reading .ece does not crash), with nothing measured.
    assert (calibration.records, calibration.ece, calibration.temperature) == (0, None, None)
    assert calibration.unscored == sum(r["ok"] for r in bare)


def test_cost_is_per_record_that_called_the_model(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]], report: EvalReport
) -> None:
    outputs, _ = data
    called = [r for r in outputs if not r["cached"]]
    tokens = sum(r["usage"]["prompt_eval_count"] + r["usage"]["eval_count"] for r in called)
    cost = report.cost
    assert (cost.records, cost.cached) == (len(called), len(outputs) - len(called))
    assert cost.tokens_per_record == pytest.approx(tokens / len(called))
    assert cost.seconds_per_record == pytest.approx(0.5)


def test_report_to_dict_is_json_and_to_frame_has_a_row_per_field(report: EvalReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert [f["path"] for f in data["fields"]] == [f.path for f in report.fields]
    assert "records" not in data
    assert data["coverage"]["records"] == report.coverage.records
    frame = report.to_frame()
    assert list(frame.index) == ["$.category", "$.urgent", "$.summary", "$.amount", "$.tags"]
    choice = report.field("category").choice
    assert choice is not None
    assert frame.loc["$.category", "macro_f1"] == choice.macro_f1
    with pytest.raises(KeyError, match="no field 'nope'"):
        report.field("nope")


def test_kinds_are_inferred_without_a_schema() -> None:
    outputs = [
        {"id": i, "ok": True, "value": {"flag": i % 2 == 0, "color": "red", "note": f"n{i}"}}
        for i in range(6)
    ]
    gold = [
        {"id": i, "flag": True, "color": ["red", "blue"][i % 2], "note": f"n{i}"} for i in range(6)
    ]
    report = evaluate(outputs, gold)
    kinds = {f.path: f.kind for f in report.fields}
    assert kinds == {"$.flag": "choice", "$.color": "choice", "$.note": "string"}
    assert report.field("note").accuracy == 1.0


class Priority(enum.Enum):
    low = "low"
    high = "high"


class Ticket(pydantic.BaseModel):
    priority: Priority
    owner: str | None = None


def test_a_pydantic_schema_gives_enum_kinds_through_refs() -> None:
    outputs = [{"id": "a", "ok": True, "value": {"priority": "high", "owner": "Ann"}}]
    gold = {"a": {"priority": "low", "owner": "ann"}}
    report = evaluate(outputs, gold, Ticket)
    assert report.field("priority").kind == "choice"
    choice = report.field("priority").choice
    assert choice is not None
    assert choice.labels == ("low", "high")
    assert report.field("owner").kind == "string"
    assert report.field("owner").normalized_accuracy == 1.0


def test_dataframes_are_accepted_as_records_and_gold() -> None:
    frame = pd.DataFrame({"value": ["bug", "billing", None], "ok": [True, True, False]})
    frame["error"] = [None, None, "ExtractionFailed: gave up"]
    gold = pd.DataFrame({"id": [0, 1, 2], "value": ["bug", "bug", "bug"]})
    report = evaluate(frame, gold)
    assert report.field("$").accuracy == pytest.approx(1 / 3)
    assert report.coverage.failures == {"ExtractionFailed": 1}


def test_evaluate_is_public() -> None:
    assert "evaluate" in extract.__all__
    assert "EvalReport" in extract.__all__
