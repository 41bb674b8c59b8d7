"""The documentation site builds strictly, needs nothing from the network, and renders.

The site is built with ``mkdocs build --strict`` (the ``docs`` extra), then its home page and a
guide are opened from disk in headless chromium: the navigation must be there, and every
stylesheet, script, font and image must come from the site itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parent.parent
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="chromium is not installed (apt-get install chromium)"
)
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Anything the browser would load by itself: stylesheets, scripts, images, fonts, frames.
_LOADED = re.compile(r"<(?:script|img|iframe|source)\b[^>]*\bsrc=\"([^\"]*)\"|<link\b[^>]*>")
_HREF = re.compile(r"\bhref=\"([^\"]*)\"")
GUIDE = "guides/labeling.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _assets(page: Path) -> list[str]:
    """What the page makes the browser load, as written in its HTML."""
    found = []
    for match in _LOADED.finditer(page.read_text(encoding="utf-8")):
        if match[1] is not None:
            found.append(match[1])
        elif not re.search(r"\brel=\"(?:canonical|prev|next|alternate)\"", match[0]):
            href = _HREF.search(match[0])
            if href:
                found.append(href[1])
    return found


@pytest.mark.parametrize("name", ["index.html", GUIDE, "reference/api.html"])
def test_pages_load_nothing_from_the_network(site: Path, name: str) -> None:
    assets = _assets(site / name)
    assert assets, "the page loads no stylesheet at all: the check reads the wrong thing"
    remote = [a for a in assets if re.match(r"(?:https?:)?//", a)]
    assert remote == []
    for asset in assets:
        assert (
            (site / name).parent.joinpath(asset.split("#")[0].split("?")[0]).resolve().exists()
        ), asset


def test_the_theme_uses_no_web_fonts(site: Path) -> None:
    css = "".join(p.read_text(encoding="utf-8") for p in (site / "assets").rglob("*.css"))
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis" not in html + css
    assert "fonts.gstatic" not in html + css


def test_the_reference_pages_are_generated(site: Path) -> None:
    api = (site / "reference" / "api.html").read_text(encoding="utf-8")
    assert 'id="extract.Extractor.extract"' in api
    assert 'id="extract.errors.ExtractionFailed"' in api
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    for command in ("label", "eval", "review", "serve", "doctor"):
        assert f"extract {command}" in cli
    assert "--retry-failed" in cli


def test_the_performance_page_holds_the_bench_results(site: Path) -> None:
    page = (site / "guides" / "performance.html").read_text(encoding="utf-8")
    results = (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    first_row = next(line for line in results.splitlines() if line.startswith("| P1 "))
    assert first_row.split("|")[2].strip().split()[0] in page
    assert "<!-- bench-results -->" not in page


def _browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [BROWSER, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@needs_browser
@pytest.mark.parametrize("name", ["index.html", GUIDE])
def test_the_navigation_renders_from_disk(site: Path, name: str, tmp_path: Path) -> None:
    dom = _browse((site / name).as_uri(), tmp_path / "profile", "--dump-dom").stdout
    nav = dom[dom.index('class="md-nav md-nav--primary"') :]
    for title in ("Getting started", "Labeling a batch", "How good are my labels?", "Python API"):
        assert title in nav
    assert 'class="md-header' in dom


@needs_browser
def test_a_guide_looks_like_a_page(site: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    shot = tmp_path / "guide.png"
    _browse(
        (site / GUIDE).as_uri(),
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,900",
    )
    pixels = imread(shot)[:, :, :3]
    header = pixels[:40].reshape(-1, 3).mean(axis=0)
    # The header bar is the theme's indigo: its stylesheet loaded from disk.
    assert header[2] > header[0] + 0.2
    # And the body shows text: dark pixels on the white page.
    assert (pixels[100:].mean(axis=2) < 0.3).mean() > 0.003
