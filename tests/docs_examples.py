"""The documentation's code blocks, read from the pages, and how to run one as a reader would.

A page marks a block with an HTML comment on the line before its fence (invisible on the site):

- no comment, or ``<!-- run: scripted -->``: run against the scripted server;
- ``<!-- run: real-model -->``: run against the bundled SmolLM2 model (``--local`` or
  ``LlamaEngine``); ``<!-- run: ray -->``: needs a local Ray instance;
- ``exit=N`` after either: the block is expected to end with status N;
- ``<!-- not-run: REASON -->``: not executed (installing from a registry, pulling a model).

Python blocks and shell blocks (``bash``) are examples; ``text``, ``json``, ``csv`` and ``toml``
blocks show output or file contents and are never run. In a shell block, the steps of an
``&&`` chain that create a virtual environment or install packages are left out: the test
environment already holds what they install. The blocks of a page run in order in one working
directory (a copy of ``examples/`` and ``schemas/`` inside), so a later block finds the files
an earlier one wrote, as it would for someone following the page.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_LANGUAGES = {"python", "bash"}
SHOWN_LANGUAGES = {"text", "json", "csv", "toml"}
_FENCE = re.compile(r"^```(\S*)")
_MARK = re.compile(r"^<!-- (run|not-run):\s*(.*?)\s*-->$")
_INSTALL_STEP = re.compile(r"^(python3? -m venv |\. \.venv/bin/activate$|pip install )")
# Hosts the pages name (port 11434: Ollama; 8000: an OpenAI-compatible server such as vLLM)
# stand for scripted servers started for the page; the scripted server speaks both APIs.
HOST_NAME = re.compile(r"http://(gpu\d+):(?:11434|8000)")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    mode: str  # "scripted", "real-model", "ray" or "not-run"
    exit_code: int = 0
    reason: str = ""

    @property
    def first_line(self) -> str:
        return self.code.strip().splitlines()[0] if self.code.strip() else ""

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of a page, with what its marker says.

    Raises:
        ValueError: an unclosed fence, or a marker that is not understood.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    page = str(path.relative_to(ROOT))
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        start, language = i, fence[1]
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"{page}:{start + 1}: unclosed code fence")
        code = "\n".join(lines[start + 1 : end]) + "\n"
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        found.append(_block(page, start + 1, language, code, before.strip()))
        i = end + 1
    return found


def _block(page: str, line: int, language: str, code: str, before: str) -> Block:
    mark = _MARK.match(before)
    if mark is None:
        return Block(page, line, language, code, "scripted")
    if mark[1] == "not-run":
        if not mark[2]:
            raise ValueError(f"{page}:{line}: a not-run block must say why")
        return Block(page, line, language, code, "not-run", reason=mark[2])
    words = mark[2].split()
    modes = [w for w in words if not w.startswith("exit=")]
    if len(modes) != 1 or modes[0] not in ("scripted", "real-model", "ray"):
        raise ValueError(f"{page}:{line}: unknown marker {before!r}")
    exits = [int(w.removeprefix("exit=")) for w in words if w.startswith("exit=")]
    return Block(page, line, language, code, modes[0], exit_code=exits[0] if exits else 0)


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks_of(page)]


def split_install_steps(code: str) -> tuple[str, list[str]]:
    r"""A shell block without its environment and install steps, and the steps left out.

    >>> split_install_steps("python3 -m venv .venv && . .venv/bin/activate && extract schemas")
    ('extract schemas\n', ['python3 -m venv .venv', '. .venv/bin/activate'])
    """
    kept_lines: list[str] = []
    dropped: list[str] = []
    for line in code.splitlines():
        steps = [s.strip() for s in line.split("&&")]
        installs = [s for s in steps if _INSTALL_STEP.match(s)]
        if not installs:
            kept_lines.append(line)  # as written: a heredoc keeps its indentation
            continue
        dropped += installs
        keep = [s for s in steps if not _INSTALL_STEP.match(s)]
        if keep:
            kept_lines.append(" && ".join(keep))
    return "\n".join(kept_lines).strip() + "\n", dropped


def prepare_workdir(directory: Path) -> None:
    """A reader's checkout, as far as the pages use it: the examples and the schemas."""
    for name in ("examples", "schemas"):
        shutil.copytree(ROOT / name, directory / name)
    shim = directory / ".bin"
    shim.mkdir()
    # `extract` and `python` on PATH run this interpreter, whatever is installed elsewhere (a
    # symlink would not do: a venv's interpreter finds its packages by the path it is run as).
    for name, command in (
        ("extract", f'"{sys.executable}" -m extract'),
        ("python", f'"{sys.executable}"'),
    ):
        (shim / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (shim / name).chmod(0o755)


def with_hosts(code: str, hosts: Mapping[str, str]) -> str:
    """The code with every named host replaced by the URL of the server standing in for it."""
    return HOST_NAME.sub(lambda m: hosts[m[1]], code)


def run_block(
    block: Block, directory: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run one block in ``directory`` with ``env`` added to this process's environment."""
    full_env = {
        **os.environ,
        **env,
        "PATH": f"{directory / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    if block.language == "python":
        script = directory / f".block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        code, _ = split_install_steps(block.code)
        # Anything a block starts in the background ends with it.
        script_text = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
        command = ["bash", "-c", script_text + code]
    return subprocess.run(
        command,
        cwd=directory,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
