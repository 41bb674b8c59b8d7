"""``extract eval``: the terminal table, --json equal to scikit-learn, comparisons, exit codes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sklearn.metrics import accuracy_score, f1_score

from extract.batch.sidecar import sidecar_path, write_sidecar
from extract.cli import main
from extract.core.schema import Schema

LABELS = ["bug", "billing", "feature"]
SCHEMA = {"type": "object", "properties": {"category": {"enum": LABELS}}}
SCALAR = json.dumps({"type": "string"})


def write_run(path: Path, gold: list[str], noise: float, seed: int) -> list[str]:
    """A run's output file over ids 0..n-1; returns its predictions ("(failed)" for failures)."""
    rng = random.Random(seed)
    guesses, lines = [], []
    for i, truth in enumerate(gold):
        usage = {"prompt_eval_count": 50, "eval_count": 10, "total_duration": 250_000_000}
        if rng.random() < 0.05:
            error = {"type": "ExtractionFailed", "message": "gave up"}
            lines.append({"id": i, "ok": False, "error": error, "attempts": 3, "usage": usage})
            guesses.append("(failed)")
            continue
        guess = rng.choice(LABELS) if rng.random() < noise else truth
        confidence = {"$.category": rng.uniform(0.5, 1.0)}
        value = {"category": guess}
        lines.append(
            {"id": i, "ok": True, "value": value, "usage": usage, "confidence": confidence}
        )
        guesses.append(guess)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    write_sidecar(path, Schema.load(SCHEMA), "tiny")  # as `extract label` keeps it
    return guesses


@pytest.fixture
def gold(tmp_path: Path) -> tuple[Path, list[str]]:
    rng = random.Random(11)
    labels = [rng.choice(LABELS) for _ in range(150)]
    path = tmp_path / "gold.csv"
    path.write_text(
        "id,category\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)),
        encoding="utf-8",
    )
    return path, labels


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["eval", *args])


def test_json_numbers_equal_scikit_learn(gold: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, labels = gold
    guesses = write_run(tmp_path / "a.jsonl", labels, noise=0.3, seed=1)
    result = run(str(tmp_path / "a.jsonl"), "--gold", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (field,) = report["fields"]
    assert field["accuracy"] == pytest.approx(accuracy_score(labels, guesses))
    classes = sorted(set(labels) | set(guesses) - {"(failed)"})
    macro = f1_score(labels, guesses, labels=classes, average="macro", zero_division=0)
    assert field["choice"]["macro_f1"] == pytest.approx(macro)
    assert report["coverage"]["failed"] == guesses.count("(failed)")
    assert report["calibration"]["records"] == len(labels) - guesses.count("(failed)")
    assert report["cost"]["tokens_per_record"] == pytest.approx(60.0)


def test_the_table_shows_fields_classes_calibration_and_cost(
    gold: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, labels = gold
    write_run(tmp_path / "a.jsonl", labels, noise=0.3, seed=1)
    result = run(str(tmp_path / "a.jsonl"), "--gold", str(path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "records with gold: 150" in out
    assert "failed:" in out
    assert "$.category  choice" in out
    assert "accuracy counts failed records as wrong" in out
    assert "$.category: confusion matrix" in out
    assert "ECE" in out
    assert "60.0 tokens per record" in out
    assert "0.250 s per record" in out


def test_several_runs_are_compared_with_paired_intervals(
    gold: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, labels = gold
    first = write_run(tmp_path / "a.jsonl", labels, noise=0.5, seed=1)
    second = write_run(tmp_path / "b.jsonl", labels, noise=0.1, seed=2)
    files = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    result = run(*files, "--gold", str(path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert list(data["runs"]) == files
    (field,) = data["fields"]
    expected = [accuracy_score(labels, first), accuracy_score(labels, second)]
    assert field["accuracy"] == pytest.approx(expected)
    base, versus = field["versus_first"]
    assert base is None
    assert versus["records"] == 150
    assert versus["difference"] == pytest.approx(expected[1] - expected[0])
    assert versus["low"] <= versus["difference"] <= versus["high"]
    assert versus["low"] > 0  # noise 0.1 against 0.5: clearly better
    text = run(*files, "--gold", str(path))
    assert text.exit_code == 0, text.output
    assert "vs first: points [95% interval]" in text.output
    assert f"{100 * versus['difference']:+.1f} [" in text.output


def error_line(result: Result) -> str:
    return result.output.strip().splitlines()[-1]


def test_a_missing_gold_file_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    out.write_text('{"id": 1, "ok": true, "value": "x"}\n', encoding="utf-8")
    result = run(str(out), "--gold", str(tmp_path / "gold.csv"), "-s", SCALAR)
    assert result.exit_code == 2
    assert "error: InputError: no gold file at" in error_line(result)


def test_no_common_ids_exit_2_and_show_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    out.write_text('{"id": 1, "ok": true, "value": "x"}\n', encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "t1", "value": "x"}\n', encoding="utf-8")
    result = run(str(out), "--gold", str(gold), "-s", SCALAR)
    assert result.exit_code == 2
    assert "output ids: '1'; gold ids: 't1'" in error_line(result)


def test_without_a_kept_schema_eval_asks_for_one(
    gold: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, labels = gold
    write_run(tmp_path / "a.jsonl", labels, noise=0.3, seed=1)
    sidecar_path(tmp_path / "a.jsonl").unlink()
    result = run(str(tmp_path / "a.jsonl"), "--gold", str(path))
    assert result.exit_code == 2
    assert "pass --schema" in result.output
    assert "a.jsonl.schema.json" in result.output
    # Given, it is used: the enum is a choice field, whatever its values look like.
    given = tmp_path / "ticket.json"
    given.write_text(json.dumps(SCHEMA), encoding="utf-8")
    again = run(str(tmp_path / "a.jsonl"), "--gold", str(path), "-s", str(given), "--json")
    assert json.loads(again.output)["fields"][0]["kind"] == "choice"


def test_the_kept_schema_decides_kinds_the_values_would_hide(tmp_path: Path) -> None:
    # Two enum values over three records: guessed from the values, a free string field.
    out, gold = tmp_path / "a.jsonl", tmp_path / "gold.jsonl"
    out.write_text(
        "".join(
            json.dumps({"id": i, "ok": True, "value": {"category": c}}) + "\n"
            for i, c in enumerate(["bug", "billing", "feature"])
        ),
        encoding="utf-8",
    )
    gold.write_text(
        "".join(
            json.dumps({"id": i, "category": c}) + "\n"
            for i, c in enumerate(["bug", "billing", "bug"])
        ),
        encoding="utf-8",
    )
    write_sidecar(out, Schema.load(SCHEMA), None)
    result = run(str(out), "--gold", str(gold))
    assert result.exit_code == 0, result.output
    assert "$.category: confusion matrix" in result.output


def test_html_takes_one_output(gold: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, labels = gold
    write_run(tmp_path / "a.jsonl", labels, noise=0.3, seed=1)
    args = [str(tmp_path / "a.jsonl")] * 2
    result = run(*args, "--gold", str(path), "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert "--html reports on one OUTPUT" in result.output


def test_a_bad_schema_exits_2(gold: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, labels = gold
    write_run(tmp_path / "a.jsonl", labels, noise=0.3, seed=1)
    result = run(str(tmp_path / "a.jsonl"), "--gold", str(path), "--schema", "no-such-schema")
    assert result.exit_code == 2
    assert "SchemaError" in error_line(result)


def test_eval_and_review_are_listed() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "eval" in result.output
    assert "review" in result.output
