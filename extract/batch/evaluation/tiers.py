"""A cascade seen through its gold: what each tier did, and the tiers' thresholds chosen jointly.

:func:`tier_report` reads a cascade's output (records carrying ``tier``, ``accepted`` and
``tier_usage``, as ``extract label --escalate`` writes them) beside eval's scored records, and
reports per tier: the records it accepted (its coverage of all), their accuracy, its cost (server
seconds over the records that reached it), and the total cost against labeling everything with
the last tier (its seconds per record, times every record).

:func:`joint_thresholds` takes one eval report per tier, each the tier's run on the same gold
(every tier labels the whole gold), and chooses every tier's threshold jointly
(``extract.core.cascade``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...core.cascade import CascadeGuarantee, TierPoint, choose_thresholds
from ...errors import InputError
from .data import record_key
from .report import EvalReport


@dataclasses.dataclass(frozen=True, slots=True)
class TierLine:
    """One scored record's share of a cascade: the tier that gave it, whether it was
    accepted, and the server seconds each tier it went through spent on it."""

    key: str
    tier: int
    accepted: bool
    seconds: tuple[float, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class TierFigures:
    """One tier on the gold: records that reached it, those it accepted (and their share of
    every record), their accuracy, and its server seconds over the records that reached it."""

    tier: int
    reached: int
    accepted: int
    coverage: float
    accuracy: float | None
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class TierReport:
    """Every tier's figures, the records no tier accepted (and their accuracy), the cascade's
    total seconds and what the last tier alone would have spent on every record."""

    records: int
    tiers: tuple[TierFigures, ...]
    review: int
    review_accuracy: float | None
    seconds: float
    last_tier_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_tier_lines(path: str | Path) -> list[TierLine]:
    """The cascade fields of an output file's records; empty when it is no cascade's.

    Raises InputError for a line that is not JSON."""
    lines: list[TierLine] = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                raise InputError(f"{path} line {number} is not JSON") from None
            tier = row.get("tier") if isinstance(row, dict) else None
            if not isinstance(tier, int) or isinstance(tier, bool) or tier < 1:
                continue
            usage = row.get("tier_usage")
            usage = usage if isinstance(usage, list) else []
            seconds = tuple(_seconds(u) for u in usage)
            key = record_key(row.get("id"), row.get("line"))
            lines.append(TierLine(key, tier, row.get("accepted") is True, seconds))
    return lines


def tier_report(lines: Iterable[TierLine], report: EvalReport) -> TierReport | None:
    """Per-tier figures of a cascade's output on the gold ``report`` scored; None when no
    scored record carries a tier."""
    by_key = {line.key: line for line in lines}
    scored = [(r, by_key[r.key]) for r in report.records if r.scored and r.key in by_key]
    if not scored:
        return None
    count = max(max(line.tier, len(line.seconds)) for _, line in scored)
    figures = []
    for tier in range(1, count + 1):
        mine = [(r, line) for r, line in scored if line.accepted and line.tier == tier]
        reached = [line for _, line in scored if len(line.seconds) >= tier]
        right = sum(not r.wrong for r, _ in mine)
        figures.append(
            TierFigures(
                tier,
                len(reached),
                len(mine),
                len(mine) / len(scored),
                right / len(mine) if mine else None,
                sum(line.seconds[tier - 1] for line in reached),
            )
        )
    review = [r for r, line in scored if not line.accepted]
    last = figures[-1]
    per_record = last.seconds / last.reached if last.reached else None
    return TierReport(
        records=len(scored),
        tiers=tuple(figures),
        review=len(review),
        review_accuracy=sum(not r.wrong for r in review) / len(review) if review else None,
        seconds=sum(f.seconds for f in figures),
        last_tier_seconds=None if per_record is None else per_record * len(scored),
    )


def render_tiers(tiers: TierReport) -> str:
    """The per-tier figures as text lines."""
    out = [f"cascade: {tiers.records} scored records"]
    for f in tiers.tiers:
        accuracy = "-" if f.accuracy is None else f"{f.accuracy:.3f}"
        out.append(
            f"  tier {f.tier}: reached {f.reached}, accepted {f.accepted} "
            f"(coverage {f.coverage:.3f}), accuracy {accuracy}, {f.seconds:.1f} server s"
        )
    accuracy = "-" if tiers.review_accuracy is None else f"{tiers.review_accuracy:.3f}"
    out.append(f"  review (no tier accepted): {tiers.review}, accuracy {accuracy}")
    if tiers.last_tier_seconds:
        share = tiers.seconds / tiers.last_tier_seconds
        out.append(
            f"  cost: {tiers.seconds:.1f} server s, against about "
            f"{tiers.last_tier_seconds:.1f} for the last tier on every record ({share:.2f}x)"
        )
    else:
        out.append(f"  cost: {tiers.seconds:.1f} server s")
    return "\n".join(out)


def joint_thresholds(
    reports: Sequence[EvalReport], target: float, delta: float
) -> CascadeGuarantee:
    """Every tier's threshold, chosen jointly on the gold records every tier's run scored.

    ``reports``: one per tier, in tier order, each the tier's own run over the same gold.
    Raises InputError when the runs share no scored record; ValueError for a target or delta
    outside (0, 1).
    """
    tables: list[Mapping[str, TierPoint]] = [
        {
            r.key: (r.confidence if r.ok else None, r.ok and not r.wrong)
            for r in rep.records
            if r.scored
        }
        for rep in reports
    ]
    common = [key for key in tables[0] if all(key in t for t in tables[1:])]
    if not common:
        raise InputError(
            "the tiers' runs share no scored gold record: label the same gold with every tier"
        )
    return choose_thresholds([[t[key] for t in tables] for key in common], target, delta)


def render_guarantee(found: CascadeGuarantee) -> str:
    """The joint thresholds, or the refusal, as text lines."""
    head = (
        f"cascade thresholds for {found.target:g} accuracy at {1 - found.delta:g} confidence, "
        f"on {found.records} gold records labeled by every tier:"
    )
    if found.thresholds is None:
        return f"{head}\n  refused: {found.reason}"
    lines = [head]
    for n, t in enumerate(found.tiers, 1):
        lines.append(
            f"  tier {n}: threshold {t.threshold:.4f}, accepts {t.accepted} of {t.reached} "
            f"that reach it, {t.correct} right"
        )
    accuracy = found.accuracy or 0.0
    lines.append(
        f"  cascade: coverage {found.coverage:.3f}, accuracy {accuracy:.3f}, lower bound "
        f"{found.bound:.3f}"
    )
    joined = ",".join(f"{t:.4f}" for t in found.thresholds)
    lines.append(f"  label with: --thresholds {joined}")
    return "\n".join(lines)


def _seconds(usage: Any) -> float:
    total = usage.get("total_duration") if isinstance(usage, Mapping) else None
    return total / 1e9 if isinstance(total, int) and not isinstance(total, bool) else 0.0
