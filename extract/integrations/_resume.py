"""Resuming a Ray labeling job: drop the input rows whose ids a previous run already wrote.

Outputs are read on the driver, file by file, so that one file torn by a killed run (Ray writes
files in place, not by rename) costs only its own rows instead of the whole resume.
"""

from __future__ import annotations

import functools
import os
import warnings

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq
import ray.data

from ..errors import ConfigError

__all__ = ["skip_done"]


def skip_done(
    ds: ray.data.Dataset,
    done_path: str,
    id_column: str,
    *,
    retry_failed: bool = False,
    filesystem: pafs.FileSystem | None = None,
) -> ray.data.Dataset:
    """``ds`` without the rows whose ``id_column`` value is already in the outputs under
    ``done_path`` (Parquet or JSON files written by ``write_parquet``/``write_json``).

    Ids compare as text, as in ``extract label``. With ``retry_failed``, rows whose earlier
    output failed are labeled again (the old failed row stays in the output: keep the ok row of
    an id when reading). A file that cannot be read — torn by a killed run — is skipped with a
    warning, and its rows are labeled again; delete it. A missing ``done_path`` skips nothing.

    Raises ConfigError when a readable output file lacks ``id_column``.
    """
    done = _done_ids(done_path, id_column, retry_failed=retry_failed, filesystem=filesystem)
    if len(done) == 0:
        return ds
    return ds.map_batches(
        functools.partial(_drop_done, column=id_column, done=done),
        batch_format="pyarrow",
        zero_copy_batch=True,
    )


def _drop_done(batch: pa.Table, *, column: str, done: pa.Array) -> pa.Table:
    keys = pc.cast(batch.column(column), pa.string())
    return batch.filter(pc.invert(pc.fill_null(pc.is_in(keys, value_set=done), False)))


def _done_ids(
    path: str, column: str, *, retry_failed: bool, filesystem: pafs.FileSystem | None
) -> pa.Array:
    fs, root = (filesystem, path) if filesystem else pafs.FileSystem.from_uri(_as_uri(path))
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return pa.array([], type=pa.string())
    selector = pafs.FileSelector(root, recursive=True)
    files = sorted(
        info.path
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File and info.path.endswith((".parquet", ".json", ".jsonl"))
    )
    ids: list[pa.Array] = []
    torn: list[str] = []
    for name in files:
        try:
            table = _read_output(fs, name, column)
        except (pa.ArrowInvalid, OSError):
            torn.append(name)
            continue
        if column not in table.column_names:
            raise ConfigError(
                f"{name} has no {column!r} column; give the id_column it was written with"
            )
        keys = table.column(column)
        if retry_failed and "ok" in table.column_names:
            keys = keys.filter(pc.fill_null(table.column("ok"), False))
        ids.append(pc.cast(keys, pa.string()).combine_chunks())
    if torn:
        warnings.warn(
            f"skipped {len(torn)} unreadable output file(s), torn by a killed run; their rows "
            f"are labeled again. Delete them: {', '.join(torn)}",
            stacklevel=3,
        )
    if not ids:
        return pa.array([], type=pa.string())
    return pc.unique(pa.concat_arrays(ids).drop_null())


def _read_output(fs: pafs.FileSystem, name: str, column: str) -> pa.Table:
    if name.endswith(".parquet"):
        schema = pq.read_schema(name, filesystem=fs)
        wanted = [c for c in (column, "ok") if c in schema.names]
        return pq.read_table(name, columns=wanted, filesystem=fs)
    with fs.open_input_file(name) as f:
        return pajson.read_json(f)


def _as_uri(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)
