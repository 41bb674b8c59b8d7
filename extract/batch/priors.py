"""Content-free priors kept in the cache file, so a later process does not ask for them again.

An extractor keeps the ``N/A`` prior of each model, prompt head and schema in memory
(``core.calibration.PriorCache``); that costs one request per process, which ``extract one``
pays on every run. :class:`StoredPriors` keeps them in the same SQLite file as the cached
values (``batch.cache``), under keys of their own.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from ..core.calibration import DEFAULT_CACHE_SIZE, Prior, PriorCache, PriorKey
from .cache import Cache

# Keys of priors start with this, so they never meet the hex keys of cached values.
KEY_PREFIX = "prior:"


def stored_key(key: PriorKey) -> str:
    """The cache key of a prior: its ``PriorKey`` hashed, after :data:`KEY_PREFIX`.

    >>> stored_key(("tiny", "head", "fp")).startswith("prior:")
    True
    """
    blob = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False)
    return KEY_PREFIX + hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def prior_data(prior: Prior) -> dict[str, dict[str, float]]:
    """``prior`` as JSON data: field key → option → mean log-probability."""
    return {field: dict(options) for field, options in prior.fields.items()}


def prior_from(data: Any) -> Prior | None:
    """The prior stored as ``data``, or None when ``data`` is not one (a damaged entry is
    asked for again rather than trusted).

    >>> prior_from({"$.s": {'"a"': -0.5}}).fields
    {'$.s': {'"a"': -0.5}}
    >>> prior_from({"$.s": {'"a"': "x"}}) is None
    True
    """
    if not isinstance(data, dict):
        return None
    fields: dict[str, dict[str, float]] = {}
    for field, options in data.items():
        if not isinstance(options, dict):
            return None
        scores = {o: lp for o, lp in options.items() if isinstance(lp, int | float)}
        if len(scores) != len(options) or any(math.isnan(lp) for lp in scores.values()):
            return None
        fields[field] = {o: float(lp) for o, lp in scores.items()}
    return Prior(fields)


class StoredPriors(PriorCache):
    """A ``PriorCache`` that also reads and writes ``cache``: what one process learned,
    the next one finds.

    Empty priors (no reply had scores) stay in memory only: they may come from a passing
    fault, and a later process should ask again.
    """

    def __init__(self, cache: Cache, size: int = DEFAULT_CACHE_SIZE) -> None:
        super().__init__(size)
        self.cache = cache

    def get(self, key: PriorKey) -> Prior | None:
        """The prior for ``key``, from memory or else from the cache file; or None."""
        prior = super().get(key)
        if prior is not None:
            return prior
        try:
            prior = prior_from(self.cache.get(stored_key(key)))
        except KeyError:
            return None
        if prior is not None:
            super().put(key, prior)
        return prior

    def put(self, key: PriorKey, prior: Prior) -> None:
        """Keep ``prior`` in memory and, when it has fields, in the cache file."""
        super().put(key, prior)
        if prior.fields:
            self.cache.put(stored_key(key), prior_data(prior))
