"""``extract export``: a finished JSONL output as a CSV or Parquet table."""

from __future__ import annotations

from pathlib import Path

import click

from ..batch.tables import export as export_table


@click.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "-o",
    "target",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The table to write: a .csv or .parquet file (Parquet needs the parquet extra).",
)
def export(output: Path, target: Path) -> None:
    """Write the records of OUTPUT (an `extract label` JSONL file) to a CSV or Parquet table.

    One row per record: id, line, ok, attempts, cached, chunks, error_type, error, tokens and
    server seconds, then a column per top-level field of the values. The JSONL stays the
    run's resumable log; export it again after a resumed run.
    """
    if output.resolve() == target.resolve():
        raise click.UsageError("the table must be another file than OUTPUT")
    rows = export_table(output, target)
    click.echo(f"{rows} rows written to {target}", err=True)
