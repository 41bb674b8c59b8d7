"""What ``python -m bench.labels`` prints: the table per sample, a check of ``extract.evaluate``
against scikit-learn, the temperature fitted on one sample and checked on the other, the goals.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extract import EvalReport

from . import labels_temperature as temp
from .labels_meter import Cost

FIELD = "$.sentiment"
GREEDY, CALIBRATED, PEER = "greedy", "calibrated", "peer: ollama format=schema"
CALIBRATED_NA = "calibrated N/A"
CALIBRATED_T = "calibrated, T from the first sample"
GOAL_GAIN = 0.15  # calibrated accuracy over greedy
GOAL_ECE = 0.10
FAILED = "(failed)"


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One configuration on one sample: its scores, what it cost, and its points."""

    name: str
    report: EvalReport
    cost: Cost  # the records' usage plus any request that belongs to no record
    content_free: Cost
    wall: float
    points: tuple[temp.Point, ...]  # (confidence, right) unrounded; empty for the peer
    mismatch: str | None  # how the server's log differs from the records, if it does

    @property
    def accuracy(self) -> float:
        return self.report.field(FIELD).accuracy

    @property
    def ece(self) -> float | None:
        return self.report.calibration.ece if self.report.calibration else None


def table(runs: Sequence[Run]) -> list[str]:
    """The markdown table of one sample's runs, and any disagreement of server and records."""
    lines = [
        "| configuration | accuracy | macro-F1 | ECE | coverage | share positive "
        "| server s / record | tokens / record | requests / record | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for run in runs:
        field, n = run.report.field(FIELD), run.report.coverage.records
        assert field.choice is not None
        positive = next((c.predicted for c in field.choice.classes if c.label == "positive"), 0)
        ece = f"{run.ece:.3f}" if run.ece is not None else "n/a"
        lines.append(
            f"| {run.name} | {run.accuracy:.3f} | {field.choice.macro_f1:.3f} | {ece} "
            f"| {run.report.coverage.rate:.3f} | {positive / n:.2f} | {run.cost.seconds / n:.3f} "
            f"| {run.cost.tokens / n:.0f} | {run.cost.requests / n:.2f} | {run.wall:.0f} |"
        )
        if run.content_free.requests:
            cf = run.content_free
            notes.append(
                f"- {run.name}: includes the prior's {cf.requests} content-free requests "
                f"({cf.seconds:.3f} s, {cf.tokens} tokens), which belong to no record"
            )
        if run.mismatch:
            notes.append(f"- {run.name}: the server's log and the records disagree: {run.mismatch}")
    return lines + (["", *notes] if notes else [])


def check_against_sklearn(folder: Path, name: str, report: EvalReport) -> str:
    """``report``'s accuracy, macro-F1 and ECE recomputed from the files it scored: the first two
    by scikit-learn, the ECE by ``bench.labels_temperature``."""
    try:
        from sklearn.metrics import accuracy_score, f1_score  # type: ignore[import-untyped]
    except ImportError:
        return "scikit-learn is not installed (the dev extra): the check is skipped"
    gold = {row["id"]: row["sentiment"] for row in _rows(folder / "gold.jsonl")}
    truth, predicted, points = [], [], []
    for row in _rows(folder / f"{name}.jsonl"):
        label = row["value"]["sentiment"] if row["ok"] else FAILED
        truth.append(gold[row["id"]])
        predicted.append(label)
        if row["ok"] and "min_confidence" in row:
            points.append((row["min_confidence"], label == gold[row["id"]]))
    classes = sorted(set(truth) | set(predicted) - {FAILED})
    ours = report.field(FIELD)
    assert ours.choice is not None
    pairs = [
        ("accuracy", ours.accuracy, float(accuracy_score(truth, predicted))),
        (
            "macro-F1",
            ours.choice.macro_f1,
            float(f1_score(truth, predicted, average="macro", labels=classes)),
        ),
        ("ECE", report.calibration.ece if report.calibration else 0.0, temp.ece(points)),
    ]
    agree = all(abs(a - b) < 1e-9 for _, a, b in pairs)
    shown = ", ".join(f"{what} {a:.4f} vs {b:.4f}" for what, a, b in pairs)
    verdict = "agree" if agree else "DISAGREE"
    return (
        f"extract.evaluate vs scikit-learn (ECE: an independent count) on {name}: "
        f"{shown}: {verdict}"
    )


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def temperature_section(first: Sequence[Run], second: Sequence[Run]) -> list[str]:
    """One temperature per calibrated configuration, fitted on ``first``'s sample (by ECE and by
    NLL) and applied to ``second``'s."""
    lines = [
        "Calibrated confidences under one temperature T (p ∝ exp((score − prior)/T)), fitted on "
        "the first sample, checked on the second (held out):",
        "",
        "| configuration | T | ECE fit | ECE held out | NLL fit | NLL held out "
        "| held out: mean confidence / accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    second_by_name = {run.name: run for run in second}
    for run in first:
        other = second_by_name.get(run.name)
        if run.content_free.requests == 0 or other is None or not run.points:
            continue  # only the calibrated configurations
        by_ece, by_nll = temp.fit(run.points, temp.ece), temp.fit(run.points, temp.nll)
        fitted = {"1 (as reported)": 1.0, f"{by_ece:g} (min ECE)": by_ece}
        fitted[f"{by_nll:g} (min NLL)"] = by_nll
        for shown, t in fitted.items():
            a, b = temp.rescaled(run.points, t), temp.rescaled(other.points, t)
            mean = sum(c for c, _ in b) / len(b)
            accuracy = sum(r for _, r in b) / len(b)
            lines.append(
                f"| {run.name} | {shown} | {temp.ece(a):.3f} | {temp.ece(b):.3f} "
                f"| {temp.nll(a):.3f} | {temp.nll(b):.3f} | {mean:.3f} / {accuracy:.3f} |"
            )
    return lines


def goals(runs: Sequence[Run], held_out: Sequence[Run] = ()) -> tuple[list[str], bool]:
    """The goal lines, and whether every goal was met: accuracy on the first sample's runs;
    ECE on the held-out sample's run under the first sample's temperature when there is one
    (a temperature is fitted on labeled records and checked on others), else on the first."""
    by_name = {run.name: run for run in runs}
    greedy, calibrated, peer = by_name[GREEDY], by_name[CALIBRATED], by_name[PEER]
    scaled = next((run for run in held_out if run.name == CALIBRATED_T), None)
    judged, where = (scaled, "held-out sample, " + CALIBRATED_T) if scaled else (calibrated, "")
    ece = judged.ece if judged.ece is not None else float("nan")
    checks = [
        (
            f"calibrated accuracy {calibrated.accuracy:.3f} ≥ greedy {greedy.accuracy:.3f} "
            f"+ {GOAL_GAIN:.2f}",
            calibrated.accuracy >= greedy.accuracy + GOAL_GAIN,
        ),
        (
            f"calibrated accuracy {calibrated.accuracy:.3f} ≥ the peer's {peer.accuracy:.3f}",
            calibrated.accuracy >= peer.accuracy,
        ),
        (
            f"ECE of the reported confidences {ece:.3f} ≤ {GOAL_ECE:.2f}"
            + (f" ({where})" if where else ""),
            judged.ece is not None and judged.ece <= GOAL_ECE,
        ),
    ]
    lines = ["Goals (accuracy: first sample):", ""]
    lines += [f"- {text}: {'met' if ok else 'MISSED'}" for text, ok in checks]
    if held_out:
        other = {run.name: run for run in held_out}
        lines.append(
            f"- held-out sample, for reference: calibrated {other[CALIBRATED].accuracy:.3f}, "
            f"peer {other[PEER].accuracy:.3f}, greedy {other[GREEDY].accuracy:.3f}"
        )
    return lines, all(ok for _, ok in checks)
