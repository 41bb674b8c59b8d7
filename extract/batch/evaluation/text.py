"""Evaluation reports as plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .compare import Comparison
from .doubts import HIGH_CONFIDENCE, GoldDoubt
from .metrics import MIN_FIT_RECORDS, Calibration, ChoiceMetrics
from .report import Cost, Coverage, EvalReport, FieldReport

SHOWN_THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
DOUBTS_SHOWN = 20  # gold rows to double-check listed in the terminal
LABEL_WIDTH = 24


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned.

    >>> print(table(["a", "b"], [["x", "10"], ["yy", "2"]]))
    a    b
    x   10
    yy   2
    """
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def percent(value: float | None) -> str:
    """A share as a percentage with one decimal ('' when unknown).

    >>> percent(0.8125), percent(None)
    ('81.2%', '')
    """
    return "" if value is None else f"{100 * value:.1f}%"


def _short(label: str) -> str:
    return label if len(label) <= LABEL_WIDTH else label[: LABEL_WIDTH - 1] + "…"


def render_report(report: EvalReport) -> str:
    """The whole report: coverage, the field table, choice details, calibration, cost."""
    parts = [_coverage(report.coverage), _fields(report.fields)]
    parts.append(f"every scored field right: {percent(report.record_accuracy)} of records")
    for field in report.fields:
        if field.choice is not None:
            parts.append(_choice(field.path, field.choice))
    parts.append(_calibration(report))
    parts.append(_doubts(report.doubtful_gold))
    parts.append(_cost(report.cost))
    return "\n\n".join(parts) + "\n"


def _coverage(c: Coverage) -> str:
    failures = ", ".join(f"{kind} {n}" for kind, n in c.failures.items())
    lines = [
        f"records with gold: {c.records}   ok: {c.ok} (coverage {percent(c.rate)})"
        f"   failed: {c.failed}" + (f" ({failures})" if failures else "")
    ]
    if c.gold_without_output:
        shown = ", ".join(repr(i) for i in c.missing_ids[:5])
        lines.append(f"gold ids without an output record: {c.gold_without_output} (e.g. {shown})")
    if c.output_without_gold:
        lines.append(f"output records without gold (not scored): {c.output_without_gold}")
    if c.duplicate_ids or c.duplicate_gold_ids:
        lines.append(
            f"repeated ids (only the first is used): {c.duplicate_ids} in the output,"
            f" {c.duplicate_gold_ids} in gold"
        )
    return "\n".join(lines)


def _fields(fields: Sequence[FieldReport]) -> str:
    rows = []
    for f in fields:
        notes = []
        if f.normalized_accuracy is not None:
            notes.append(f"ignoring case and spaces {percent(f.normalized_accuracy)}")
        if f.kind == "list":
            notes.append(f"items: precision {percent(f.precision)}, recall {percent(f.recall)}")
        rows.append(
            [
                *field_cells(f),
                "; ".join(notes),
            ]
        )
    header = [*FIELD_HEADER, "notes"]
    note = 'accuracy counts failed records as wrong; "ok only" leaves them out.'
    return table(header, rows) + "\n" + note


FIELD_HEADER = ("field", "kind", "records", "accuracy", "ok only", "macro-F1")


def field_cells(f: FieldReport) -> list[str]:
    """A field's row of the fields table (under ``FIELD_HEADER``)."""
    return [
        f.path,
        f.kind,
        str(f.records),
        percent(f.accuracy),
        percent(f.ok_accuracy),
        f"{f.choice.macro_f1:.3f}" if f.choice else "",
    ]


CLASS_HEADER = ("class", "gold", "predicted", "precision", "recall", "F1")


def class_rows(m: ChoiceMetrics, label: Callable[[str], str] = str) -> list[list[str]]:
    """Each class of a choice field as the cells of a table row (under ``CLASS_HEADER``)."""
    return [
        [
            label(c.label),
            str(c.support),
            str(c.predicted),
            percent(c.precision),
            percent(c.recall),
            f"{c.f1:.3f}",
        ]
        for c in m.classes
    ]


def _choice(path: str, m: ChoiceMetrics) -> str:
    classes = table(list(CLASS_HEADER), class_rows(m, _short))
    labels = [_short(label) for label in m.labels]
    rows = [[labels[i], *map(str, m.confusion[i])] for i in range(len(m.classes))]
    matrix = table(["gold \\ predicted", *labels], rows)
    return f"{path}: per class\n{classes}\n{path}: confusion matrix\n{matrix}"


