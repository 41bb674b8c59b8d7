"""The openai backend against a server no one here wrote: llama-cpp-python 0.3.36's
``llama_cpp.server`` (the dev extra's ``llama-cpp-python[server]``) serving the bundled
SmolLM2-135M GGUF on a free loopback port.

That server accepts a schema only as ``response_format: {"type": "json_object", "schema":
...}``; ``json_schema`` is refused with 422, so the first request also tests the backend's
fallback. It carries the same AMX crash as extract's engine, and has no flag against it: the
fixture starts it through ``tests/llama_cpp_server_launcher.py``, which turns llama.cpp's extra
buffer types off on CPUs with AMX (as ``extract.server.llama`` does) before running the
server's own ``__main__``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel

from extract import Extractor, Labeling
from extract.errors import ExtractionFailed, TruncatedOutput
from extract.server import default_model_path

pytestmark = pytest.mark.real_model
pytest.importorskip("sse_starlette", reason="llama-cpp-python's server extra (the dev extra)")

MODEL = "smollm2"
LAUNCHER = Path(__file__).with_name("llama_cpp_server_launcher.py")


class Person(BaseModel):
    name: str
    age: int


class Review(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = _free_port()
    args = [sys.executable, str(LAUNCHER), "--model", str(default_model_path())]
    args += ["--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port)]
    # Log-probabilities of the chosen tokens need every position's logits kept.
    args += ["--n_ctx", "2048", "--logits_all", "true", "--verbose", "false"]
    # By default a new request cuts off the stream in progress (it ends without a
    # finish_reason, a TruncatedOutput); a batch keeps more than one request in flight.
    args += ["--interrupt_requests", "false"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"llama_cpp.server exited {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(base + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not answer within 120 s")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def ex(url: str) -> Iterator[Extractor]:
    options = {"temperature": 0, "seed": 1}
    with Extractor(MODEL, host=url, backend="openai", options=options, max_attempts=4) as ex:
        yield ex


def test_an_extraction_validates_through_the_json_object_fallback(ex: Extractor) -> None:
    result = ex.extract("Alice is 30 years old.", Person)
    assert isinstance(result.value, Person)
    assert result.value.age >= 0
    assert result.attempts[-1].metrics.eval_count  # usage, mapped to the metrics


def test_a_choice_field_gets_a_calibrated_confidence(ex: Extractor) -> None:
    result = ex.extract("I loved this product, it works great.", Review)
    assert result.value.sentiment in ("positive", "negative", "neutral")
    assert 0.0 <= result.confidence["$.sentiment"] <= 1.0
    assert result.choices["$.sentiment"].options == ("positive", "negative", "neutral")


def test_an_unusable_reply_is_asked_again(ex: Extractor) -> None:
    # Four tokens cannot hold the object: each attempt is cut (finish_reason "length", a
    # TruncatedOutput), and each after the first is a re-ask under the same budget.
    with pytest.raises(ExtractionFailed) as failed:
        ex.extract("Alice is 30.", Person, options={"num_predict": 4})
    attempts = failed.value.attempts
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert all(isinstance(a.error, TruncatedOutput) for a in attempts)
    assert all(a.done_reason == "length" for a in attempts)


def test_a_small_batch(url: str) -> None:
    texts = ["Bob is 41.", "Carol is 25 years old.", "Dan, 60."]
    with Labeling(Person, model=MODEL, hosts=url, backend="openai", max_attempts=4) as session:
        records = list(session.results(texts))
    assert len(records) == 3
    assert sum(r.ok for r in records) >= 2
    assert all(r.attempts >= 1 for r in records)
