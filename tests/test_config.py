"""Host parsing and settings resolution: argument → environment → default."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from extract import ConfigError
from extract.client.config import Settings, resolve_model, resolve_timeout
from extract.client.urls import parse_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        ("1.2.3.4:56789", "http://1.2.3.4:56789"),
        (":5000", "http://127.0.0.1:5000"),
        ("example.com", "http://example.com:11434"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("example.com/path/", "http://example.com:11434/path"),
        ("https://example.com:56789/path", "https://example.com:56789/path"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("[::1]", "http://[::1]:11434"),
        ("[::1]:56789", "http://[::1]:56789"),
        ("http://[::1]:56789/path", "http://[::1]:56789/path"),
        ("fd00::1", "http://[fd00::1]:11434"),
        ("  localhost  ", "http://localhost:11434"),
    ],
)
def test_ollama_host_is_parsed_like_the_official_client(value: str | None, expected: str) -> None:
    assert parse_host(value) == expected


@pytest.mark.parametrize("value", ["ftp://h", "h:port", "h:99999", "[::1", "[::1]x", "a:b:c"])
def test_bad_hosts_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigError):
        parse_host(value)


def test_argument_beats_environment_beats_default() -> None:
    env = {"OLLAMA_HOST": "10.0.0.5", "OLLAMA_API_KEY": "k"}
    assert Settings.resolve(environ={}).host == "http://127.0.0.1:11434"
    assert Settings.resolve(environ=env).host == "http://10.0.0.5:11434"
    assert Settings.resolve("other:1", environ=env).host == "http://other:1"
    assert Settings.resolve(environ=env).api_key == "k"
    assert Settings.resolve(environ=env).headers()["Authorization"] == "Bearer k"
    assert "Authorization" not in Settings.resolve(environ={}).headers()


def test_environment_is_read_at_construction_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "first:1")
    first = Settings.resolve()
    monkeypatch.setenv("OLLAMA_HOST", "second:2")
    assert (first.host, Settings.resolve().host) == ("http://first:1", "http://second:2")


def test_model_must_come_from_somewhere() -> None:
    assert resolve_model(None, {"EXTRACT_MODEL": "m"}) == "m"
    assert resolve_model("a", {"EXTRACT_MODEL": "m"}) == "a"
    with pytest.raises(ConfigError, match="EXTRACT_MODEL"):
        resolve_model(None, {})


@pytest.mark.parametrize("bad", [0, -1, "10", (1,), (1, -2), True])
def test_bad_timeouts(bad: object) -> None:
    with pytest.raises(ConfigError):
        resolve_timeout(bad)  # type: ignore[arg-type]


def test_import_stays_light() -> None:
    code = (
        "import sys, extract, extract.batch, extract.cli, extract.integrations; "
        "heavy = {'llama_cpp', 'pandas', 'ray', 'pyarrow', 'numpy', 'extract.server'}; "
        "heavy &= set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_are_exactly_all() -> None:
    import extract

    public = {
        name
        for name, value in vars(extract).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(extract.__all__) - {"__version__"}
