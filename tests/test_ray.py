"""The Ray Data integration: ``Labeler`` on every batch kind, then whole pipelines on a local Ray.

Replies come from each document's text (``<<n>>`` → ``{"n": n}``, ``<<n:kind>>`` → a fault; see
``conftest.Responder``), so concurrent actors stay deterministic. The pipeline tests start a
two-CPU local Ray instance once per module (about 5 s) and run against scripted servers that
this process serves on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import tenacity

ray = pytest.importorskip("ray")

import numpy as np  # noqa: E402 - only once Ray (and so pandas and pyarrow) is known present
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from conftest import Responder, Scripted  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from extract import ConfigError, ModelNotFound, TransportError  # noqa: E402
from extract.integrations._arrow import arrow_type  # noqa: E402
from extract.integrations.ray import OUTPUT_COLUMNS, Labeler, skip_done  # noqa: E402
from extract.server import Reply, ScriptedEngine, serve  # noqa: E402
from extract.server._engine import Final, Job  # noqa: E402

N_SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
    "additionalProperties": False,
}


class Item(BaseModel):
    name: str
    qty: int | None = None


class Order(BaseModel):
    customer: str
    items: list[Item]
    rush: bool


def fast_retry(tries: int = 3) -> tenacity.AsyncRetrying:
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(tries),
        wait=tenacity.wait_fixed(0.01),
        retry=tenacity.retry_if_exception_type(TransportError),
        reraise=True,
    )


@pytest.fixture
def server(scripted: Callable[..., Scripted]) -> Scripted:
    return scripted(slots=4, responder=Responder())


@pytest.fixture
def labeler(server: Scripted) -> Iterator[Labeler]:
    lab = Labeler(
        schema=N_SCHEMA,
        model="tiny",
        hosts=[server.url],
        concurrency_per_host=4,
        max_attempts=2,
        retry=fast_retry(),
    )
    yield lab
    lab.close()


def error_type(text: Any) -> str | None:
    """The error's class name, or None for a null cell (None, or pandas' NA)."""
    return str(json.loads(text)["type"]) if isinstance(text, str) else None


# --- Labeler in this process -------------------------------------------------------------


def test_pandas_batch_keeps_columns_and_index_and_adds_four(labeler: Labeler) -> None:
    texts = ["<<1>>", "<<2:bad>>", None, "  ", "<<5>> \udc80", 6]
    batch = pd.DataFrame({"id": list("abcdef"), "text": texts}, index=range(10, 16))
    out = labeler(batch)
    assert list(out.columns) == ["id", "text", *OUTPUT_COLUMNS]
    assert list(out.index) == list(range(10, 16))
    assert out["ok"].tolist() == [True, False, False, False, False, False]
    assert json.loads(out.loc[10, "value"]) == {"n": 1}
    assert out["value"].isna().tolist() == [False, True, True, True, True, True]
    errors = [error_type(e) for e in out["error"].tolist()]
    assert errors == [None, "ExtractionFailed", *["InputError"] * 4]
    assert json.loads(out.loc[11, "error"])["last_error"]["type"] == "InvalidJSON"
    assert "not valid Unicode" in out.loc[14, "error"]
    assert out["attempts"].tolist() == [1, 2, 0, 0, 0, 0]


def test_arrow_and_dict_batches_give_the_same_columns(labeler: Labeler) -> None:
    texts = ["<<3>>", "<<4:busy>>", "<<5:reject>>"]
    table = labeler(pa.table({"text": texts, "k": [1, 2, 3]}))
    assert table.column_names == ["text", "k", *OUTPUT_COLUMNS]
    assert table.schema.field("value").type == pa.string()
    assert table.schema.field("attempts").type == pa.int64()
    as_dict = labeler({"text": np.array(texts), "k": np.array([1, 2, 3])})
    assert isinstance(as_dict["ok"], np.ndarray)
    for name in OUTPUT_COLUMNS:
        assert pa.array(as_dict[name]).to_pylist() == table.column(name).to_pylist()
    assert table.column("ok").to_pylist() == [True, True, False]
    assert error_type(table.column("error")[2].as_py()) == "BadRequest"


def test_struct_values_are_typed_from_a_pydantic_schema(
    scripted: Callable[..., Scripted],
) -> None:
    reply = {"customer": "Ann", "items": [{"name": "pen", "qty": None}], "rush": True}
    server = scripted(responder=lambda body: Reply.text(json.dumps(reply)))
    lab = Labeler(schema=Order, model="tiny", hosts=server.url, value_format="struct")
    try:
        out = lab(pa.table({"text": ["order one", ""]}))
    finally:
        lab.close()
    assert out.schema.field("value").type == arrow_type(Order.model_json_schema(), from_model=True)
    assert out.column("value").to_pylist() == [reply, None]


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, pa.string()),
        ({"enum": [1, 2.5]}, pa.float64()),
        ({"type": ["integer", "null"]}, pa.int64()),
        ({"type": "array", "items": {"type": "boolean"}}, pa.list_(pa.bool_())),
        (
            {
                "$defs": {
                    "P": {
                        "type": "object",
                        "properties": {"x": {"type": "number"}},
                        "additionalProperties": False,
                    }
                },
                "type": "object",
                "properties": {"p": {"$ref": "#/$defs/P"}, "c": {"const": "k"}},
                "additionalProperties": False,
            },
            pa.struct([("p", pa.struct([("x", pa.float64())])), ("c", pa.string())]),
        ),
    ],
)
def test_arrow_types(schema: dict[str, Any], expected: pa.DataType) -> None:
    assert arrow_type(schema) == expected


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, "at $:"),
        ({"type": ["string", "integer"]}, "at $:"),
        (
            {
                "type": "object",
                "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                "additionalProperties": False,
            },
            "at $.properties.a:",
        ),
        (
            {
                "$defs": {"T": {"type": "array", "items": {"$ref": "#/$defs/T"}}},
                "$ref": "#/$defs/T",
            },
            "recursive",
        ),
    ],
)
def test_struct_needs_one_arrow_type(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError, match="value_format='json'") as caught:
        Labeler(schema=schema, model="tiny", value_format="struct")
    assert where in str(caught.value)


S_SCHEMA = {
    "type": "object",
    "properties": {"s": {"type": "string"}},
    "required": ["s"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("schema", "reply"),
    [(N_SCHEMA, '{"n": 1180591620717411303424}'), (S_SCHEMA, '{"s": "\\udc80"}')],
    ids=["int-past-64-bits", "lone-surrogate"],
)
def test_a_value_that_does_not_fit_its_column_is_an_error_row(
    scripted: Callable[..., Scripted], schema: dict[str, Any], reply: str
) -> None:
    server = scripted(responder=lambda body: Reply.text(reply))
    lab = Labeler(schema=schema, model="tiny", hosts=server.url, value_format="struct")
    try:
        out = lab(pa.table({"text": ["huge"]}))
    finally:
        lab.close()
    assert out.column("ok").to_pylist() == [False]
    assert error_type(out.column("error")[0].as_py()) == "OutputError"


def test_json_text_keeps_a_lone_surrogate_escaped(scripted: Callable[..., Scripted]) -> None:
    server = scripted(responder=lambda body: Reply.text('{"s": "a\\udc80"}'))
    lab = Labeler(schema=S_SCHEMA, model="tiny", hosts=server.url)
    try:
        out = lab(pa.table({"text": ["odd"]}))
    finally:
        lab.close()
    assert out.column("value").to_pylist() == ['{"s":"a\\udc80"}']


def test_job_level_mistakes_raise(labeler: Labeler, server: Scripted) -> None:
    with pytest.raises(ConfigError, match="no 'text' column"):
        labeler(pa.table({"body": ["x"]}))
    with pytest.raises(ConfigError, match="already has 'ok'"):
        labeler(pa.table({"text": ["x"], "ok": [True]}))
    with pytest.raises(ConfigError, match="concurrency_per_host"):
        Labeler(schema=N_SCHEMA, model="tiny", concurrency_per_host=0)
    with pytest.raises(ConfigError, match="value_format"):
        Labeler(schema=N_SCHEMA, model="tiny", value_format="yaml")  # type: ignore[arg-type]
    missing = Labeler(schema=N_SCHEMA, model="absent", hosts=server.url)
    try:
        with pytest.raises(ModelNotFound):
            missing(pa.table({"text": ["<<1>>"]}))
    finally:
        missing.close()
    labeler.close()
    with pytest.raises(ConfigError, match="closed"):
        labeler(pa.table({"text": ["<<1>>"]}))


def test_one_engine_serves_every_batch_and_an_empty_batch(
    labeler: Labeler, server: Scripted
) -> None:
    def shows() -> int:
        return sum(r.path == "/api/show" for r in server.engine.requests)

    for start in (0, 10, 20):
        out = labeler(pa.table({"text": [f"<<{n}>>" for n in range(start, start + 10)]}))
        assert out.column("value").to_pylist() == [f'{{"n":{n}}}' for n in range(start, start + 10)]
        if start == 0:
            first = shows()
    # The engine and its extractors outlive a batch: later batches ask the server nothing new.
    assert shows() == first
    empty = labeler(pa.table({"text": pa.array([], pa.string())}))
    assert empty.num_rows == 0
    assert empty.schema.field("error").type == pa.string()


class Gauge(ScriptedEngine):
    """Records the most generate requests it ever held at once.

    A request counts from its arrival until just before its done line is written: within the
    time the client itself counts it in flight, so a client within its bound never shows more.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.now = self.peak = 0
        self._gauge = threading.Lock()

    def generate(self, job: Job, stop: threading.Event) -> Generator[Any, None, None]:
        with self._gauge:
            self.now += 1
            self.peak = max(self.peak, self.now)
        counted = True
        try:
            for event in super().generate(job, stop):
                if isinstance(event, Final):
                    counted = self._leave()
                yield event
        finally:
            if counted:
                self._leave()

    def _leave(self) -> bool:
        with self._gauge:
            self.now -= 1
        return False


