"""``extract eval``: how good are the labels? Score output files against gold."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..batch.cascade import write_thresholds
from ..batch.evaluation import acceptance
from ..batch.evaluation.compare import compare
from ..batch.evaluation.data import Outcome, load_gold, read_outputs, read_texts
from ..batch.evaluation.evaluate import score
from ..batch.evaluation.report import EvalReport
from ..batch.evaluation.text import render_comparison, render_report
from ..batch.evaluation.tiers import (
    joint_thresholds,
    read_tier_lines,
    render_guarantee,
    render_tiers,
    tier_report,
)
from ..batch.labeling_config import LabelingConfig, file_sha256
from ..batch.sidecar import SUFFIX, read_sidecar
from ..core.guarantee import Guarantee
from ..core.schema import Schema
from ..errors import ConfigError


@click.command("eval")
@click.argument(
    "outputs", metavar="OUTPUT...", nargs=-1, required=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--gold",
    "-g",
    "gold_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="JSONL or CSV: the id plus the expected fields (or a `value`), or a review CSV.",
)
@click.option(
    "--gold-field",
    help="Read GOLD as the labeling input and take gold from this field (e.g. label).",
)
@click.option(
    "--schema",
    "-s",
    help="Bundled schema name or .json file: each field's kind. Default: the schema"
    f" `extract label` kept beside OUTPUT (OUTPUT{SUFFIX}).",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False),
    help="The labeling input, to show each record's text in the HTML report.",
)
@click.option("--id-field", default="id", show_default=True, help="Field holding the id.")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Absolute tolerance for numbers (a relative 1e-6 always applies).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report (needs the report extra: matplotlib).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead.")
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Set the confidence threshold whose accepted records are at least this accurate "
    "(with probability 1 - --delta), per record and per choice field, and write it into "
    "--config. GOLD must be gold no tuning saw.",
)
@click.option(
    "--delta",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="The chance the --target-accuracy guarantee is allowed to fail.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A labeling config: with --target-accuracy, the thresholds are written into it "
    "(created when missing); its calibration split, if any, picks the gold rows used; its "
    "record threshold decides `accepted` for records that carry none.",
)
@click.option(
    "--cascade",
    "cascade_target",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    metavar="TARGET",
    help="OUTPUTs are a cascade's tiers, in order, each run over the same GOLD: choose every "
    "tier's threshold jointly so that the cascade's accepted records are at least TARGET "
    "accurate, with probability 1 - --cascade-delta.",
)
@click.option(
    "--cascade-delta",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="With --cascade: the chance allowed that the thresholds miss TARGET.",
)
@click.option(
    "--write-cascade",
    "cascade_config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --cascade: also write the thresholds into this labeling config file's "
    '"cascade" section (created when missing; its tiers and other keys are kept).',
)
def evaluate_command(
    outputs: tuple[str, ...],
    gold_path: str,
    gold_field: str | None,
    schema: str | None,
    input_path: str | None,
    id_field: str,
    text_field: str,
    tolerance: float,
    html_path: Path | None,
    as_json: bool,
    target_accuracy: float | None,
    delta: float,
    config_path: Path | None,
    cascade_target: float | None,
    cascade_delta: float,
    cascade_config: Path | None,
) -> None:
    """Score OUTPUT (the JSONL `extract label` wrote) against GOLD; with several OUTPUTs,
    compare the runs side by side.

    Records match by id (as text). Per top-level field: enums and booleans get accuracy,
    macro-F1, per-class precision and recall and a confusion matrix; strings exact and
    case/whitespace-blind match; numbers match within --tolerance; lists set precision and
    recall. Failed records count as wrong ("ok only" leaves them out). Records with
    confidence get the expected calibration error (10 equal-width bins) and accuracy
    against coverage; on 50 or more, the confidence temperature they fit best. Gold rows to
    double-check: choice fields where the model contradicts the gold at confidence 0.8 or
    more. Several runs: each run's accuracy difference from the first, with a 95% paired
    bootstrap interval (2000 resamples, seed 0).

    Field kinds come from --schema, else from the schema `extract label` wrote beside each
    OUTPUT; without either, eval asks for --schema rather than guess them from the values.

    With --target-accuracy T, a confidence threshold is set by fixed-sequence testing with
    exact binomial (Clopper–Pearson) bounds: the records at or above it are at least T
    accurate with probability at least 1 - --delta, for a batch drawn like GOLD. When no
    threshold can be shown with this much gold, eval says how much more gold would do.

    \b
    A cascade's output (`extract label --escalate`) also gets per-tier figures: coverage,
    accuracy and server seconds, and the total against the last tier on every record. With
    --cascade, the OUTPUTs are each tier's run over the same gold, and eval chooses the
    tiers' thresholds jointly (fixed-sequence testing with exact binomial bounds; see
    `extract.core.cascade`) and prints the --thresholds to label with.

    \b
    Exit codes: 0 done; 1 --target-accuracy refused (no record threshold written);
    2 a missing file, gold without ids, no id in common, or gold that tuning saw.
    """
    if cascade_config is not None and cascade_target is None:
        raise click.UsageError("--write-cascade needs --cascade TARGET")
    if html_path is not None and len(outputs) > 1:
        raise click.UsageError("--html reports on one OUTPUT; give one file")
    if target_accuracy is not None and len(outputs) > 1:
        raise click.UsageError("--target-accuracy sets thresholds for one OUTPUT; give one file")
    if target_accuracy is not None and config_path is None:
        raise click.UsageError("--target-accuracy writes its thresholds into --config; name one")
    config = None
    if config_path is not None and (config_path.exists() or target_accuracy is None):
        config = LabelingConfig.load(config_path)
    given = Schema.load(schema) if schema is not None else None
    schemas = [given or _kept_schema(p) for p in outputs]
    gold = load_gold(gold_path, id_field=id_field, gold_field=gold_field, text_field=text_field)
    read = [read_outputs(p) for p in outputs]
    reports = [
        score(outcomes, gold, s, tolerance=tolerance)
        for outcomes, s in zip(read, schemas, strict=True)
    ]
    if cascade_target is not None:
        joint = joint_thresholds(reports, cascade_target, cascade_delta)
        click.echo(
            json.dumps(dataclasses.asdict(joint), indent=1) if as_json else render_guarantee(joint)
        )
        if cascade_config is not None and joint.thresholds is not None:
            write_thresholds(cascade_config, joint)
            click.echo(f"wrote the thresholds into {cascade_config}", err=True)
        return
    section: dict[str, Any] = {}
    refused = False
    if len(reports) == 1 and (target_accuracy is not None or config is not None):
        threshold = config.record_threshold if config is not None else None
        accepted = acceptance.acceptance(
            reports[0], read[0], threshold.threshold if threshold is not None else None
        )
        found = {}
        if target_accuracy is not None:
            assert config_path is not None
            keep, sha = _calibration_rows(gold_path, config)
            found = acceptance.guarantees(
                acceptance.points(reports[0], read[0], keep), target_accuracy, delta
            )
            if not found:
                raise click.UsageError(
                    "no scored record carries a confidence, so no threshold can be set; label "
                    "with confidence (the default for enum and boolean fields)"
                )
            refused = found[acceptance.RECORD].refused if acceptance.RECORD in found else True
            _write_thresholds(config_path, config, found, read[0], reports[0], keep, sha)
        section = {"found": found, "accepted": accepted}
    if len(reports) == 1:
        tiers = tier_report(read_tier_lines(outputs[0]), reports[0])
        if as_json:
            data = reports[0].to_dict()
            if section:
                data["guarantee"] = acceptance.to_dict(section["found"], section["accepted"])
            if tiers is not None:
                data["tiers"] = tiers.to_dict()
            click.echo(json.dumps(data, indent=1))
        else:
            click.echo(render_report(reports[0]))
            if section:
                click.echo("\n" + acceptance.render(section["found"], section["accepted"]))
            if tiers is not None:
                click.echo(render_tiers(tiers))
    else:
        comparison = compare(reports, list(outputs))
        click.echo(
            json.dumps(comparison.to_dict(), indent=1) if as_json else render_comparison(comparison)
        )
    if html_path is not None:
        texts = dict(gold.texts)
        if input_path is not None:
            keys = {r.key for r in reports[0].records}
            texts.update(read_texts(input_path, keys, id_field=id_field, text_field=text_field))
        _write_html(
            reports[0], html_path, title=f"extract eval: {Path(outputs[0]).name}", texts=texts
        )
        click.echo(f"wrote {html_path}", err=True)
    if target_accuracy is not None:
        click.echo(
            f"{'kept' if refused else 'wrote thresholds into'} {config_path}"
            + (" (no record threshold could be set)" if refused else ""),
            err=True,
        )
    if refused:
        sys.exit(1)


def _calibration_rows(gold_path: str, config: LabelingConfig | None) -> tuple[set[str] | None, str]:
    """The gold rows thresholds may be set on, and the gold file's hash: every row of gold no
    tuning saw, or the calibration split tune held out of the gold it tuned on. Raises
    click.UsageError for the tuning gold without a recorded split."""
    sha = file_sha256(gold_path)
    tuned_on = config.provenance.gold_sha256 if config and config.provenance else None
    if tuned_on is None or tuned_on != sha:
        return None, sha
    assert config is not None
    if config.calibration_ids is None:
        raise click.UsageError(
            "GOLD is the gold the config was tuned on, and the config records no calibration "
            "split of it: thresholds set on it would not be guaranteed; give other gold"
        )
    return set(config.calibration_ids), sha


def _write_thresholds(
    path: Path,
    config: LabelingConfig | None,
    found: dict[str, Guarantee],
    outcomes: list[Outcome],
    report: EvalReport,
    keep: set[str] | None,
    sha: str,
) -> None:
    """Write passed thresholds (and what the shift check needs) into the config; a refused
    record threshold leaves the config's as it was."""
    config = config or LabelingConfig()
    record = found.get(acceptance.RECORD)
    passed = {
        name: t
        for name, g in found.items()
        if name != acceptance.RECORD and (t := acceptance.as_threshold(g)) is not None
    }
    if record is None or record.refused:
        if not passed:
            return
        config = dataclasses.replace(config, field_thresholds=passed)
        config.save(path)
        return
    by_key = {o.key: o for o in outcomes}
    confidences = sorted(
        round(c, 4)
        for r in report.records
        if r.scored and (keep is None or r.key in keep)
        if (c := by_key[r.key].min_confidence) is not None and r.ok
    )
    config = dataclasses.replace(
        config,
        record_threshold=acceptance.as_threshold(record),
        field_thresholds=passed,
        calibration_sha256=sha,
        calibration_confidences=tuple(confidences),
    )
    config.save(path)


def _kept_schema(output: str) -> Schema:
    """The schema kept beside ``output``; a usage error asking for --schema when none is."""
    kept = read_sidecar(output)
    if kept is None:
        raise click.UsageError(
            f"no schema for {output}: pass --schema (the one it was labeled with), so that each"
            f" field is scored by its kind; `extract label` keeps it in {output}{SUFFIX}"
        )
    return kept


def _write_html(report: EvalReport, path: Path, *, title: str, texts: dict[str, str]) -> None:
    from ..batch.evaluation.html import render_html

    page = render_html(report, title=title, texts=texts)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
