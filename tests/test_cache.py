"""The SQLite cache of validated values."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from extract.batch.cache import Cache, default_cache_path


def test_put_get_and_missing(cache_file: Path) -> None:
    with Cache(cache_file) as cache:
        cache.put("k1", {"name": "Ann", "tags": ["a"], "n": None})
        cache.put("k2", None)
        assert cache.get("k1") == {"name": "Ann", "tags": ["a"], "n": None}
        assert cache.get("k2") is None
        with pytest.raises(KeyError):
            cache.get("absent")
        assert len(cache) == 2


def test_values_persist_and_can_be_replaced(cache_file: Path) -> None:
    with Cache(cache_file) as cache:
        cache.put("k", 1)
        cache.put("k", 2)
    with Cache(cache_file) as again:
        assert again.get("k") == 2
        assert len(again) == 1


def test_two_open_caches_share_one_file(cache_file: Path) -> None:
    with Cache(cache_file) as first, Cache(cache_file) as second:
        first.put("k", "v")
        first.close()
        assert second.get("k") == "v"


def test_usable_from_several_threads(cache_file: Path) -> None:
    with Cache(cache_file) as cache:

        def work(n: int) -> None:
            for i in range(50):
                cache.put(f"{n}-{i}", i)
                assert cache.get(f"{n}-{i}") == i

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(cache) == 200


def test_lone_surrogates_survive(cache_file: Path) -> None:
    with Cache(cache_file) as cache:
        cache.put("k", {"s": "\ud800"})
        assert cache.get("k") == {"s": "\ud800"}


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "extract" / "cache.sqlite"
    monkeypatch.setenv("EXTRACT_CACHE", str(tmp_path / "mine.db"))
    assert default_cache_path() == tmp_path / "mine.db"
    monkeypatch.delenv("EXTRACT_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / ".cache" / "extract" / "cache.sqlite"


def test_default_cache_is_created_where_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EXTRACT_CACHE", str(tmp_path / "deep" / "c.sqlite"))
    with Cache() as cache:
        cache.put("k", 1)
    assert (tmp_path / "deep" / "c.sqlite").is_file()
