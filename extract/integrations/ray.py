"""Label a text column of a Ray Data dataset, spread over a list of Ollama hosts.

``Labeler`` is a callable class for ``Dataset.map_batches``: each actor builds it once, keeps
one labeling session (``extract.Labeling``) for its whole life, and feeds it batch after batch.
Documents in a batch run concurrently; each output row keeps the input columns and adds
``value``, ``ok``, ``error`` and ``attempts`` (see ``Labeler``)::

    labels = ds.map_batches(
        Labeler,
        fn_constructor_kwargs=dict(
            model="llama3.2", schema=Ticket, hosts=HOSTS, concurrency_per_host=2
        ),
        compute=ray.data.ActorPoolStrategy(size=2),     # a fixed pool of 2 actors
        num_cpus=0.25,          # an actor mostly waits on the network
        batch_size=256,
        batch_format="pyarrow",
    )

Capacity: every actor sends to every host, at most ``concurrency_per_host`` requests at a time
on each (less while a host answers slowly or with 503). With a pool of ``A`` actors, a host sees
at most ``A × concurrency_per_host`` requests at once, so for hosts that each run ``P``
requests in parallel (``OLLAMA_NUM_PARALLEL``) choose ``concurrency_per_host = P // A`` with
``A ≤ P``. An autoscaling pool ``ActorPoolStrategy(min_size=..., max_size=M)`` counts as
``A = M``. No coordination between actors is needed, so a restarted actor cannot leak or
double-count capacity.

Errors are values: a document that fails gets ``ok=False`` and its typed error, and the job goes
on. Only what no row can get past stops the job: a missing text column, a batch that already
has an output column, or an engine that cannot start (a host that lacks the model or cannot be
reached when an actor starts).

Resume: write with ``write_parquet`` (each block becomes files as soon as it is labeled), and on
a rerun drop the rows already written with ``skip_done``.

Ray, pandas and pyarrow are imported when this module is, never by ``import extract``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, Unpack

import numpy as np
import pandas as pd
import pyarrow as pa

from ..batch.cascade import Tier
from ..batch.records import Record
from ..batch.session import Labeling
from ..client.backends import BackendName
from ..client.calls import CallOptions
from ..core.schema import Schema
from ..errors import ConfigError, ExtractError, InputError, OutputError
from ._arrow import arrow_type, to_arrow
from ._resume import skip_done

__all__ = ["OUTPUT_COLUMNS", "Labeler", "skip_done"]

Batch: TypeAlias = "pa.Table | pd.DataFrame | dict[str, np.ndarray]"
ValueFormat = Literal["json", "struct"]

OUTPUT_COLUMNS = ("value", "ok", "error", "attempts")


class Labeler:
    """A ``map_batches`` callable that labels ``text_column`` and adds four columns.

    - ``value``: the validated value as JSON text, or with ``value_format="struct"`` as a typed
      Arrow column (a struct for an object schema), null when the row failed;
    - ``ok``: bool;
    - ``error``: the error as JSON text ``{"type", "message", ...}`` (the ``ExtractError``
      subclass and its data), null when ok;
    - ``attempts``: model calls made for the row (0 when it never reached a model).

    Batches may be pyarrow Tables, pandas DataFrames or dicts of numpy arrays; the result has
    the same kind (in a dict, ``value`` and ``error`` are pyarrow arrays so that their type stays
    fixed in a block where every row is null). ``hosts`` defaults to ``OLLAMA_HOST``
    (``backend="openai"``: vLLM, SGLang, llama.cpp's server; ``OPENAI_BASE_URL``);
    ``concurrency_per_host`` bounds this actor's in-flight requests on each host (see the module
    docstring for the cluster-wide sum). Other keywords (``format``, ``max_attempts``,
    ``options``, ``retry``, ...) apply to every document, as in ``Extractor``. ``escalate`` and
    ``thresholds`` make it a cascade, as in ``Labeling``; two more columns then say which
    ``tier`` labeled each row and whether it is for ``review`` (no tier accepted it).

    Raises ConfigError or SchemaError for bad arguments (including a schema with no single
    Arrow type when ``value_format="struct"``).
    """

    def __init__(
        self,
        *,
        schema: Any,
        model: str | None = None,
        hosts: Sequence[str] | str | None = None,
        concurrency_per_host: int = 1,
        text_column: str = "text",
        value_format: ValueFormat = "json",
        api_key: str | None = None,
        escalate: Sequence[Tier | Mapping[str, Any]] = (),
        thresholds: Sequence[float] | None = None,
        backend: BackendName = "ollama",
        **call_options: Unpack[CallOptions],
    ) -> None:
        if isinstance(concurrency_per_host, bool) or not isinstance(concurrency_per_host, int):
            raise ConfigError(f"concurrency_per_host={concurrency_per_host!r}: give an int ≥ 1")
        if concurrency_per_host < 1:
            raise ConfigError(f"concurrency_per_host={concurrency_per_host!r}: give an int ≥ 1")
        if value_format not in ("json", "struct"):
            raise ConfigError(f"value_format={value_format!r}: use 'json' or 'struct'")
        self.schema = Schema.load(schema)
        self.text_column = text_column
        self.value_type: pa.DataType = pa.string()
        if value_format == "struct":
            self.value_type = arrow_type(
                self.schema.json_schema, from_model=self.schema.model is not None
            )
        self.value_format = value_format
        self._labeling = Labeling(
            self.schema,
            model=model,
            hosts=hosts,
            api_key=api_key,
            backend=backend,
            concurrency=concurrency_per_host,
            escalate=escalate,
            thresholds=thresholds,
            **call_options,
        )
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"Labeler(model={self._labeling.model!r}, hosts={self._labeling.hosts!r}, "
            f"text_column={self.text_column!r})"
        )

    def __call__(self, batch: Batch) -> Batch:
        """Label every row of ``batch``; returns the batch with the output columns added.

        Raises ConfigError when the text column is missing or an output column already exists;
        an engine that cannot start raises its error (ModelNotFound, ConnectError).
        """
        columns = _column_names(batch)
        if self.text_column not in columns:
            raise ConfigError(
                f"the batch has no {self.text_column!r} column (columns: "
                f"{', '.join(columns) or 'none'}); name the text column with text_column="
            )
        if taken := [c for c in OUTPUT_COLUMNS if c in columns]:
            raise ConfigError(
                f"the batch already has {', '.join(map(repr, taken))}; rename with "
                "Dataset.rename_columns before labeling"
            )
        records = self._label(_column_values(batch, self.text_column))
        return _with_columns(batch, self._columns(records))

    def _label(self, texts: Sequence[Any]) -> list[Record]:
        if self._closed:
            raise ConfigError("this Labeler is closed")
        records: list[Record | None] = [_unsendable(t, self.text_column) for t in texts]
        sendable = [i for i, record in enumerate(records) if record is None]
        labeled = list(self._labeling.results([texts[i] for i in sendable]))
        for i, record in zip(sendable, labeled, strict=True):
            records[i] = record
        return [r for r in records if r is not None]

    def _columns(self, records: Sequence[Record]) -> dict[str, pa.Array]:
        ok = [r.ok for r in records]
        errors: list[ExtractError | None] = [r.error for r in records]
        plain = [_plain(r.value) if r.ok else None for r in records]
        if self.value_format == "struct":
            values, misfits = to_arrow(plain, self.value_type)
            for i in misfits:
                ok[i] = False
                errors[i] = OutputError(
                    f"the value does not fit the column type {self.value_type}; "
                    "use value_format='json'"
                )
        else:
            values = pa.array(
                [_dumps(v) if r.ok else None for v, r in zip(plain, records, strict=True)],
                type=pa.string(),
            )
        columns = {
            "value": values,
            "ok": pa.array(ok, type=pa.bool_()),
            "error": pa.array([_dumps(e.to_dict()) if e else None for e in errors], pa.string()),
            "attempts": pa.array([r.attempts for r in records], type=pa.int64()),
        }
        if self._labeling.thresholds is not None:
            # A cascade's rows say which tier labeled them and whether any tier accepted them.
            columns["tier"] = pa.array([r.tier for r in records], type=pa.int64())
            columns["review"] = pa.array([r.accepted is not True for r in records], pa.bool_())
        return columns

    def close(self) -> None:
        """Close the session's connections and stop its event loop (again: nothing)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._labeling.close()

    def __del__(self) -> None:
        # Ray Data drops its reference when the actor shuts down gracefully: release the
        # connections then. Best effort: the interpreter may be tearing down.
        with contextlib.suppress(Exception):
            self.close()


