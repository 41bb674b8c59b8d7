"""Every example script runs against the project's server: real model, or scripted for vision."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from extract.server import DEFAULT_LOCAL_MODEL, LlamaEngine, Reply, ScriptedEngine, serve

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, url: str, model: str, *args: str) -> str:
    env = {**os.environ, "OLLAMA_HOST": url, "EXTRACT_MODEL": model}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    with serve(LlamaEngine()) as srv:
        yield srv.url


@pytest.mark.real_model
@pytest.mark.parametrize(
    ("script", "expect"),
    [
        ("quickstart.py", "attempt(s)"),
        ("pydantic_model.py", "Contact(name="),
        ("json_schema_file.py", '"age": '),
        ("async_many.py", "charged twice"),
    ],
)
def test_example_on_the_real_model(llama_url: str, script: str, expect: str) -> None:
    assert expect in run_example(script, llama_url, DEFAULT_LOCAL_MODEL)


def test_images_example_sends_base64_to_a_vision_model(tmp_path: Path) -> None:
    engine = ScriptedEngine(models=("seer",), capabilities={"seer": ["completion", "vision"]})
    engine.script(Reply.text('{"shop": "Corner Cafe", "total": 12.5}'))
    image = tmp_path / "receipt.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with serve(engine) as srv:
        out = run_example("images.py", srv.url, "seer", str(image))
    assert "Corner Cafe" in out
    sent = next(r.body for r in engine.requests if r.path == "/api/generate")
    assert sent["images"] == ["iVBORw0KGgpub3QgcmVhbGx5IGEgcG5n"]
