"""Several runs side by side: per field accuracy and macro-F1, and each run's difference in
accuracy from the first run with a paired bootstrap interval (see ``extract._eval_metrics``).

The pairing is by id: a difference is measured over the records that both runs scored for
that field (failed records count as wrong, as in the accuracy itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ...errors import ConfigError
from .metrics import RESAMPLES, SEED, Interval, paired_bootstrap
from .report import EvalReport, FieldReport


@dataclasses.dataclass(frozen=True, slots=True)
class FieldComparison:
    """One field across runs; ``versus_first[i]`` compares run ``i`` with run 0 (None for run 0
    itself, and when the two runs share no scored record)."""

    path: str
    accuracy: tuple[float | None, ...]
    macro_f1: tuple[float | None, ...]
    versus_first: tuple[Interval | None, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """Runs (by name), their reports, and each field compared across them."""

    runs: tuple[str, ...]
    reports: tuple[EvalReport, ...]
    fields: tuple[FieldComparison, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each run's report under its name, and the field comparisons."""
        return {
            "runs": {name: r.to_dict() for name, r in zip(self.runs, self.reports, strict=True)},
            "fields": [
                {
                    "path": f.path,
                    "accuracy": list(f.accuracy),
                    "macro_f1": list(f.macro_f1),
                    "versus_first": [
                        dataclasses.asdict(i) if i is not None else None for i in f.versus_first
                    ],
                }
                for f in self.fields
            ],
        }


def compare(
    reports: Sequence[EvalReport],
    names: Sequence[str],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """Put the reports of several runs side by side; the first run is the baseline.

    Raises ConfigError when there are fewer than two reports or names and reports differ in
    number.
    """
    if len(reports) < 2 or len(reports) != len(names):
        raise ConfigError("compare needs two or more reports, each with a name")
    paths = list(dict.fromkeys(f.path for r in reports for f in r.fields))
    fields = []
    for path in paths:
        found = [_field(r, path) for r in reports]
        base = _rights(reports[0], path)
        intervals: list[Interval | None] = [None]
        for report in reports[1:]:
            other = _rights(report, path)
            common = [key for key in base if key in other]
            intervals.append(
                paired_bootstrap(
                    [base[k] for k in common],
                    [other[k] for k in common],
                    resamples=resamples,
                    seed=seed,
                )
                if common
                else None
            )
        fields.append(
            FieldComparison(
                path=path,
                accuracy=tuple(f.accuracy if f else None for f in found),
                macro_f1=tuple(f.choice.macro_f1 if f and f.choice else None for f in found),
                versus_first=tuple(intervals),
            )
        )
    return Comparison(tuple(names), tuple(reports), tuple(fields))


def _field(report: EvalReport, path: str) -> FieldReport | None:
    return next((f for f in report.fields if f.path == path), None)


def _rights(report: EvalReport, path: str) -> dict[str, bool]:
    """Whether each record scored for ``path`` got it right, by id key."""
    return {r.key: path not in r.wrong for r in report.records if path in r.scored}
