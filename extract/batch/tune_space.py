"""What ``extract tune`` searches and what it reports: the candidates (:class:`Space`), the
gold it works on (:class:`GoldSet`), and each candidate's scores (:class:`Result`,
:class:`TuneReport`). The search itself is ``extract.batch.tune``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ..core.schema import Schema
from ..errors import ConfigError
from .evaluation.data import Gold
from .evaluation.metrics import Interval
from .labeling_config import LabelingConfig

Rendering = Literal["shape", "schema"]
DEFAULT_SHOTS = (0, 2, 4, 8)
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """One way of labeling: what ``extract label`` would be given."""

    instructions: str | None = None
    rendering: Rendering = "shape"
    shots: int = 0
    in_domain: bool = True
    samples: int = 1

    def describe(self) -> str:
        task = "default task" if self.instructions is None else repr(_cut(self.instructions))
        prior = "in-domain prior" if self.in_domain else "N/A prior"
        shown = f"{task}, {self.rendering}, k={self.shots}, {prior}"
        return shown + (f", samples={self.samples}" if self.samples > 1 else "")


@dataclasses.dataclass(frozen=True, slots=True)
class Space:
    """The candidates: every combination of these, the default (``label``'s) first."""

    instructions: tuple[str, ...] = ()
    renderings: tuple[Rendering, ...] = ("shape", "schema")
    shots: tuple[int, ...] = DEFAULT_SHOTS
    priors: tuple[bool, ...] = (True, False)
    samples: tuple[int, ...] = (1,)

    def candidates(self) -> list[Candidate]:
        """The default first, then the rest of the grid. Raises ConfigError for an empty axis
        or a negative k / samples below 1."""
        if not (self.renderings and self.shots and self.priors and self.samples):
            raise ConfigError("every axis of the search needs at least one value")
        if min(self.shots) < 0 or min(self.samples) < 1:
            raise ConfigError("k must be 0 or more and samples 1 or more")
        default = Candidate()
        grid = [
            Candidate(task, rendering, k, prior, n)
            for task in (None, *dict.fromkeys(self.instructions))
            for rendering in self.renderings
            for k in self.shots
            for prior in self.priors
            for n in self.samples
        ]
        return [default, *(c for c in dict.fromkeys(grid) if c != default)]


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """A candidate as scored: accuracy (with its bootstrap interval) on ``records`` tuning
    records, and its cost per labeled record, measured on ``measured`` uncached ones."""

    candidate: Candidate
    records: int
    accuracy: float
    low: float
    high: float
    rounds: int
    prompt_chars: float
    measured: int
    seconds_per_record: float | None
    tokens_per_record: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class TuneReport:
    """What ``tune`` found, and the config that holds it."""

    results: tuple[Result, ...]
    winner: Result
    default: Result
    difference: Interval
    temperature: float | None
    tuning_records: int
    calibration_records: int
    folds: int
    round_sizes: tuple[int, ...]
    calls: int
    budget_reached: bool
    config: LabelingConfig

    @property
    def significant(self) -> bool:
        """Whether the winner beats the default with the paired interval clear of 0."""
        return self.winner.candidate != self.default.candidate and self.difference.low > 0


@dataclasses.dataclass(frozen=True, slots=True)
class GoldSet:
    """The gold tune works on: each record's text, gold value and stratum (its label)."""

    texts: Mapping[str, str]
    values: Mapping[str, Any]
    strata: Mapping[str, str]
    sha256: str | None = None

    @classmethod
    def of(
        cls, gold: Gold, texts: Mapping[str, str], schema: Schema, sha256: str | None = None
    ) -> GoldSet:
        """Gold records that have a text; strata by the first choice field's gold value.

        Raises ConfigError when fewer than 10 gold records have a text."""
        keys = [k for k in gold.values if k in texts]
        if len(keys) < 10:
            raise ConfigError(
                f"only {len(keys)} gold records have a text; tune needs at least 10 (give the"
                " labeling input with --input, or gold read from it with --gold-field)"
            )
        path = _first_choice(schema)
        strata = {k: _stratum(gold.values[k], path) for k in keys}
        return cls({k: texts[k] for k in keys}, {k: gold.values[k] for k in keys}, strata, sha256)


def _first_choice(schema: Schema) -> str | None:
    """The top-level name of the schema's first enum field ("" for a bare enum), if any."""
    root = schema.json_schema
    if "enum" in root:
        return ""
    for name, sub in root.get("properties", {}).items():
        if isinstance(sub, dict) and ("enum" in sub or sub.get("type") == "boolean"):
            return str(name)
    return None


def _stratum(value: Any, path: str | None) -> str:
    if path is None:
        return ""
    picked = value if path == "" else value.get(path) if isinstance(value, dict) else None
    return json.dumps(picked, sort_keys=True)


def _cut(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
