"""A SQLite cache of validated values, addressed by what the request would have been.

The key is ``Extractor.cache_key``: a hash of the model, the final prompt, the schema, the
format mode and the options (a batch run adds how confidence is scored, see
``extract.batch.scores.salted_key``). Only values that passed validation are stored, as JSON
data, so a rerun of a finished batch makes no model calls and a changed schema (a new key)
recomputes. Beside each value, a ``report`` (JSON, or NULL) keeps what the record said about
it (confidence, option scores), so a record served from the cache says the same.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

ENV_CACHE = "EXTRACT_CACHE"
ENV_XDG_CACHE = "XDG_CACHE_HOME"
CACHE_FILE = "cache.sqlite"
# Commits are grouped: a lost commit only costs a recomputation, and one per value is slow.
COMMIT_EVERY = 256
COMMIT_INTERVAL = 1.0


def default_cache_path() -> Path:
    """``$EXTRACT_CACHE``, else ``$XDG_CACHE_HOME/extract/cache.sqlite``, else ``~/.cache/...``."""
    if explicit := os.environ.get(ENV_CACHE):
        return Path(explicit).expanduser()
    base = os.environ.get(ENV_XDG_CACHE) or Path.home() / ".cache"
    return Path(base).expanduser() / "extract" / CACHE_FILE


class Cache:
    """Validated values by key, in one SQLite file that several processes may share.

    Safe to call from any thread (one connection, one lock). Use as a context manager, or
    call ``close()`` to commit what is pending.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS extract_cache "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL, report TEXT)"
            )
            self._add_report_column()
            self._db.commit()
        self._pending = 0
        self._committed = time.monotonic()
        self._closed = False

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    def _add_report_column(self) -> None:
        # A file written before reports were kept has no such column: add it (its old rows
        # read as having no report). Another process may add it first.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(extract_cache)")}
        if "report" not in columns:
            try:
                self._db.execute("ALTER TABLE extract_cache ADD COLUMN report TEXT")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise

    def get(self, key: str) -> Any:
        """The JSON data stored under ``key``; raises KeyError when there is none."""
        return self.entry(key)[0]

    def entry(self, key: str) -> tuple[Any, Any]:
        """The JSON data stored under ``key`` and its report (None when it was stored without
        one); raises KeyError when there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT value, report FROM extract_cache WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            raise KeyError(key)
        return json.loads(row[0]), None if row[1] is None else json.loads(row[1])

    def put(self, key: str, data: Any, report: Any = None) -> None:
        """Store JSON data under ``key``, with ``report`` (JSON data: what the record said
        about it) when given, replacing what was there."""
        blob = json.dumps(data, separators=(",", ":"))
        said = None if report is None else json.dumps(report, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO extract_cache (key, value, created, report)"
                " VALUES (?, ?, ?, ?)",
                (key, blob, time.time(), said),
            )
            self._pending += 1
            if (
                self._pending >= COMMIT_EVERY
                or time.monotonic() - self._committed > COMMIT_INTERVAL
            ):
                self._commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM extract_cache").fetchone()[0])

    def _commit(self) -> None:
        self._db.commit()
        self._pending = 0
        self._committed = time.monotonic()

    def close(self) -> None:
        """Commit pending values and close the file (again: nothing)."""
        with self._lock:
            if self._closed:
                return
            self._commit()
            self._db.close()
            self._closed = True

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
