"""``extract doctor``: a host is Ollama-compatible, gives log-probabilities and keeps to
``format``, or doctor says why not and exits non-zero."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import logprob_entry

from extract.cli import main
from extract.client.config import Settings
from extract.client.probes import FORMAT_PROBE_SCHEMA, probe_server
from extract.server import Reply, ScriptedEngine, serve

SMOKE = Reply.text('{"sentiment": "positive", "evidence": "love"}')


def doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", *args])
    return result.exit_code, result.stdout


def scored(text: str = "yes") -> Reply:
    """A reply with log-probabilities (sent only when the request asks for them)."""
    return Reply.text(text, chunks=[text], logprobs=[[logprob_entry(text, yes=-0.1, no=-2.3)]])


def generates(engine: ScriptedEngine) -> list[dict[str, Any]]:
    return [r.body for r in engine.requests if r.path == "/api/generate"]


def test_a_healthy_host_passes_every_check(engine: ScriptedEngine, url: str) -> None:
    engine.script(scored(), Reply.text('{"answer": 7}'), SMOKE)
    code, out = doctor("--host", url, "-m", "tiny")
    assert code == 0, out
    assert f"is running Ollama {engine.version}" in out
    assert "log-probabilities: sent when asked" in out
    assert "ok   format is enforced" in out
    assert "smoke extraction" in out
    assert "FAIL" not in out
    assert "warn" not in out
    logprobs, probe, _smoke = generates(engine)
    assert logprobs["logprobs"] is True
    assert probe["format"] == FORMAT_PROBE_SCHEMA
    assert "one word" in str(probe["prompt"])


def test_without_a_model_it_lists_the_models(engine: ScriptedEngine, url: str) -> None:
    code, out = doctor("--host", url)
    assert code == 0, out
    assert "models on this host: tiny" in out
    assert generates(engine) == []


@pytest.fixture
def plain_http_server(tmp_path: Path) -> Iterator[str]:
    """``python -m http.server`` on loopback, serving an empty directory."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("python -m http.server did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_plain_web_server_fails_with_the_reason(plain_http_server: str) -> None:
    code, out = doctor("--host", plain_http_server, "-m", "tiny")
    assert code == 3
    assert "FAIL" in out
    assert "not Ollama-compatible: /api/version answered HTTP 404" in out
    assert "Ollama 0.1.0" not in out
    assert "smoke extraction" not in out


def test_an_html_page_where_json_belongs_fails() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html="<html><body>Welcome</body></html>")

    facts = probe_server(
        Settings.resolve("http://box:80"), "tiny", transport=httpx.MockTransport(page)
    )
    assert not facts.compatible
    assert facts.problem is not None
    assert "'<html><body>Welcome</body></html>' (text/html; charset=utf-8), not JSON" in (
        facts.problem
    )


def test_no_logprobs_is_a_warning(engine: ScriptedEngine, url: str) -> None:
    engine.script(Reply.text("yes"), Reply.text('{"answer": 3}'), SMOKE)
    code, out = doctor("--host", url, "-m", "tiny")
    assert code == 0, out
    assert "warn log-probabilities: none came back" in out
    assert "no confidence and no calibration" in out


def test_a_server_that_ignores_format_fails(engine: ScriptedEngine, url: str) -> None:
    # The scripted engine plays what it is given, whatever `format` says: here, the word.
    engine.script(scored(), Reply.text("Blue."))
    code, out = doctor("--host", url, "-m", "tiny")
    assert code == 3
    assert "FAIL format is not enforced" in out
    assert "the reply was 'Blue.'" in out
    assert "ignores `format`" in out
    assert len(generates(engine)) == 2  # no smoke extraction after a failed check


def test_a_string_where_the_schema_wants_an_integer_fails(engine: ScriptedEngine, url: str) -> None:
    engine.script(scored(), Reply.text('{"answer": "blue"}'))
    code, out = doctor("--host", url, "-m", "tiny")
    assert code == 3
    assert "FAIL format is not enforced" in out


def test_a_server_before_schema_formats_is_probed_with_json() -> None:
    old = ScriptedEngine(models=("tiny",), version="0.4.7")
    old.script(Reply.text("yes"), Reply.text('{"colour": "blue"}'), SMOKE)
    with serve(old) as srv:
        code, out = doctor("--host", srv.url, "-m", "tiny")
    assert code == 0, out
    assert "needs Ollama 0.5.0 or later" in out
    assert "warn log-probabilities" in out
    assert generates(old)[1]["format"] == "json"


def test_a_missing_model_fails_with_the_pull_command(url: str) -> None:
    code, out = doctor("--host", url, "-m", "llama3.2")
    assert code == 3
    assert "ollama pull llama3.2" in out


def test_an_unreachable_host_fails_saying_how_to_start_a_server() -> None:
    with serve(ScriptedEngine()) as srv:
        dead = srv.url
    code, out = doctor("--host", dead)
    assert code == 3
    assert "FAIL" in out
    assert "ollama serve" in out


def test_the_facts_of_a_healthy_host(engine: ScriptedEngine, url: str) -> None:
    engine.script(scored(), Reply.text('{"answer": 7}'))
    facts = probe_server(Settings.resolve(url), "tiny")
    assert facts.compatible
    assert (facts.version, facts.models) == (engine.version, ("tiny:latest", "thinker:latest"))
    assert (facts.model_present, facts.logprobs, facts.format_enforced) == (True, True, True)
    assert facts.format_sent == "schema"
    assert generates(engine)[0]["options"]["num_predict"] == 4


def test_a_thinking_model_is_probed_with_thinking_off(engine: ScriptedEngine, url: str) -> None:
    # With thinking on, the answer would land in `thinking` and `response` would be empty.
    engine.script(scored(), Reply.text('{"answer": 7}'))
    facts = probe_server(Settings.resolve(url), "thinker")
    assert facts.format_enforced
    assert [body["think"] for body in generates(engine)] == [False, False]
