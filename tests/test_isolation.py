"""Engines in child processes: a native crash fails one request, never the server or the caller.

The engine here is a scripted one that kills its own process with SIGSEGV on a marked document
(``crash_support``), run in a real child process exactly as the llama.cpp engine is.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import fast_retry
from crash_support import CRASH_MARK, isolated_crashing_engine

from extract import Extractor, ServerError
from extract.cli import main
from extract.cli.label import EXIT_SOME_FAILED
from extract.server import EngineCrashed, IsolatedEngine, Job, serve
from extract.server._isolated import crash_message

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.fixture
def engine() -> Iterator[IsolatedEngine]:
    engine = isolated_crashing_engine()
    yield engine
    engine.close()


@pytest.fixture
def url(engine: IsolatedEngine) -> Iterator[str]:
    with serve(engine) as srv:
        yield srv.url


def job(prompt: str) -> Job:
    body = {"model": "tiny", "prompt": prompt, "stream": True}
    return Job(
        api="generate", model="tiny", requested_model="tiny", body=body, stream=True, prompt=prompt
    )


def text_of(engine: IsolatedEngine, prompt: str) -> str:
    return "".join(e for e in engine.generate(job(prompt), threading.Event()) if isinstance(e, str))


def test_in_process_callers_get_a_typed_crash_and_the_next_request_a_fresh_child(
    engine: IsolatedEngine,
) -> None:
    assert text_of(engine, "<<1>>") == '{"n": 1}'
    with pytest.raises(EngineCrashed) as caught:
        text_of(engine, f"<<2>> {CRASH_MARK}")
    crash = caught.value
    assert (crash.status, crash.model, crash.signal) == (500, "tiny", signal.SIGSEGV)
    assert crash.message.startswith("model runner has unexpectedly stopped")
    assert "SIGSEGV" in crash.message
    assert "'tiny'" in crash.message
    assert text_of(engine, "<<3>>") == '{"n": 3}'


def test_over_http_the_crash_is_ollamas_runner_500_and_the_server_keeps_answering(
    url: str,
) -> None:
    with httpx.Client(base_url=url) as client:
        body = {"model": "tiny", "prompt": f"x {CRASH_MARK}", "stream": False}
        crashed = client.post("/api/generate", json=body)
        assert crashed.status_code == 500
        assert "SIGSEGV" in crashed.json()["error"]
        fine = client.post("/api/generate", json={**body, "prompt": "<<7>>"})
        assert fine.status_code == 200
        assert json.loads(fine.json()["response"]) == {"n": 7}
        assert client.get("/api/tags").status_code == 200


def test_extractor_raises_the_retryable_server_error_carrying_the_message(url: str) -> None:
    with Extractor(model="tiny", host=url, retry=fast_retry(2)) as ex:
        with pytest.raises(ServerError) as caught:
            ex.extract(f"a document {CRASH_MARK}", schema=SCHEMA)
        assert caught.value.status == 500
        assert "SIGSEGV" in str(caught.value)
        assert ex.extract("<<5>>", schema=SCHEMA).value == {"n": 5}


def test_a_label_run_writes_every_record_when_one_document_crashes_the_engine(
    url: str, tmp_path: Path
) -> None:
    rows = [{"id": f"d{n}", "text": CRASH_MARK if n == 13 else f"<<{n}>>"} for n in range(30)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    schema = tmp_path / "n.json"
    schema.write_text(json.dumps(SCHEMA))
    out = tmp_path / "out.jsonl"
    args = ["label", str(source), "--schema", str(schema), "-m", "tiny", "--host", url]
    result = CliRunner().invoke(main, [*args, "-o", str(out), "--no-cache"])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [f"d{n}" for n in range(30)]
    failed = [r for r in records if not r["ok"]]
    assert [r["id"] for r in failed] == ["d13"]
    assert "SIGSEGV" in json.dumps(failed[0])
    assert all(r["value"] == {"n": n} for n, r in enumerate(records) if r["ok"])


def test_unloading_ends_the_child_and_loaded_lists_only_live_ones(engine: IsolatedEngine) -> None:
    assert engine.loaded() == ()
    assert engine.load("tiny", None) == "load"
    assert [m.name for m in engine.loaded()] == ["tiny"]
    assert engine.load("tiny", 0) == "unload"
    assert engine.loaded() == ()
    assert text_of(engine, "<<4>>") == '{"n": 4}'


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (-signal.SIGSEGV, ["SIGSEGV", "native code", "EXTRACT_LLAMA_EXTRA_BUFFERS=0"]),
        (-signal.SIGKILL, ["SIGKILL", "out-of-memory"]),
        (3, ["exited with status 3"]),
    ],
)
def test_the_crash_message_names_the_signal_the_model_and_what_to_try(
    code: int, words: list[str]
) -> None:
    message = crash_message("smollm2:135m", code)
    assert message.startswith("model runner has unexpectedly stopped: ")
    assert "'smollm2:135m'" in message
    assert "the next request starts a new one" in message
    assert all(word in message for word in words)
