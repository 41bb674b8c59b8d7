"""The scripted server's recording, capacity and lifecycle, observed through real HTTP.

Routes and replies are in ``test_server``, faults and validation in ``test_server_faults``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from conftest import BUSY, generate

from extract.server import Reply, ScriptedEngine, serve

# -- recording, capacity, lifecycle ------------------------------------------------------------


def test_requests_are_recorded_as_sent(engine: ScriptedEngine, client: httpx.Client) -> None:
    body = {"model": "tiny", "prompt": "p", "format": {"type": "object"}, "options": {"seed": 1}}
    client.get("/api/version")
    client.post("/api/generate", json=body, headers={"X-Trace": "abc"})
    client.post("/api/generate", json={"model": "nope", "prompt": "p"})
    assert [r.path for r in engine.requests] == ["/api/version", "/api/generate", "/api/generate"]
    recorded = engine.requests[1]
    assert recorded.body == body
    assert recorded.headers["x-trace"] == "abc"
    assert engine.requests[2].body["model"] == "nope"
    engine.reset()
    assert engine.requests == []


def test_full_queue_answers_503() -> None:
    entered, release = threading.Event(), threading.Event()

    def blocking(request: Mapping[str, Any]) -> Reply:
        entered.set()
        release.wait(10)
        return Reply.text("{}")

    engine = ScriptedEngine(slots=1, max_queue=0, responder=blocking)
    with serve(engine) as srv, ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            httpx.post, f"{srv.url}/api/generate", json={"model": "tiny", "prompt": "x"}
        )
        assert entered.wait(10)
        busy = httpx.post(f"{srv.url}/api/generate", json={"model": "tiny", "prompt": "x"})
        release.set()
        assert first.result().status_code == 200
    assert (busy.status_code, busy.json()) == (503, {"error": BUSY})


def test_requests_beyond_the_slots_wait_without_max_queue() -> None:
    engine = ScriptedEngine(slots=2, latency=0.01)
    with (
        serve(engine) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as c,
        ThreadPoolExecutor(16) as pool,
    ):
        replies = list(pool.map(lambda _: generate(c, stream=False), range(48)))
    assert {r.status_code for r in replies} == {200}
    assert len(engine.requests) == 48


def test_keep_alive_and_chunked_request_bodies(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/api/version")
    assert json.loads(conn.getresponse().read()) == {"version": "0.33.0"}
    sock = conn.sock
    body = json.dumps({"model": "tiny", "prompt": "x", "stream": False}).encode()
    conn.request("POST", "/api/generate", body=iter([body[:10], body[10:]]), encode_chunked=True)
    reply = conn.getresponse()
    assert (reply.status, json.loads(reply.read())["done"]) == (200, True)
    assert conn.sock is sock
    conn.close()


def test_stop_ends_hanging_replies_and_closes_the_port(engine: ScriptedEngine) -> None:
    engine.script(Reply.hang(600))
    srv = serve(engine)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{srv.url}/api/generate", json={"model": "tiny", "prompt": "x"}, timeout=60)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not engine.requests:
        time.sleep(0.01)
    srv.stop()
    caller.join(30)
    assert not caller.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url)
    srv.stop()


def test_run_forever_stops_on_ctrl_c() -> None:
    code = (
        "from extract.server import ScriptedEngine, run_forever\n"
        "run_forever(ScriptedEngine(), port=0, on_ready=lambda url: print(url, flush=True))\n"
    )
    # Ctrl-C as at a terminal, even when the tests run as a background job (whose children
    # inherit SIGINT ignored).
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert httpx.get(url).text == "Ollama is running"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_importing_the_server_leaves_llama_cpp_alone() -> None:
    code = "import sys, extract.server; print('llama_cpp' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "False"
