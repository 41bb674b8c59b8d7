"""``extract eval``: how good are the labels? Score output files against gold."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ..batch.cascade import write_thresholds
from ..batch.evaluation.compare import compare
from ..batch.evaluation.data import load_gold, read_outputs, read_texts
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
from ..batch.sidecar import SUFFIX, read_sidecar
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

    \b
    A cascade's output (`extract label --escalate`) also gets per-tier figures: coverage,
    accuracy and server seconds, and the total against the last tier on every record. With
    --cascade, the OUTPUTs are each tier's run over the same gold, and eval chooses the
    tiers' thresholds jointly (fixed-sequence testing with exact binomial bounds; see
    `extract.core.cascade`) and prints the --thresholds to label with.

    \b
    Exit codes: 0 done; 2 a missing file, gold without ids, or no id in common.
    """
    if cascade_config is not None and cascade_target is None:
        raise click.UsageError("--write-cascade needs --cascade TARGET")
    if html_path is not None and len(outputs) > 1:
        raise click.UsageError("--html reports on one OUTPUT; give one file")
    given = Schema.load(schema) if schema is not None else None
    schemas = [given or _kept_schema(p) for p in outputs]
    gold = load_gold(gold_path, id_field=id_field, gold_field=gold_field, text_field=text_field)
    reports = [
        score(read_outputs(p), gold, s, tolerance=tolerance)
        for p, s in zip(outputs, schemas, strict=True)
    ]
    if cascade_target is not None:
        found = joint_thresholds(reports, cascade_target, cascade_delta)
        click.echo(
            json.dumps(dataclasses.asdict(found), indent=1) if as_json else render_guarantee(found)
        )
        if cascade_config is not None and found.thresholds is not None:
            write_thresholds(cascade_config, found)
            click.echo(f"wrote the thresholds into {cascade_config}", err=True)
        return
    if len(reports) == 1:
        tiers = tier_report(read_tier_lines(outputs[0]), reports[0])
        if as_json:
            data = reports[0].to_dict()
            if tiers is not None:
                data["tiers"] = tiers.to_dict()
            click.echo(json.dumps(data, indent=1))
        else:
            click.echo(render_report(reports[0]))
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
