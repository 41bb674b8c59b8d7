"""``evaluate``: how good the labels of a batch run are, measured against gold.

Records and gold are matched by id (as text). Only output records that have gold are scored;
gold without an output record and output without gold are counted in ``Coverage``.
A failed record counts as wrong for every field it has gold for (``accuracy``);
``ok_accuracy`` leaves failed records out. Field kinds and their scores are described in
``extract._eval_fields``, the formulas in ``extract._eval_metrics``.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ...core.schema import Schema
from ...core.schema_walk import json_path
from ...errors import ConfigError, InputError
from ..sidecar import read_sidecar
from .data import Gold, Outcome, load_gold, read_outputs
from .doubts import gold_doubts
from .fields import (
    FieldSpec,
    element_set,
    inferred_spec,
    is_blank,
    label_text,
    read_cell,
    same,
    same_normalised,
    schema_specs,
)
from .metrics import FAILED, MISSING, calibration, choice_metrics
from .report import Cost, Coverage, EvalReport, FieldReport, RecordResult

MAX_LISTED = 20  # unmatched ids shown by example


def evaluate(
    records: Any,
    gold: Any,
    schema: Any = None,
    *,
    gold_field: str | None = None,
    id_field: str = "id",
    text_field: str = "text",
    tolerance: float = 0.0,
) -> EvalReport:
    """Score a batch run's records against gold.

    ``records``: the JSONL path ``extract label`` wrote, a pandas DataFrame, or an iterable of
    output dicts or ``Record``s. ``gold``: a JSONL or CSV path, a DataFrame, an iterable of rows
    (id plus the fields, or a ``value``), or a mapping of id to gold value; with ``gold_field``,
    gold is that field of the labeling input (ids as ``extract label`` gave them).
    ``schema`` (anything ``Schema.load`` takes) says each field's kind; without it, the
    schema ``extract label`` kept beside a JSONL path (``OUTPUT.schema.json``, see
    ``extract.batch.sidecar``) does; for records given in memory without a schema, kinds are
    inferred from the values (a guess: pass ``schema``). ``tolerance`` is the absolute
    tolerance for numbers.

    Raises InputError for a missing or unreadable file, gold without ids, no id in common, or
    no gold field the values have; SchemaError for a bad schema; ConfigError for a negative
    tolerance.
    """
    if not tolerance >= 0:
        raise ConfigError(f"tolerance must be 0 or more, not {tolerance}")
    outcomes = read_outputs(records)
    golden = load_gold(gold, id_field=id_field, gold_field=gold_field, text_field=text_field)
    loaded: Schema | None
    if schema is not None:
        loaded = Schema.load(schema)
    elif isinstance(records, str | os.PathLike):
        loaded = read_sidecar(records)
    else:
        loaded = None
    return score(outcomes, golden, loaded, tolerance=tolerance)


def score(
    outcomes: Sequence[Outcome], gold: Gold, schema: Schema | None, *, tolerance: float
) -> EvalReport:
    """The report of already-read records and gold (see :func:`evaluate`)."""
    first: dict[str, Outcome] = {}
    for outcome in outcomes:
        first.setdefault(outcome.key, outcome)
    matched = [o for o in first.values() if o.key in gold.values]
    if not matched:
        raise InputError(
            f"no output record has a gold id (output ids: {_sample(first)}; gold ids:"
            f" {_sample(gold.values)}); check that gold and output come from the same input,"
            " or name the gold id field with --id-field"
        )
    specs = _specs(schema, matched, gold)
    tallies = {spec.path: _Tally(spec) for spec in specs}
    results = [_score_record(o, gold.values[o.key], specs, tallies, tolerance) for o in matched]
    fields = tuple(tallies[spec.path].report() for spec in specs)
    scored = [r for r in results if r.scored]
    points = [(r.confidence, not r.wrong) for r in scored if r.ok and r.confidence is not None]
    unscored = sum(r.ok and r.confidence is None for r in scored)
    missing = [key for key in gold.values if key not in first]
    failures = collections.Counter(o.error or "unknown" for o in matched if not o.ok)
    ok = sum(o.ok for o in matched)
    coverage = Coverage(
        records=len(matched),
        ok=ok,
        failed=len(matched) - ok,
        rate=ok / len(matched),
        failures=dict(failures.most_common()),
        gold_without_output=len(missing),
        output_without_gold=len(first) - len(matched),
        missing_ids=tuple(missing[:MAX_LISTED]),
        duplicate_ids=len(outcomes) - len(first),
        duplicate_gold_ids=gold.duplicates,
    )
    return EvalReport(
        fields=fields,
        coverage=coverage,
        record_accuracy=sum(not r.wrong for r in scored) / len(scored) if scored else 0.0,
        calibration=calibration(points, unscored=unscored),
        cost=_cost(outcomes),
        records=tuple(results),
        doubtful_gold=gold_doubts(((o, gold.values[o.key]) for o in matched), specs),
    )


def _sample(keys: Mapping[str, Any]) -> str:
    shown = [repr(k) for k in list(keys)[:3]]
    return ", ".join(shown) + (", ..." if len(keys) > 3 else "") if shown else "none"


def _specs(schema: Schema | None, matched: Sequence[Outcome], gold: Gold) -> list[FieldSpec]:
    golds = [gold.values[o.key] for o in matched]
    values = [o.value for o in matched if o.ok]
    # The values say whether the root is an object; gold only when every record failed.
    objects = any(isinstance(v, Mapping) for v in values or golds)
    if schema is not None:
        specs = schema_specs(schema)
    elif objects:
        names = list(dict.fromkeys(k for v in values if isinstance(v, Mapping) for k in v))
        names = names or list(dict.fromkeys(k for g in golds if isinstance(g, Mapping) for k in g))
        specs = [_inferred(json_path((name,)), name, values, golds) for name in names]
    else:
        specs = [_inferred("$", None, values, golds)]
    if values and not objects and all(isinstance(g, Mapping) for g in golds):
        raise InputError(
            "the values are bare scalars, but gold rows hold fields; put the gold label in a"
            " 'value' column (or key), or name its field with --gold-field"
        )
    kept = [s for s in specs if any(_present(s, g) for g in golds)]
    if not kept:
        held = ", ".join(sorted({str(k) for g in golds if isinstance(g, Mapping) for k in g}))
        paths = ", ".join(s.path for s in specs)
        raise InputError(
            f"no gold field matches a field of the values (fields: {paths or 'none'};"
            f" gold has: {held or 'none'});"
            " name gold columns after the value's fields, or use a 'value' column"
        )
    return kept


def _inferred(path: str, name: str | None, values: list[Any], golds: list[Any]) -> FieldSpec:
    probe = FieldSpec(path, name, "exact")
    predicted = [v for ok, v in map(probe.pick, values) if ok]
    gold = [g for ok, g in map(probe.pick, golds) if ok and not is_blank(g)]
    return inferred_spec(path, name, predicted, gold)


def _present(spec: FieldSpec, gold: Any) -> bool:
    present, value = spec.pick(gold)
    return present and not is_blank(value)


class _Tally:
    """One field's running counts while records are scored."""

    def __init__(self, spec: FieldSpec) -> None:
        self.spec = spec
        self.golds: list[str] = []
        self.predicted: list[str] = []
        self.records = self.correct = self.ok_records = self.ok_correct = self.normalised = 0
        self.overlap = self.predicted_items = self.gold_items = 0

    def add(self, outcome: Outcome, gold: Any, tolerance: float) -> bool:
        """Count one record with gold for the field; returns whether it is right."""
        spec = self.spec
        present, value = spec.pick(outcome.value) if outcome.ok else (False, None)
        if spec.kind == "choice":
            shown = label_text(value) if present else MISSING if outcome.ok else FAILED
            right = shown == label_text(gold)
            self.golds.append(label_text(gold))
            self.predicted.append(shown)
        else:
            right = present and same(value, gold, spec, tolerance)
        self.records += 1
        self.correct += right
        self.ok_records += outcome.ok
        self.ok_correct += right and outcome.ok
        self.normalised += present and same_normalised(value, gold)
        if spec.kind == "list":
            mine = element_set(value) if present and isinstance(value, list) else set()
            theirs = element_set(gold) if isinstance(gold, list) else {label_text(gold)}
            self.overlap += len(mine & theirs)
            self.predicted_items += len(mine)
            self.gold_items += len(theirs)
        return right

    def report(self) -> FieldReport:
        spec, n = self.spec, self.records
        order = [label_text(o) for o in spec.options]
        return FieldReport(
            path=spec.path,
            kind=spec.kind,
            records=n,
            correct=self.correct,
            accuracy=self.correct / n,
            ok_records=self.ok_records,
            ok_accuracy=self.ok_correct / self.ok_records if self.ok_records else None,
            choice=choice_metrics(self.golds, self.predicted, order)
            if spec.kind == "choice"
            else None,
            normalized_accuracy=self.normalised / n if spec.kind == "string" else None,
            precision=_ratio(self.overlap, self.predicted_items) if spec.kind == "list" else None,
            recall=_ratio(self.overlap, self.gold_items) if spec.kind == "list" else None,
        )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _score_record(
    outcome: Outcome,
    gold: Any,
    specs: Sequence[FieldSpec],
    tallies: Mapping[str, _Tally],
    tolerance: float,
) -> RecordResult:
    scored, wrong = [], []
    # Gold as it was scored (CSV text read by the field's kind), to show beside the value.
    shown = dict(gold) if isinstance(gold, Mapping) else gold
    for spec in specs:
        present, raw = spec.pick(gold)
        if not present or is_blank(raw):
            continue
        scored.append(spec.path)
        value = read_cell(raw, spec)
        if spec.name is None:
            shown = value
        else:
            shown[spec.name] = value
        if not tallies[spec.path].add(outcome, value, tolerance):
            wrong.append(spec.path)
    return RecordResult(
        id=outcome.id,
        key=outcome.key,
        line=outcome.line,
        ok=outcome.ok,
        value=outcome.value,
        gold=shown,
        confidence=outcome.min_confidence,
        error=outcome.error,
        scored=tuple(scored),
        wrong=tuple(wrong),
    )


def _cost(outcomes: Sequence[Outcome]) -> Cost:
    called = [o for o in outcomes if not o.cached]
    prompt = sum(o.prompt_tokens for o in called)
    output = sum(o.output_tokens for o in called)
    seconds = sum(o.seconds for o in called)
    return Cost(
        records=len(called),
        cached=len(outcomes) - len(called),
        prompt_tokens=prompt,
        output_tokens=output,
        server_seconds=seconds,
        tokens_per_record=(prompt + output) / len(called) if called else None,
        seconds_per_record=seconds / len(called) if called else None,
    )