@pytest.fixture
def gauges() -> Iterator[list[tuple[Gauge, str]]]:
    """Two hosts that each run two requests at once (a third waits for a slot)."""
    engines = [
        Gauge(models=("tiny",), slots=2, latency=0.005, responder=Responder()) for _ in range(2)
    ]
    servers = [serve(e) for e in engines]
    try:
        yield [(e, s.url) for e, s in zip(engines, servers, strict=True)]
    finally:
        for s in servers:
            s.stop()


def test_one_actor_spreads_over_hosts_within_their_capacity(
    gauges: list[tuple[Gauge, str]],
) -> None:
    lab = Labeler(
        schema=N_SCHEMA, model="tiny", hosts=[u for _, u in gauges], concurrency_per_host=2
    )
    try:
        out = lab(pa.table({"text": [f"<<{n}>>" for n in range(80)]}))
    finally:
        lab.close()
    assert all(out.column("ok").to_pylist())
    assert all(1 <= g.peak <= 2 for g, _ in gauges)
    assert all(len(g.requests) > 10 for g, _ in gauges)


def test_import_extract_does_not_import_ray() -> None:
    code = (
        "import sys, extract, extract.batch, extract.integrations; "
        "print(sorted(m for m in ('ray', 'pyarrow', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- a pipeline on a local Ray instance -------------------------------------------------

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
            "schema": N_SCHEMA,
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