def _column_names(batch: Batch) -> list[str]:
    if isinstance(batch, pa.Table):
        return list(batch.column_names)
    if isinstance(batch, pd.DataFrame):
        return [str(c) for c in batch.columns]
    if isinstance(batch, Mapping):
        return [str(c) for c in batch]
    raise ConfigError(
        f"a batch must be a pyarrow Table, a pandas DataFrame or a dict of arrays, "
        f"not {type(batch).__name__}"
    )


def _column_values(batch: Batch, name: str) -> list[Any]:
    if isinstance(batch, pa.Table):
        return list(batch.column(name).to_pylist())
    if isinstance(batch, pd.DataFrame):
        return list(batch[name].tolist())
    return [v.item() if isinstance(v, np.generic) else v for v in batch[name]]


def _with_columns(batch: Batch, columns: Mapping[str, pa.Array]) -> Batch:
    if isinstance(batch, pa.Table):
        for name, array in columns.items():
            batch = batch.append_column(name, array)
        return batch
    if isinstance(batch, pd.DataFrame):
        index = batch.index
        added = {
            "value": pd.Series(
                columns["value"], index=index, dtype=pd.ArrowDtype(columns["value"].type)
            ),
            "ok": pd.Series(columns["ok"].to_numpy(zero_copy_only=False), index=index),
            "error": pd.Series(columns["error"], index=index, dtype=pd.ArrowDtype(pa.string())),
            "attempts": pd.Series(columns["attempts"].to_numpy(), index=index),
        }
        return batch.assign(**added)
    return {
        **batch,
        "value": columns["value"],
        "ok": columns["ok"].to_numpy(zero_copy_only=False),
        "error": columns["error"],
        "attempts": columns["attempts"].to_numpy(),
    }


def _unsendable(text: Any, column: str) -> Record | None:
    """An error record for a cell that cannot be sent, or None when it can."""
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            # A lone surrogate (from a JSON escape or a lossy decode) cannot go on the wire.
            message = f"the {column!r} value is not valid Unicode (character {exc.start})"
            return Record(None, False, error=InputError(message, field=column))
        return None
    if text is None or (isinstance(text, float) and math.isnan(text)):
        message = f"the {column!r} value is null"
    else:
        message = f"the {column!r} value must be text, not {type(text).__name__}"
    return Record(None, False, error=InputError(message, field=column))


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a reply's JSON escape) cannot be stored as UTF-8: keep it escaped.
        return json.dumps(value, separators=(",", ":"))
    return text
