"""``extract review``: export the records worth a person's look, and turn corrections into
examples."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import click

from ..batch.evaluation.data import read_outputs, read_texts
from ..batch.evaluation.review import review_examples, worth_review, write_review
from ..errors import ConfigError


@click.command()
@click.argument("source", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The review CSV to write (it must not exist yet: it may hold a person's work).",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False),
    help="The labeling input: adds each record's text to the CSV.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    help="Also export the records with a field under this confidence.",
)
@click.option("--id-field", default="id", show_default=True, help="Field holding the id.")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option(
    "--to-examples",
    type=click.Path(dir_okay=False, path_type=Path),
    help='Read FILE as a filled review CSV; write its corrected rows as {"text", "value"} lines.',
)
def review(
    source: Path,
    output: Path | None,
    input_path: str | None,
    min_confidence: float | None,
    id_field: str,
    text_field: str,
    to_examples: Path | None,
) -> None:
    """Export the records of FILE (the JSONL `extract label` wrote) worth a person's look:
    failed, a field under --min-confidence, or samples that disagree.

    The CSV holds id, line, text (with --input), the value as JSON, the record's confidence,
    the reason, and an empty `corrected` column: write the right value there as JSON (text
    that is not JSON reads as a string). Then the file is gold for `extract eval --gold
    FILE` (rows left empty are skipped), and `extract review FILE --to-examples
    examples.jsonl` turns it into example lines.

    \b
    Exit codes: 0 done; 2 a missing file, or the -o file exists already.
    """
    if to_examples is not None:
        if output is not None or input_path is not None or min_confidence is not None:
            raise click.UsageError("--to-examples reads a filled review CSV; leave out the rest")
        with _create(to_examples, "w") as out:
            written = review_examples(source, out)
        click.echo(f"wrote {written} examples to {to_examples}", err=True)
        return
    if output is None:
        raise click.UsageError("name the review CSV to write with -o")
    if output.exists():
        raise click.UsageError(f"{output} exists (it may hold corrections); remove it or use -o")
    outcomes = read_outputs(source)
    items = worth_review(outcomes, min_confidence=min_confidence)
    texts = None
    if input_path is not None:
        keys = {item.outcome.key for item in items}
        texts = read_texts(input_path, keys, id_field=id_field, text_field=text_field)
    with _create(output, "x") as out:
        rows = write_review(items, out, texts)
    click.echo(f"wrote {rows} of {len(outcomes)} records to {output}", err=True)
    if min_confidence is not None and not any(o.confidence for o in outcomes):
        click.echo("note: no record carries confidence; label with logprobs to get it", err=True)


def _create(path: Path, mode: str) -> IO[str]:
    try:
        return open(path, mode, encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
