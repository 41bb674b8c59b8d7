"""``extract eval --html``: one self-contained, escaped page, checked in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from extract import ConfigError, evaluate
from extract.batch.evaluation.html import render_html
from extract.cli import main

HOSTILE = "other <b>&</b>"
CATEGORIES = ["bug", "billing", HOSTILE]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="chromium is not installed (apt-get install chromium)"
)
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Output, gold and input files; texts and labels carry markup that must be escaped."""
    outputs, gold, inputs = [], [], []
    for i in range(40):
        truth = CATEGORIES[i % 3]
        guess = CATEGORIES[(i + 1) % 3] if i % 4 == 0 else truth
        confidence = {"$.category": 0.99 - i / 100 if i % 4 == 0 else 0.5 + i / 100}
        value = {"category": guess}
        outputs.append({"id": i, "ok": True, "value": value, "confidence": confidence})
        gold.append({"id": i, "category": truth})
        inputs.append({"id": i, "text": f"ticket {i} <script>alert({i})</script>"})
    outputs[5] = {"id": 5, "ok": False, "error": {"type": "InvalidJSON", "message": "x"}}
    return (
        write_jsonl(tmp_path / "out.jsonl", outputs),
        write_jsonl(tmp_path / "gold.jsonl", gold),
        write_jsonl(tmp_path / "in.jsonl", inputs),
    )


@pytest.fixture
def page(files: tuple[Path, Path, Path], tmp_path: Path) -> Path:
    output, gold, source = files
    target = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        [
            *("eval", str(output), "--gold", str(gold), "--input", str(source)),
            *("-s", json.dumps({"properties": {"category": {"enum": CATEGORIES}}})),
            *("--html", str(target)),
        ],
    )
    assert result.exit_code == 0, result.output
    return target


def test_the_page_is_self_contained(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "<?xml" not in html
    # Every reference stays inside the page: fragment ids and data: URIs only.
    references = re.findall(r'(?:href|src)="([^"]*)"', html)
    assert references
    assert all(ref.startswith(("#", "data:")) for ref in references)


def test_text_from_the_data_is_escaped(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert "ticket 0 &lt;script&gt;alert(0)&lt;/script&gt;" in html
    assert "other &lt;b&gt;&amp;&lt;/b&gt;" in html
    assert "<b>&</b>" not in html


def test_the_page_has_a_matrix_calibration_coverage_and_records(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert re.search(r'<figure id="confusion-0"><svg', html)
    assert '<figure id="calibration"><svg' in html
    assert '<figure id="coverage"><svg' in html
    wrong = html.index("Wrong with high confidence")
    lowest = html.index("Lowest confidence")
    # The most confidently wrong record (id 0, confidence 0.99) comes first.
    assert html.index("id 0 · confidence 0.990", wrong) < html.index("id 4 ·", wrong) < lowest


def test_without_confidence_the_page_lists_wrong_records(
    files: tuple[Path, Path, Path],
) -> None:
    output, gold, _ = files
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    bare = [{k: v for k, v in r.items() if k != "confidence"} for r in rows]
    html = render_html(evaluate(bare, gold), title="t", texts={})
    assert "No record carries confidence" in html
    assert "<h2>Wrong records</h2>" in html
    assert 'id="calibration"' not in html


def test_without_matplotlib_the_report_says_what_to_install(
    files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    output, gold, _ = files
    report = evaluate(output, gold)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"extract-llm\[report\]"):
        render_html(report, title="t", texts={})


def browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [BROWSER, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def console_errors(stderr: str) -> list[str]:
    """Lines where the page wrote to the console or threw (Chromium logs them as CONSOLE)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@needs_browser
def test_console_errors_are_detected(tmp_path: Path) -> None:
    # The check below must be able to fail: a broken page shows up in the log.
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><script>undefinedFunction()</script>", encoding="utf-8")
    done = browse(broken.as_uri(), tmp_path / "profile", "--dump-dom")
    assert any("undefinedFunction" in line for line in console_errors(done.stderr))


@needs_browser
def test_the_page_loads_in_a_browser_without_console_errors(page: Path, tmp_path: Path) -> None:
    done = browse(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert console_errors(done.stderr) == []
    dom = done.stdout
    assert re.search(r'<figure id="confusion-0"><svg', dom)
    assert "Wrong with high confidence" in dom


@needs_browser
def test_the_screenshot_shows_the_confusion_matrix(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    browse(page.as_uri(), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1600")
    pixels = imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 0.05  # not a blank page
    # The matrix's darkest cells use the top of the Blues colour map.
    darkest = matplotlib.colormaps["Blues"](1.0)[:3]
    near = (abs(pixels - darkest) < 0.06).all(axis=2).sum()
    assert near > 500
