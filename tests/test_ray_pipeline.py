"""Whole Ray Data pipelines through ``Labeler``, on a local two-CPU Ray instance.

The instance starts once per module (about 5 s); its actors call scripted servers that this
process serves on loopback, two hosts of two slots each, which gauge their load.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray pipelines need the ray extra: pip install '.[ray]'")

import pyarrow as pa  # noqa: E402 - only once Ray (and so pyarrow) is known present
import pyarrow.parquet as pq  # noqa: E402
from conftest import N_CLOSED, Gauge, error_type, fast_retry  # noqa: E402

from extract.integrations.ray import OUTPUT_COLUMNS, Labeler, skip_done  # noqa: E402

ROWS = 300


def text_for(n: int) -> str | None:
    """Row ``n``'s text, with a fault every few rows."""
    if n % 50 == 7:
        return None
    if n % 50 == 13:
        return ""
    kind = {3: "bad", 11: "busy", 17: "cut", 19: "reset", 23: "reject"}.get(n % 25)
    return f"ticket <<{n}:{kind}>>" if kind else f"ticket <<{n}>>"


def expected_error(n: int) -> str | None:
    if n % 50 in (7, 13):
        return "InputError"
    return {3: "ExtractionFailed", 23: "BadRequest"}.get(n % 25)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def write_inputs(folder: Path) -> Any:
    """The ROWS rows as three files — JSONL, CSV and Parquet — read back as one dataset."""
    folder.mkdir()
    parts = [
        [{"id": n, "text": text_for(n)} for n in range(start, start + ROWS // 3)]
        for start in range(0, ROWS, ROWS // 3)
    ]
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in parts[0]))
    csv_rows = "".join(f"{r['id']},{r['text'] or ''}\n" for r in parts[1])
    (folder / "b.csv").write_text("id,text\n" + csv_rows)
    pq.write_table(pa.Table.from_pylist(parts[2]), folder / "c.parquet")
    return (
        ray.data.read_json(str(folder / "a.jsonl"))
        .union(ray.data.read_csv(str(folder / "b.csv")))
        .union(ray.data.read_parquet(str(folder / "c.parquet")))
    )


def labeled(ds: Any, hosts: list[str], batch_format: str, **kwargs: Any) -> Any:
    return ds.map_batches(
        Labeler,
        fn_constructor_kwargs={
            "schema": N_CLOSED,
            "model": "tiny",
            "hosts": hosts,
            "concurrency_per_host": 1,
            "max_attempts": 2,
            "retry": fast_retry(),
            **kwargs,
        },
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=0.25,
        batch_size=25,
        batch_format=batch_format,
    )


@pytest.mark.ray
@pytest.mark.usefixtures("local_ray")
def test_pipeline_one_row_per_input_failures_typed_and_resumable(
    tmp_path: Path, gauges: list[tuple[Gauge, str]]
) -> None:
    hosts = [u for _, u in gauges]
    out = tmp_path / "out"
    labeled(write_inputs(tmp_path / "in"), hosts, "pyarrow").write_parquet(str(out))

    table = pq.read_table(out)
    assert sorted(table.column_names) == sorted(["id", "text", *OUTPUT_COLUMNS])
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(ROWS))
    for n, row in enumerate(rows):
        assert error_type(row["error"]) == expected_error(n), row
        assert row["ok"] is (expected_error(n) is None)
        assert row["value"] == (json.dumps({"n": n}, separators=(",", ":")) if row["ok"] else None)
    assert {r["attempts"] for r in rows if r["ok"]} == {1}
    # Two actors, one request each per host: never more than a host's two slots at once.
    assert all(1 <= g.peak <= 2 for g, _ in gauges)

    # A killed run: one block's file never written, another torn mid-write. The rerun labels
    # the lost rows, and with retry_failed the failed ones again.
    lost = sorted(out.glob("*.parquet"))[0]
    lost_ids = set(pq.read_table(lost).column("id").to_pylist())
    lost.unlink()
    (out / "torn.parquet").write_bytes(b"PAR1 cut short")
    failed_ids = {n for n in range(ROWS) if expected_error(n)}
    with pytest.warns(UserWarning, match="torn by a killed run"):
        rest = skip_done(write_inputs(tmp_path / "again"), str(out), "id", retry_failed=True)
    (out / "torn.parquet").unlink()
    labeled(rest, hosts, "pandas", value_format="struct").write_json(str(out))

    resumed = [json.loads(line) for f in out.glob("*.json") for line in f.read_text().splitlines()]
    assert sorted(r["id"] for r in resumed) == sorted(lost_ids | failed_ids)
    for row in resumed:
        assert row["value"] == ({"n": row["id"]} if row["ok"] else None)
        assert error_type(row["error"]) == expected_error(row["id"])
    kept = [i for f in out.glob("*.parquet") for i in pq.read_table(f).column("id").to_pylist()]
    assert set(kept) | {r["id"] for r in resumed} == set(range(ROWS))
    assert not set(kept) & lost_ids
