"""Make the site's pictures from real output: ``python docs/_tools/screenshots.py``.

It labels ``examples/tickets.jsonl`` with ``extract label`` against the scripted server (with
the docs' stand-in model, ``tests/docs_support.py``), inside tmux so the progress bar draws as
in a terminal, scores the run against ``examples/tickets-gold.csv`` with ``extract eval
--html``, and photographs the terminal and the report with headless Debian chromium. Needs
``tmux``, ``chromium`` and the ``report`` extra; writes ``docs/images/*.png``.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from docs_support import reply_for  # noqa: E402

from extract.server import ScriptedEngine, serve  # noqa: E402

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    """Photograph ``page`` (a local file) at ``width`` × ``height`` into ``png``."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                shutil.which("chromium") or "chromium",
                *BROWSER_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def terminal_page(text: str) -> str:
    """A terminal's screen as a page: light text on dark, monospace, as captured."""
    body = html.escape(_ANSI.sub("", text).rstrip())
    return (
        "<!doctype html><meta charset=utf-8><style>body{margin:0;background:#1e1e1e}"
        "pre{margin:0;padding:14px 18px;color:#e6e6e6;font:14px/1.35 'DejaVu Sans Mono',"
        f"monospace;white-space:pre}}</style><pre>{body}</pre>"
    )


def label_in_tmux(work: Path, url: str) -> str:
    """Run ``extract label`` in a tmux window and return its screen once the run has ended."""
    script = work / "run.sh"
    script.write_text(
        f"clear\nOLLAMA_HOST={url} {sys.executable} -m extract label examples/tickets.jsonl "
        "--schema ticket --model llama3.2 -o labels.jsonl --min-confidence 0.6\necho exit $?\n"
    )
    session = f"extract-docs-{os.getpid()}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "14", "bash"], check=True
    )
    try:
        subprocess.run(["tmux", "send-keys", "-t", session, f"cd {work} && bash run.sh", "Enter"])
        for _ in range(600):
            time.sleep(0.2)
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            if re.search(r"^exit \d+$", screen, flags=re.MULTILINE):
                break
        shown = (
            "$ extract label examples/tickets.jsonl --schema ticket --model llama3.2 \\\n"
            "    -o labels.jsonl --min-confidence 0.6\n"
        )
        kept = [line for line in screen.splitlines() if not line.startswith("exit ")]
        return shown + "\n".join(kept)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def section(report: str, title: str) -> str:
    """The report page with only its ``<h2>title</h2>`` section (its styles kept)."""
    head = report[: report.index("<body")]
    start = report.index(f"<h2>{title}</h2>")
    end = report.find("<h2>", start + 1)
    return f"{head}<body>{report[start : end if end > 0 else None]}</body></html>"


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    engine = ScriptedEngine(models=("llama3.2",), slots=1, latency=0.15, responder=reply_for)
    with tempfile.TemporaryDirectory() as tmp, serve(engine) as server:
        work = Path(tmp)
        # A cache of its own: every record is labeled, none comes from an earlier run.
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")
        shutil.copytree(ROOT / "examples", work / "examples")
        screen = label_in_tmux(work, server.url)
        (work / "terminal.html").write_text(terminal_page(screen), encoding="utf-8")
        screenshot(work / "terminal.html", IMAGES / "progress.png", 880, 190)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "extract",
                "eval",
                "labels.jsonl",
                "--gold",
                "examples/tickets-gold.csv",
                "--schema",
                "ticket",
                "--html",
                "report.html",
                "--input",
                "examples/tickets.jsonl",
            ],
            cwd=work,
            check=True,
            capture_output=True,
        )
        report = (work / "report.html").read_text(encoding="utf-8")
        screenshot(work / "report.html", IMAGES / "eval-report.png", 1000, 900)
        (work / "calibration.html").write_text(section(report, "Calibration"), encoding="utf-8")
        screenshot(work / "calibration.html", IMAGES / "confidence-coverage.png", 640, 1040)


if __name__ == "__main__":
    main()
