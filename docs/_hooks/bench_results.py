"""Build hook: the performance page shows ``bench/RESULTS.md`` as it is in the checkout.

The page holds a ``<!-- bench-results -->`` marker; at build time it is replaced by the results
file, its title dropped and its headings moved one level down so they nest under the page's
own. Nothing is fetched: the file is read from the repository.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MARKER = "<!-- bench-results -->"
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "RESULTS.md"


def results_markdown(text: str) -> str:
    """The results file's body for inclusion: no title, every heading one level deeper."""
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    body = "\n".join(lines)
    return re.sub(r"^(#{1,5}) ", r"#\1 ", body, flags=re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker with the results (mkdocs calls this for every page)."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, results_markdown(RESULTS.read_text(encoding="utf-8")))
