"""An evaluation report as one self-contained HTML page: no script, no network, charts inline.

Charts are matplotlib figures saved as SVG (the ``report`` extra) and written into the page;
every piece of text that comes from the data is escaped. The page shows the field table, a
confusion matrix per choice field, the calibration plot, accuracy against coverage, and the
records to look at first, each with its text, value and gold, and the gold rows to
double-check. Both chart axes run from 0 to 1.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from .doubts import HIGH_CONFIDENCE, GoldDoubt
from .metrics import Calibration, ChoiceMetrics
from .report import EvalReport, RecordResult
from .text import (
    CLASS_HEADER,
    DOUBT_HEADER,
    FIELD_HEADER,
    class_rows,
    doubt_rows,
    doubts_heading,
    field_cells,
    percent,
    temperature_note,
    unscored_note,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOOK_FIRST = 25  # records per "look at first" list
MAX_TEXT = 4000  # characters of a document shown
ANNOTATED_CLASSES = 25  # above this, matrix cells carry no numbers
_RC: dict[Any, Any] = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 9}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}
.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ccc;border-radius:6px;padding:.6em 1em}
.card b{display:block;font-size:1.4em}
.record{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.8em 0}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5em;margin:.3em 0}
figure{margin:1em 0}
"""


def render_html(report: EvalReport, *, title: str, texts: Mapping[str, str]) -> str:
    """The report as an HTML page; ``texts`` maps id keys to documents shown with the records.

    Raises ConfigError when matplotlib (the ``report`` extra) is not installed.
    """
    try:
        from matplotlib import rc_context
    except ImportError:
        raise ConfigError(
            "the HTML report draws its charts with matplotlib; pip install 'extract-llm[report]'"
        ) from None
    with rc_context(_RC):
        body = "\n".join(_sections(report, texts))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _sections(report: EvalReport, texts: Mapping[str, str]) -> Iterator[str]:
    c, cost = report.coverage, report.cost
    cards = [
        ("records with gold", str(c.records)),
        ("coverage (ok)", percent(c.rate)),
        ("every field right", percent(report.record_accuracy)),
        ("ECE", _maybe(report.calibration.ece, ".3f")),
        ("tokens / record", f"{cost.tokens_per_record:.0f}" if cost.tokens_per_record else "n/a"),
        (
            "server s / record",
            f"{cost.seconds_per_record:.2f}" if cost.seconds_per_record else "n/a",
        ),
    ]
    yield (
        '<div class="cards">'
        + "".join(f'<div class="card">{_e(name)}<b>{_e(value)}</b></div>' for name, value in cards)
        + "</div>"
    )
    notes = [f"{_e(kind)}: {n}" for kind, n in c.failures.items()]
    if notes:
        yield f"<p>Failed records by error: {', '.join(notes)}.</p>"
    yield (
        f"<p>{c.gold_without_output} gold ids have no output record; {c.output_without_gold}"
        " output records have no gold (neither is scored).</p>"
    )
    yield "<h2>Fields</h2>"
    yield _table(
        FIELD_HEADER,
        [field_cells(f) for f in report.fields],
    )
    yield "<p>Accuracy counts failed records as wrong; “ok only” leaves them out.</p>"
    for n, field in enumerate(report.fields):
        if field.choice is not None:
            yield f"<h2>{_e(field.path)}</h2>"
            yield _figure(f"confusion-{n}", _confusion(field.path, field.choice))
            yield _classes(field.choice)
    yield "<h2>Calibration</h2>"
    cal = report.calibration
    if cal.ece is None:
        yield "<p>No record carries confidence: label with logprobs to get it.</p>"
    else:
        yield (
            f"<p>{cal.records} ok records carry confidence (the lowest over their fields);"
            f" expected calibration error {cal.ece:.3f} over 10 equal-width bins.</p>"
        )
        yield _figure("calibration", _reliability(cal))
        yield (
            "<p>Leaving out the records under a confidence threshold: the share kept"
            " (coverage) against the accuracy of what is kept.</p>"
        )
        yield _figure("coverage", _coverage(cal))
        yield f"<p>{_e(temperature_note(cal))}</p>"
    if cal.unscored:
        yield f"<p>{_e(unscored_note(cal.unscored))}.</p>"
    yield from _look_first(report.records, texts)
    yield from _doubts(report.doubtful_gold)


