"""``Labeling``: one labeling session, the single way into batch labeling.

A session holds frozen options (a schema, call options, hosts, concurrency, cache) and labels
any number of record streams, each yielding one ``Record`` per input: a value, or the error
that stopped it. The CLI, ``label_dataframe`` and Ray's ``Labeler`` are thin faces over it.

Records are read lazily (never more than the in-flight window ahead of the caller) and sent to
the least-loaded healthy host. Per-document problems (an empty text, a reply that never
validated, a server that stayed down) become error records and never stop the run. The hosts'
windows, connections and what was learned about each host live as long as the session, so a
session fed batch after batch keeps them.

Records are str (the text) or dicts with an id field and a text field; other fields ride along
in ``Record.fields``. ``Record.line`` is the input's 1-based position, and ``Record.id`` its id,
None when it has none (a str, or a dict without one). See ``extract.batch.records`` for how ids
are chosen and compared.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Unpack

import httpx

from ..client.backends import BackendName, check_backend
from ..client.backoff import check_retry
from ..client.calls import CallOptions
from ..client.config import DEFAULT_TRANSPORT_ATTEMPTS, Settings
from ..client.extractor import AsyncExtractor
from ..core.calibration import LearnedPrior
from ..core.schema import Schema
from ..core.shift import ShiftTest, ks_test
from ..errors import ConfigError, ExtractError
from .cache import Cache
from .cascade import Tier, cascade, check_thresholds
from .hosts import DEFAULT_CEILING, DEFAULT_START, Host, HostPool, Window
from .labeling_config import (
    LabelingConfig,
    Provenance,
    mismatch_message,
    provenance_mismatch,
)
from .records import Document, Record
from .run import BatchRun, Records
from .sync import LoopThread

__all__ = ["CacheArg", "Labeling", "Record"]

logger = logging.getLogger("extract.batch")

CacheArg = Cache | str | os.PathLike[str] | bool | None
ConfigArg = LabelingConfig | str | os.PathLike[str] | None
# The shift check compares the confidences of a run's first records with the calibration
# gold's; it says "differs" below this p-value (rare by chance: 1 run in 100 like the gold).
SHIFT_RECORDS = 200
SHIFT_MIN_RECORDS = 30
SHIFT_ALPHA = 0.01


class Labeling:
    """Label records with one schema and one set of options, on one or several hosts.

    ``hosts`` spreads the work over several Ollama hosts (default: ``OLLAMA_HOST``); each gets
    an in-flight window that starts at 1 (Ollama's default ``OLLAMA_NUM_PARALLEL``) and adapts
    to latency and 503s, never above ``concurrency`` when given (which is then also where it
    starts). Records come in input order, or as they finish with ``ordered=False``. ``cache``:
    True for the default file, a path, or a ``Cache``; only validated values are stored.

    ``options`` (``format``, ``max_attempts``, ``retry``, ``options``, ``system``, ...) apply to
    every document and stay constant, so the model is never reloaded mid-run. ``transport`` is
    an httpx async transport for every host (tests). ``backend`` is the hosts' API: ``"ollama"``
    or ``"openai"`` (see ``Extractor``).

    ``domain_prior``: choice fields are calibrated against the model's lean on documents like
    the batch's (``Extractor.learn_prior``), learned once per session from the first
    documents' words (True), from given texts (a list: a rerun that must decide alike gives
    the same ones), or not at all (False: the ``N/A`` prior of single calls). What it cost is
    in ``priors``.

    ``config``: a labeling config (``LabelingConfig`` or its path): its options apply under
    the ones given here, its model when ``model`` is None, its prior when ``domain_prior``
    is None. Before the first run, its provenance is checked against the host's model (by
    digest) and the options' decode path and extract's scoring version: a mismatch raises
    ConfigError unless ``force``. With a record threshold in it, records get ``accepted``;
    with calibration confidences, the first ``SHIFT_RECORDS`` records' confidences are
    tested against them (``shift``) and a marked difference is logged as a warning.
    ``escalate``: a cascade. Each entry is a further tier (``Tier``, or a mapping ``{"model",
    "hosts", "options"}``: another model, other hosts, or a costlier setting of the same
    model); ``thresholds`` gives one confidence threshold per tier, this session's first, as
    ``extract eval --cascade TARGET`` chooses them on gold. A record below its
    tier's threshold (or failed) is labeled again by the next tier; records carry ``tier`` and
    ``accepted``, and what no tier accepts is for review (``extract.batch.cascade``).

    Use it as a context manager (``with`` for :meth:`results`, ``async with`` for
    :meth:`aresults`), or call ``close()``/``aclose()``. One session serves one event loop:
    the sync face runs its own on a background thread.

    Raises ConfigError or SchemaError for bad arguments, here, before any record is read.
    """

    def __init__(
        self,
        schema: Any,
        *,
        model: str | None = None,
        hosts: Sequence[str] | str | None = None,
        api_key: str | None = None,
        backend: BackendName = "ollama",
        concurrency: int | None = None,
        ordered: bool = True,
        id_field: str = "id",
        text_field: str = "text",
        cache: CacheArg = None,
        transport: httpx.AsyncBaseTransport | None = None,
        domain_prior: bool | Sequence[str] | None = None,
        config: ConfigArg = None,
        force: bool = False,
        escalate: Sequence[Tier | Mapping[str, Any]] = (),
        thresholds: Sequence[float] | None = None,
        **options: Unpack[CallOptions],
    ) -> None:
        if isinstance(domain_prior, str):
            raise ConfigError("domain_prior: give True, False or a list of texts, not one str")
        self.config = (
            LabelingConfig.load(config) if isinstance(config, str | os.PathLike) else config
        )
        self.force = force
        if self.config is not None:
            options, changed = self.config.call_options(options)
            if changed and self.config.record_threshold is not None:
                logger.warning(
                    "options %s differ from the labeling config's: its guaranteed threshold "
                    "was set under the config's and may not hold",
                    ", ".join(changed),
                )
            if model is None and self.config.provenance is not None:
                model = self.config.provenance.model
            if domain_prior is None:
                domain_prior = self.config.prior
        self.schema = Schema.load(schema)
        self.options: CallOptions = {**options}
        self.ordered, self.id_field, self.text_field = ordered, id_field, text_field
        self._start, self._ceiling = _window_bounds(concurrency)
        self._retry = check_retry(options.get("retry", DEFAULT_TRANSPORT_ATTEMPTS))
        given: list[str | None] = [None]
        if hosts:
            given = [hosts] if isinstance(hosts, str) else list(hosts)
        self.backend = check_backend(backend)
        resolved = (Settings.resolve(u, backend=self.backend) for u in given)
        self.extractors = [
            AsyncExtractor(
                model, host=url, api_key=api_key, backend=backend, transport=transport, **options
            )
            for url in dict.fromkeys(s.host for s in resolved)
        ]
        # Plan one call now, so a bad option or template fails here rather than per record.
        self.extractors[0].cache_key("check", self.schema)
        self.cache, self._own_cache = _open_cache(cache)
        self._pool: HostPool | None = None
        self._thread: LoopThread | None = None
        self._domain: bool | Sequence[str] = True if domain_prior is None else domain_prior
        self.priors: list[LearnedPrior] = []
        # What the in-domain prior was learned from, once it is: part of each cache key.
        self._prior_source = "n/a"
        self.shift: ShiftTest | None = None
        self.tiers = [Tier.of(t) for t in escalate]
        self.thresholds: tuple[float, ...] | None = None
        self._escalated: list[Labeling] = []
        if self.tiers:
            self.ordered = True  # each tier's records are matched to its documents by order
            self.thresholds = check_thresholds(thresholds, len(self.tiers) + 1)
            self._escalated = [
                Labeling(
                    self.schema,
                    model=tier.model or model,
                    hosts=list(tier.hosts) if tier.hosts else hosts,
                    api_key=api_key,
                    concurrency=concurrency,
                    id_field=id_field,
                    text_field=text_field,
                    cache=self.cache,
                    transport=transport,
                    domain_prior=domain_prior,
                    **_merged(options, tier.options),
                )
                for tier in self.tiers
            ]
        elif thresholds is not None:
            raise ConfigError("thresholds= is for a cascade: give escalate= tiers too")

    @property
    def model(self) -> str:
        return self.extractors[0].model

    @property
    def hosts(self) -> list[str]:
        return [ex.host for ex in self.extractors]

    def __repr__(self) -> str:
        return f"Labeling(model={self.model!r}, hosts={self.hosts!r}, schema={self.schema!r})"

    @property
    def wants_confidence(self) -> bool:
        """Whether this session's ok records should carry confidence: it is on and the schema
        has choice fields (or samples are voted on). One without it (a server that gives no
        log-probabilities, a document read in pieces) is worth counting."""
        if not self.options.get("confidence", True):
            return False
        return self.schema.has_choices or self.options.get("samples", 1) > 1

    def _scoring(self) -> dict[str, object]:
        """How confidence is scored, as JSON data: a cached record is reused only when it was
        scored alike."""
        return {
            "confidence": self.options.get("confidence", True),
            "calibrate": self.options.get("calibrate", True),
            "temperature": self.options.get("confidence_temperature", 1.0),
            "samples": self.options.get("samples", 1),
            "prior": self._prior_source,
        }

    async def aresults(self, records: Records) -> AsyncIterator[Record]:
        """Label every record of ``records`` (an iterable or async iterable of str or dict);
        yield one ``Record`` per input.

        Before reading any record, the first call asks every host for the model: with one
        host, ModelNotFound or ConnectError stops the run there; with several, failing hosts
        are left out (with a warning) while one is usable. Errors of the input iterable itself
        propagate; per-document errors become records.

        With ``escalate=`` tiers, each record is the cascade's final one (``extract.batch.
        cascade``): records come in input order whatever ``ordered``.
        """
        if self.thresholds is not None:
            stages = [self, *self._escalated]

            def label(tier: int, docs: list[Document]) -> AsyncIterator[Record]:
                return stages[tier]._one_tier(docs)

            run = cascade(
                label,
                self.thresholds,
                records,
                id_field=self.id_field,
                text_field=self.text_field,
            )
            async for record in run:
                yield record
            return
        async for record in self._one_tier(records):
            yield record

    async def _one_tier(self, records: Records) -> AsyncIterator[Record]:
        if self._pool is None:
            self._pool = await self._open_pool()
        run = BatchRun(
            self._pool,
            keys=self.extractors[0],
            schema=self.schema,
            retry=self._retry,
            cache=self.cache,
            ordered=self.ordered,
            id_field=self.id_field,
            text_field=self.text_field,
            warm_up=self._warm_up if self._wants_prior() else None,
            scoring=self._scoring,
            scored=self.wants_confidence,
        )
        threshold = self.config.record_threshold if self.config is not None else None
        calibration = self.config.calibration_confidences if self.config is not None else ()
        seen: list[float] = []
        try:
            async for record in run.results(records):
                if threshold is not None:
                    least = record.min_confidence
                    reached = record.ok and least is not None and least >= threshold.threshold
                    record = dataclasses.replace(record, accepted=reached)
                if calibration and self.shift is None and record.ok:
                    if (least := record.min_confidence) is not None:
                        seen.append(least)
                    if len(seen) == SHIFT_RECORDS:
                        self._test_shift(seen, calibration)
                yield record
            if calibration and self.shift is None and len(seen) >= SHIFT_MIN_RECORDS:
                self._test_shift(seen, calibration)
        finally:
            await run.aclose()

    def _test_shift(self, seen: Sequence[float], calibration: Sequence[float]) -> None:
        self.shift = ks_test(seen, calibration)
        if self.shift.differs(SHIFT_ALPHA):
            logger.warning("%s", shift_warning(self.shift))

    def results(self, records: Records) -> Iterator[Record]:
        """The sync face of :meth:`aresults`: same records, same errors.

        The session runs on an event loop in a background thread that lives until ``close()``;
        records are handed over through a small bounded buffer.
        """
        if self._thread is None:
            self._thread = LoopThread("extract-labeling")
        return self._thread.iterate(lambda: self.aresults(records))

    def _wants_prior(self) -> bool:
        """Whether the next run learns the in-domain prior first: not yet learned, and choice
        fields that are calibrated (the server's part is known only when it is asked)."""
        calibrated = self.options.get("calibrate", True) and self.options.get("confidence", True)
        return self._domain is not False and calibrated and self.schema.has_choices

    async def _warm_up(self, texts: list[str]) -> None:
        """Learn the in-domain prior on every host, once per session.

        A host that fails here keeps the ``N/A`` prior (with a warning): its records are
        still labeled, and the failure shows again on them if it lasts.
        """
        domain, self._domain = self._domain, False
        sample = texts if isinstance(domain, bool) else list(domain)
        assert self._pool is not None
        hosts = self._pool.hosts
        learned = await asyncio.gather(
            *(h.extractor.learn_prior(sample, self.schema, retry=self._retry) for h in hosts),
            return_exceptions=True,
        )
        for host, outcome in zip(hosts, learned, strict=True):
            if isinstance(outcome, ExtractError):
                logger.warning("no in-domain prior from %s, so the N/A one: %s", host.url, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome is not None:
                self.priors.append(outcome)
        if self.priors:
            digest = hashlib.sha256("\x00".join(sample).encode("utf-8", "surrogatepass"))
            self._prior_source = f"domain:{digest.hexdigest()}"

    async def _open_pool(self) -> HostPool:
        """Ask every host for the model once, before the first run.

        One host down must not stop a cluster-wide job, but a single host that cannot serve
        the model should stop the run before it starts rather than fail every record.
        """
        checks = await asyncio.gather(
            *(ex.check_model() for ex in self.extractors), return_exceptions=True
        )
        usable = [ex for ex, c in zip(self.extractors, checks, strict=True) if c is None]
        failures = [c for c in checks if isinstance(c, BaseException)]
        for failure in failures:
            if not isinstance(failure, ExtractError):
                raise failure
            if usable:
                logger.warning("leaving out a host for this run: %s", failure)
        if not usable:
            raise failures[0]
        if self.config is not None and self.config.provenance is not None and not self.force:
            await self._check_provenance(self.config.provenance, usable[0])
        return HostPool([Host(ex.host, ex, Window(self._start, self._ceiling)) for ex in usable])

    async def _check_provenance(self, recorded: Provenance, extractor: AsyncExtractor) -> None:
        """Refuse to label under a config tuned with another model or scoring (ConfigError)."""
        digest = None
        if recorded.digest is not None:
            try:
                digest = await extractor.model_digest()
            except ExtractError as exc:
                logger.warning("cannot read the model's digest: %s", exc)
        problems = provenance_mismatch(
            recorded,
            model=extractor.model,
            digest=digest,
            options=self.options,
            backend=self.backend,
        )
        if problems:
            raise ConfigError(mismatch_message(problems))

    async def aclose(self) -> None:
        """Close the connections and the cache this session opened (again: nothing)."""
        for tier in self._escalated:
            await tier.aclose()
        for ex in self.extractors:
            await ex.aclose()
        if self._own_cache and self.cache is not None:
            self.cache.close()

    def close(self) -> None:
        """The sync twin of :meth:`aclose`; also stops the background loop."""
        thread, self._thread = self._thread, None
        if thread is None:
            asyncio.run(self.aclose())
            return
        try:
            thread.run(self.aclose())
        finally:
            thread.close()

    async def __aenter__(self) -> Labeling:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Labeling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shift_warning(test: ShiftTest) -> str:
    """The warning a marked shift gives, for logs and the run's summary."""
    return (
        f"warning: the confidences of this run's first {test.batch} records differ from the "
        f"calibration gold's ({test.gold} records; Kolmogorov–Smirnov D={test.statistic:.3f}, "
        f"p={test.p_value:.2g}): the batch may not be like the gold, and the guaranteed "
        "accuracy of accepted records may not hold; label a sample of this batch as gold"
    )


def _window_bounds(concurrency: int | None) -> tuple[int, int]:
    if concurrency is None:
        return DEFAULT_START, DEFAULT_CEILING
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency={concurrency!r}: give a number of requests (≥ 1)")
    return concurrency, concurrency


def _open_cache(cache: CacheArg) -> tuple[Cache | None, bool]:
    """The cache to use and whether this session opened it (and so closes it)."""
    if cache is None or cache is False:
        return None, False
    if isinstance(cache, Cache):
        return cache, False
    return Cache(None if cache is True else cache), True


def _merged(options: CallOptions, tier: CallOptions) -> CallOptions:
    """A tier's call options: the first tier's, with the tier's own over them."""
    return {**options, **tier}
