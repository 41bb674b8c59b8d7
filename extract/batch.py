"""Label many documents: one async engine, a sync face over it, one ``Record`` per input.

``aextract_many`` reads records lazily (never more than the in-flight window ahead of the
caller), sends each to the least-loaded healthy host, and yields a ``Record`` for every
input — a value, or the error that stopped it. Per-document problems (an empty text, a reply
that never validated, a server that stayed down) become error records and never stop the run.
``extract_many`` runs the same engine on an event loop in a background thread.

Records are str (the text) or dicts with an id field and a text field; other fields ride along
in ``Record.fields``. ``Record.line`` is the input's 1-based position, and ``Record.id`` its id,
None when it has none (a str, or a dict without one). See ``extract._records`` for how ids are
chosen and compared.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, Unpack

import tenacity

from ._batch_run import BatchRun, Records
from ._cache import Cache
from ._config import DEFAULT_TRANSPORT_ATTEMPTS
from ._extractor import AsyncExtractor, CallOptions, Extractor, _retrying
from ._hosts import DEFAULT_CEILING, DEFAULT_START, Host, HostPool, Window
from ._records import Record
from ._sync import iterate_in_thread
from ._wire import parse_host
from .errors import ConfigError, ExtractError
from .schema import Schema

__all__ = ["Record", "aextract_many", "extract_many"]

logger = logging.getLogger("extract.batch")

CacheArg = Cache | str | os.PathLike[str] | bool | None


async def aextract_many(
    extractor: AsyncExtractor,
    records: Records,
    schema: Any,
    *,
    hosts: Sequence[str] | str | None = None,
    concurrency: int | None = None,
    ordered: bool = True,
    id_field: str = "id",
    text_field: str = "text",
    cache: CacheArg = None,
    **call_options: Unpack[CallOptions],
) -> AsyncIterator[Record]:
    """Extract a value from every record; yield one ``Record`` per input.

    ``records`` is any iterable or async iterable of str or dict. ``hosts`` spreads the work
    over several Ollama hosts (default: the extractor's); each gets an in-flight window that
    starts at 1 (Ollama's default ``OLLAMA_NUM_PARALLEL``) and adapts to latency and 503s,
    never above ``concurrency`` when given (which is then also where it starts). Records come
    in input order, or as they finish with ``ordered=False``. ``cache``: True for the default
    file, a path, or a ``Cache``; only validated values are stored. ``call_options`` apply to
    every document and stay constant, so the model is never reloaded mid-run.

    Before reading any record, raises ConfigError or SchemaError for bad arguments, and
    ModelNotFound or ConnectError when a host lacks the model or cannot be reached. Errors of
    the input iterable itself propagate; per-document errors become records.
    """
    loaded = Schema.load(schema)
    options: CallOptions = {**call_options}
    retry = _async_retry(options.pop("retry", extractor._defaults.get("retry")))
    extractor.cache_key("check", loaded, **options)
    start, ceiling = _window_bounds(concurrency)
    urls = [hosts] if isinstance(hosts, str) else list(hosts or [extractor.settings.host])
    pool_hosts: list[Host] = []
    owned: list[AsyncExtractor] = []
    store, own_store = _open_cache(cache)
    try:
        for url in dict.fromkeys(parse_host(u) for u in urls):
            ex = extractor
            if url != extractor.settings.host:
                ex = AsyncExtractor(
                    extractor.model,
                    host=url,
                    api_key=extractor.settings.api_key,
                    **extractor._defaults,
                )
                owned.append(ex)
            pool_hosts.append(Host(url, ex, Window(start, ceiling)))
        pool_hosts = await _preflight(pool_hosts, extractor.model)
        run = BatchRun(
            HostPool(pool_hosts),
            keys=extractor,
            schema=loaded,
            options=options,
            retry=retry,
            cache=store,
            ordered=ordered,
            id_field=id_field,
            text_field=text_field,
        )
        try:
            async for record in run.results(records):
                yield record
        finally:
            await run.aclose()
    finally:
        for ex in owned:
            await ex.aclose()
        if own_store and store is not None:
            store.close()


def extract_many(
    extractor: Extractor,
    records: Iterable[Any],
    schema: Any,
    *,
    hosts: Sequence[str] | str | None = None,
    concurrency: int | None = None,
    ordered: bool = True,
    id_field: str = "id",
    text_field: str = "text",
    cache: CacheArg = None,
    **call_options: Unpack[CallOptions],
) -> Iterator[Record]:
    """The sync face of ``aextract_many``: same arguments, same records, same errors.

    The engine runs on an event loop in a background thread (with an AsyncExtractor built from
    this extractor's settings; a custom httpx transport is not carried over) and hands records
    over through a small bounded buffer. The input is read from a worker thread.
    """
    defaults = dict(extractor._defaults)
    if "retry" in defaults:
        defaults["retry"] = _async_retry(defaults["retry"])
    if "retry" in call_options:
        call_options["retry"] = _async_retry(call_options["retry"])

    async def engine() -> AsyncIterator[Record]:
        aex = AsyncExtractor(
            extractor.model,
            host=extractor.settings.host,
            api_key=extractor.settings.api_key,
            **defaults,  # type: ignore[arg-type]
        )
        try:
            async for record in aextract_many(
                aex,
                records,
                schema,
                hosts=hosts,
                concurrency=concurrency,
                ordered=ordered,
                id_field=id_field,
                text_field=text_field,
                cache=cache,
                **call_options,
            ):
                yield record
        finally:
            await aex.aclose()

    return iterate_in_thread(engine)


async def _preflight(hosts: list[Host], model: str) -> list[Host]:
    """Ask every host for the model once, before the run.

    With one host, an unreachable host or a missing model stops the run before it starts,
    rather than failing every record. With several, the hosts that fail are left out (with a
    warning) as long as one is usable: one host down must not stop a cluster-wide job.
    """
    checks = await asyncio.gather(
        *(h.extractor._transport.show(model) for h in hosts), return_exceptions=True
    )
    usable = [
        h for h, check in zip(hosts, checks, strict=True) if not isinstance(check, BaseException)
    ]
    failures = [c for c in checks if isinstance(c, BaseException)]
    for failure in failures:
        if not isinstance(failure, ExtractError):
            raise failure
        if usable:
            logger.warning("leaving out a host for this run: %s", failure)
    if not usable:
        raise failures[0]
    return usable


def _window_bounds(concurrency: int | None) -> tuple[int, int]:
    if concurrency is None:
        return DEFAULT_START, DEFAULT_CEILING
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency={concurrency!r}: give a number of requests (≥ 1)")
    return concurrency, concurrency


def _async_retry(retry: Any) -> tenacity.AsyncRetrying:
    """The transport retry policy as an AsyncRetrying (a sync Retrying's strategies carried over).

    Raises ConfigError for anything but a number of tries or a tenacity policy.
    """
    if isinstance(retry, tenacity.Retrying):
        retry = tenacity.AsyncRetrying(
            stop=retry.stop,
            wait=retry.wait,
            retry=retry.retry,
            before=retry.before,
            after=retry.after,
            before_sleep=retry.before_sleep,
            reraise=retry.reraise,
            retry_error_cls=retry.retry_error_cls,
            retry_error_callback=retry.retry_error_callback,
        )
    policy = _retrying(DEFAULT_TRANSPORT_ATTEMPTS if retry is None else retry, is_async=True)
    assert isinstance(policy, tenacity.AsyncRetrying)
    return policy


def _open_cache(cache: CacheArg) -> tuple[Cache | None, bool]:
    """The cache to use and whether this run opened it (and so closes it)."""
    if cache is None or cache is False:
        return None, False
    if isinstance(cache, Cache):
        return cache, False
    return Cache(None if cache is True else cache), True