def _calibration(report: EvalReport) -> str:
    cal = report.calibration
    if cal.ece is None:
        return "calibration: no record carries confidence (label with logprobs to get it)"
    bins = table(
        ["confidence", "records", "accuracy", "mean confidence"],
        [
            [f"{b.low:.1f}-{b.high:.1f}", str(b.count), percent(b.accuracy), percent(b.confidence)]
            for b in cal.bins
            if b.count
        ],
    )
    curve = table(
        ["keep confidence >=", "coverage", "accuracy"],
        [
            [f"{p.threshold:.2f}", percent(p.coverage), percent(p.accuracy)]
            for p in cal.curve
            if p.threshold in SHOWN_THRESHOLDS
        ],
    )
    head = (
        f"calibration over {cal.records} ok records with confidence:"
        f" ECE {cal.ece:.3f} (10 equal-width bins; a record is right when every field is)"
    )
    lines = [head, bins, "accuracy against coverage", curve, temperature_note(cal)]
    if cal.unscored:
        lines.append(unscored_note(cal.unscored))
    return "\n".join(lines)


def temperature_note(cal: Calibration) -> str:
    """The fitted confidence temperature, or why none is given."""
    if cal.temperature is None or cal.fitted_ece is None:
        return (
            f"confidence temperature: not fitted, since only {cal.records} records carry"
            f" confidence; on fewer than {MIN_FIT_RECORDS} it would follow their noise."
            " Score more gold to fit one."
        )
    return (
        f"confidence temperature that fits these records best: {cal.temperature:g} (ECE"
        f" {cal.fitted_ece:.3f} under it, here; check it on other labeled records). Label with"
        f" --confidence-temperature {cal.temperature:g} to report confidences under it."
    )


def unscored_note(count: int) -> str:
    """Why some ok records are in no calibration figure."""
    return (
        f"{count} ok records carry no confidence and are in none of these figures (a server"
        " without log-probabilities, a document read in pieces, or a cache written by an"
        " older extract)"
    )


DOUBT_HEADER = ("id", "field", "gold", "model", "confidence", "P(gold)")


def doubt_rows(doubts: Sequence[GoldDoubt], label: Callable[[str], str] = str) -> list[list[str]]:
    """Gold rows to double-check as table rows (under ``DOUBT_HEADER``)."""
    return [
        [
            d.key,
            d.path,
            label(d.gold),
            label(d.predicted),
            f"{d.confidence:.3f}",
            "" if d.gold_probability is None else f"{d.gold_probability:.3f}",
        ]
        for d in doubts
    ]


def doubts_heading(count: int) -> str:
    """What the list of gold rows to double-check holds."""
    return (
        f"gold rows to double-check: {count} choice fields where the model contradicts the"
        f" gold at confidence >= {HIGH_CONFIDENCE:g}; least probability left for the gold"
        " label first (a wrong gold label, or a confident mistake)"
    )


def _doubts(doubts: Sequence[GoldDoubt]) -> str:
    if not doubts:
        return f"gold rows to double-check: none (no gold contradicted at >= {HIGH_CONFIDENCE:g})"
    rows = doubt_rows(doubts[:DOUBTS_SHOWN], _short)
    more = len(doubts) - DOUBTS_SHOWN
    tail = f"\n... {more} more (--json or --html lists them all)" if more > 0 else ""
    return f"{doubts_heading(len(doubts))}\n{table(list(DOUBT_HEADER), rows)}{tail}"


def _cost(c: Cost) -> str:
    if c.tokens_per_record is None or c.seconds_per_record is None:
        return f"cost: every one of the {c.cached} records came from the cache"
    return (
        f"cost: {c.tokens_per_record:.1f} tokens per record ({c.prompt_tokens} prompt +"
        f" {c.output_tokens} output in all), {c.seconds_per_record:.3f} s per record on the"
        f" server, over {c.records} records (+{c.cached} from the cache)"
    )


def render_comparison(comparison: Comparison) -> str:
    """Runs side by side per field, with each run's difference from the first."""
    runs = comparison.runs
    rows = []
    for f in comparison.fields:
        for i, name in enumerate(runs):
            diff = f.versus_first[i]
            versus = ""
            if diff is not None:
                versus = (
                    f"{100 * diff.difference:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
                    f" over {diff.records}"
                )
            macro = f.macro_f1[i]
            rows.append(
                [
                    f.path if i == 0 else "",
                    name,
                    percent(f.accuracy[i]),
                    "" if macro is None else f"{macro:.3f}",
                    versus,
                ]
            )
    header = ["field", "run", "accuracy", "macro-F1", "vs first: points [95% interval]"]
    summary = table(
        ["run", "coverage", "all fields right", "tokens/record", "s/record"],
        [
            [
                name,
                percent(r.coverage.rate),
                percent(r.record_accuracy),
                _maybe(r.cost.tokens_per_record, ".1f"),
                _maybe(r.cost.seconds_per_record, ".3f"),
            ]
            for name, r in zip(runs, comparison.reports, strict=True)
        ],
    )
    note = (
        "differences are in accuracy points against the first run, on the records both runs"
        " scored; 95% paired bootstrap interval (2000 resamples, seed 0)."
    )
    return f"{table(header, rows)}\n{note}\n\n{summary}\n"


def _maybe(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)
