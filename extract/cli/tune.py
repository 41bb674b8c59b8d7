"""``extract tune``: choose the labeling options on your own gold, and write them to a config."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal, cast

import click

from ..batch.cache import Cache
from ..batch.evaluation.data import load_gold, read_texts
from ..batch.labeling_config import file_sha256
from ..batch.tune import DEFAULT_SHOTS, GoldSet, Space, Tuner, TuneReport
from ..client.backends import BackendName
from ..core import tuning
from ..core.schema import Schema
from .common import cache_options, local_server, model_options

Rendering = Literal["shape", "schema"]


def _numbers(text: str, flag: str, least: int) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < least:
        raise click.BadParameter(
            f"{text!r}: give numbers ≥ {least} separated by commas", param_hint=flag
        )
    return tuple(dict.fromkeys(values))


def _instructions(given: tuple[str, ...], path: Path | None) -> tuple[str, ...]:
    found = [g.strip() for g in given if g.strip()]
    if path is not None:
        found += [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    return tuple(dict.fromkeys(found))


@click.command("tune")
@click.argument("gold_path", metavar="GOLD", type=click.Path(exists=True, dir_okay=False))
@click.option("--schema", "-s", required=True, help="Bundled schema name, or a .json file.")
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the labeling config (JSON).",
)
@click.option(
    "--gold-field",
    help="GOLD is the labeling input; the gold label is this field, the text its text field.",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The labeling input holding each gold record's text (when GOLD has only labels).",
)
@click.option("--id-field", default="id", show_default=True, help="Field holding the id.")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@model_options
@cache_options
@click.option(
    "--instructions",
    "instructions",
    multiple=True,
    help="A candidate task sentence (repeatable); the default one is always tried too.",
)
@click.option(
    "--instructions-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Candidate task sentences, one a line.",
)
@click.option(
    "--renderings",
    default="shape,schema",
    show_default=True,
    help="Schema renderings to try: shape (the output's shape with label definitions), "
    "schema (the plain JSON Schema).",
)
@click.option(
    "--shots",
    default=",".join(map(str, DEFAULT_SHOTS)),
    show_default=True,
    help="Numbers of worked examples to try, drawn from the gold (stratified by label).",
)
@click.option(
    "--priors",
    default="in-domain,n/a",
    show_default=True,
    help="Priors to try: in-domain, n/a.",
)
@click.option("--samples", default="1", show_default=True, help="Sample counts to try, e.g. 1,5.")
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=tuning.DEFAULT_FOLDS,
    show_default=True,
    help="Cross-validation folds.",
)
@click.option(
    "--calibration",
    "calibration_share",
    type=click.FloatRange(0, 1, max_open=True),
    default=tuning.DEFAULT_CALIBRATION,
    show_default=True,
    help="Share of the gold held out of tuning, for `extract eval --target-accuracy`.",
)
@click.option("--budget", type=click.IntRange(min=1), help="At most this many model calls.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits and draws.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def tune_command(
    gold_path: str,
    schema: str,
    output: Path,
    gold_field: str | None,
    input_path: str | None,
    id_field: str,
    text_field: str,
    model: str | None,
    hosts: tuple[str, ...],
    backend: BackendName,
    local: bool,
    cache_path: Path | None,
    no_cache: bool,
    instructions: tuple[str, ...],
    instructions_file: Path | None,
    renderings: str,
    shots: str,
    priors: str,
    samples: str,
    folds: int,
    calibration_share: float,
    budget: int | None,
    seed: int,
    quiet: bool,
) -> None:
    """Choose the task sentence, schema rendering, worked examples, prior and samples that
    label GOLD best, by cross-validation, and write them to a labeling config (--output).

    GOLD is eval's gold (a JSONL or CSV of ids and values, with --input for the texts) or the
    labeling input itself with --gold-field. A share of it (--calibration) is held out of
    tuning, for `extract eval --target-accuracy --config`. Candidates are narrowed by
    successive halving: all on a small stratified subset, the better half on twice as many,
    down to the last two and the default, scored on all the tuning records. Ties go to the
    cheaper candidate (the shorter prompt, fewer samples).
    """
    loaded = Schema.load(schema)
    render = tuple(r.strip() for r in renderings.split(",") if r.strip())
    if not render or set(render) - {"shape", "schema"}:
        raise click.BadParameter(f"{renderings!r}: use shape, schema", param_hint="--renderings")
    prior_names = [p.strip().lower() for p in priors.split(",") if p.strip()]
    if not prior_names or set(prior_names) - {"in-domain", "n/a"}:
        raise click.BadParameter(f"{priors!r}: use in-domain, n/a", param_hint="--priors")
    space = Space(
        instructions=_instructions(instructions, instructions_file),
        renderings=cast(tuple[Rendering, ...], tuple(dict.fromkeys(render))),
        shots=_numbers(shots, "--shots", 0),
        priors=tuple(dict.fromkeys(p == "in-domain" for p in prior_names)),
        samples=_numbers(samples, "--samples", 1),
    )
    gold = load_gold(gold_path, id_field=id_field, gold_field=gold_field, text_field=text_field)
    texts: dict[str, str] = dict(gold.texts)
    if gold_field is None:
        if input_path is None:
            raise click.UsageError(
                "give the texts: --input INPUT (the labeling input), or read GOLD as the input"
                " with --gold-field"
            )
        texts = read_texts(input_path, set(gold.values), id_field=id_field, text_field=text_field)
    gold_set = GoldSet.of(gold, texts, loaded, sha256=file_sha256(gold_path))

    def echo(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    with local_server(local, hosts, model) as (urls, chosen):
        cache = None if no_cache else Cache(cache_path)
        try:
            tuner = Tuner(
                gold_set,
                loaded,
                model=chosen,
                hosts=urls,
                backend=backend,
                space=space,
                folds=folds,
                calibration_share=calibration_share,
                budget=budget,
                cache=cache,
                seed=seed,
                progress=echo,
            )
            echo(
                f"{len(gold_set.texts)} gold records: {len(tuner.calibration)} held out for"
                f" calibration ({calibration_share:.0%}), {len(tuner.tuning)} to tune on in"
                f" {folds} folds; {len(tuner.candidates)} candidates, about"
                f" {tuner.planned_calls()} model calls at most on an empty cache"
            )
            report = asyncio.run(tuner.run())
        finally:
            if cache is not None:
                cache.close()
    report.config.save(output)
    click.echo(render_report(report))
    click.echo(f"wrote {output}")


def render_report(report: TuneReport) -> str:
    """The report as text: the table of candidates, the winner, and what it means."""
    lines = [
        f"tuned on {report.tuning_records} records ({report.folds}-fold cross-validation);"
        f" {report.calibration_records} held out for calibration, never seen here",
        "successive halving: rounds on "
        + ", ".join(map(str, report.round_sizes))
        + f" records; {report.calls} model calls",
    ]
    if report.budget_reached:
        lines.append("the --budget ran out: the winner is the best of the last complete round")
    lines.append(
        f"{'accuracy':>8} {'95% interval':>14} {'records':>7} {'s/rec':>6} {'tok/rec':>7}"
        "  candidate"
    )
    for r in report.results:
        mark = "*" if r.candidate == report.winner.candidate else " "
        seconds = "-" if r.seconds_per_record is None else f"{r.seconds_per_record:.2f}"
        tokens = "-" if r.tokens_per_record is None else f"{r.tokens_per_record:.0f}"
        lines.append(
            f"{r.accuracy:8.3f} {f'[{r.low:.3f}, {r.high:.3f}]':>14} {r.records:7d}"
            f" {seconds:>6} {tokens:>7} {mark}{r.candidate.describe()}"
        )
    d = report.difference
    lines.append(f"chosen: {report.winner.candidate.describe()}")
    if report.winner.candidate == report.default.candidate:
        lines.append("the default stays: no candidate beat it")
    else:
        verdict = "significantly better" if report.significant else "not significantly better"
        lines.append(
            f"against the default: {d.difference:+.3f} [{d.low:+.3f}, {d.high:+.3f}] on"
            f" {d.records} paired records: {verdict}"
        )
    if report.temperature is not None:
        lines.append(
            f"confidence temperature fitted on out-of-fold predictions: {report.temperature:g}"
        )
    else:
        lines.append("confidence temperature: not fitted (too few records carry confidence)")
    return "\n".join(lines)