def _maybe(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _classes(m: ChoiceMetrics) -> str:
    return _table(CLASS_HEADER, class_rows(m))


def _figure(ident: str, fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight")
    svg = out.getvalue()
    # The XML prolog and doctype belong to a standalone file, not inside HTML.
    return f'<figure id="{ident}">{svg[svg.index("<svg") :]}</figure>'


def _confusion(path: str, m: ChoiceMetrics) -> Figure:
    from matplotlib.figure import Figure

    # Rows are the gold classes; the placeholder columns (failed, missing) have no gold row.
    matrix = m.confusion[: len(m.classes)]
    n = len(m.labels)
    side = min(12.0, 2.5 + 0.5 * n)
    fig = Figure(figsize=(side + 1, side * len(matrix) / n + 1))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    labels = [label if len(label) <= 24 else label[:23] + "…" for label in m.labels]
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix)), labels[: len(matrix)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{path}: confusion matrix")
    if n <= ANNOTATED_CLASSES:
        top = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if count > top / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=color)
    return fig


def _reliability(cal: Calibration) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    filled = [b for b in cal.bins if b.count]
    ax.bar(
        [b.low for b in filled],
        [b.accuracy or 0.0 for b in filled],
        width=0.1,
        align="edge",
        edgecolor="#1f4e79",
        color="#6fa8dc",
        label="accuracy in bin",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    for b in filled:
        # Inside the frame: a full bar's count goes just under its top.
        high = (b.accuracy or 0.0) > 0.9
        y = (b.accuracy or 0.0) + (-0.02 if high else 0.02)
        ax.text(
            b.low + 0.05, y, str(b.count), ha="center", va="top" if high else "bottom", fontsize=7
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"calibration (ECE {cal.ece:.3f}; numbers: records per bin)")
    ax.legend(loc="upper left")
    return fig


def _coverage(cal: Calibration) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    points = [p for p in cal.curve if p.accuracy is not None]
    ax.plot([p.coverage for p in points], [p.accuracy or 0.0 for p in points], marker="o")
    for p in points:
        if p.threshold in (0.5, 0.8, 0.9, 0.99):
            ax.annotate(
                f"≥{p.threshold:g}",
                (p.coverage, p.accuracy or 0.0),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("coverage (share of records kept)")
    ax.set_ylabel("accuracy of the records kept")
    ax.set_title("accuracy against coverage")
    return fig


def _look_first(records: Sequence[RecordResult], texts: Mapping[str, str]) -> Iterator[str]:
    sure = [r for r in records if r.confidence is not None]
    if sure:
        confident = [r for r in sure if r.wrong and (r.confidence or 0.0) >= HIGH_CONFIDENCE]
        wrong = sorted(confident, key=lambda r: -(r.confidence or 0.0))[:LOOK_FIRST]
        yield "<h2>Wrong with high confidence</h2>"
        yield (
            f"<p>Records with a wrong field although every field's calibrated confidence is"
            f" {HIGH_CONFIDENCE:g} or more, most confident first.</p>"
        )
        yield from _cards(wrong, texts, f"No record is wrong at confidence ≥ {HIGH_CONFIDENCE:g}.")
        shown = {r.key for r in wrong}
        lowest = sorted((r for r in sure if r.key not in shown), key=lambda r: r.confidence or 0.0)
        yield "<h2>Lowest confidence</h2>"
        yield "<p>The least confident records (right or wrong) not listed above.</p>"
        yield from _cards(lowest[:LOOK_FIRST], texts, "None left.")
    else:
        yield "<h2>Wrong records</h2>"
        yield from _cards([r for r in records if r.wrong][:LOOK_FIRST], texts, "None.")


def _doubts(doubts: Sequence[GoldDoubt]) -> Iterator[str]:
    yield "<h2>Gold rows to double-check</h2>"
    if not doubts:
        yield f"<p>No gold label is contradicted at confidence ≥ {HIGH_CONFIDENCE:g}.</p>"
        return
    yield f"<p>{_e(doubts_heading(len(doubts)))}.</p>"
    yield _table(DOUBT_HEADER, doubt_rows(doubts))


def _cards(records: Sequence[RecordResult], texts: Mapping[str, str], empty: str) -> Iterator[str]:
    if not records:
        yield f"<p>{_e(empty)}</p>"
    for r in records:
        facts = [f"id {_e(r.key)}"]
        if r.confidence is not None:
            facts.append(f"confidence {r.confidence:.3f}")
        facts.append(f"wrong: {_e(', '.join(r.wrong))}" if r.wrong else "right")
        if not r.ok:
            facts.append(f"failed ({_e(r.error)})")
        text = texts.get(r.key)
        shown = "" if text is None else text[:MAX_TEXT] + ("…" if len(text) > MAX_TEXT else "")
        yield (
            f'<div class="record"><p>{" · ".join(facts)}</p>'
            + (f"<b>text</b><pre>{_e(shown)}</pre>" if text is not None else "")
            + f"<b>value</b><pre>{_e(_dumps(r.value))}</pre>"
            + f"<b>gold</b><pre>{_e(_dumps(r.gold))}</pre></div>"
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)
