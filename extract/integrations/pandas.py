"""Label a pandas DataFrame's text column (pandas is the ``pandas`` extra, imported on use)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..batch.session import CacheArg, Labeling


def label_dataframe(
    df: Any,
    text_column: str,
    schema: Any,
    *,
    model: str | None = None,
    host: str | Sequence[str] | None = None,
    concurrency: int | None = None,
    cache: CacheArg = None,
    **options: Any,
) -> Any:
    """A copy of ``df`` with three columns added (replacing any of the same names):

    - ``value``: the validated value (a Pydantic instance when ``schema`` is a model), or None;
    - ``ok``: whether the row got a value;
    - ``error``: ``"ErrorType: message"`` for a row that did not, else None.

    ``host`` may list several hosts. ``options`` are ``Labeling`` options (``format``,
    ``max_attempts``, ``options``, ...). Rows are labelled in one session, in order.
    Raises ConfigError, SchemaError, ModelNotFound or ConnectError before any row is sent, and
    ImportError when pandas is not installed; per-row problems land in ``error``.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"label_dataframe needs a pandas DataFrame, not {type(df).__name__}")
    if text_column not in df.columns:
        raise KeyError(f"no column {text_column!r} (columns: {', '.join(map(str, df.columns))})")
    values: list[Any] = []
    oks: list[bool] = []
    errors: list[str | None] = []
    rows = ({"id": i, "text": text} for i, text in enumerate(df[text_column]))
    with Labeling(
        schema, model=model, hosts=host, concurrency=concurrency, cache=cache, **options
    ) as session:
        for record in session.results(rows):
            values.append(record.value)
            oks.append(record.ok)
            error = record.error
            errors.append(f"{type(error).__name__}: {error.message}" if error else None)
    out = df.copy()
    out["value"] = pd.Series(values, index=df.index, dtype=object)
    out["ok"] = pd.Series(oks, index=df.index, dtype=bool)
    out["error"] = pd.Series(errors, index=df.index, dtype=object)
    return out
