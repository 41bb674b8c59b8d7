"""The Ray Data integration: ``Labeler`` on every batch kind, in this process.

Replies come from each document's text (``<<n>>`` → ``{"n": n}``, ``<<n:kind>>`` → a fault; see
``conftest.Responder``), so the results stay deterministic. ``test_ray_pipeline`` runs whole
pipelines on a local Ray.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("ray", reason="the Ray integration needs the ray extra: pip install '.[ray]'")

import numpy as np
import pandas as pd
import pyarrow as pa
from conftest import N_CLOSED, Gauge, Scripted, error_type, fast_retry
from pydantic import BaseModel

from extract import ConfigError, ModelNotFound
from extract.integrations._arrow import arrow_type
from extract.integrations.ray import OUTPUT_COLUMNS, Labeler
from extract.server import Reply


class Item(BaseModel):
    name: str
    qty: int | None = None


class Order(BaseModel):
    customer: str
    items: list[Item]
    rush: bool


@pytest.fixture
def labeler(server: Scripted) -> Iterator[Labeler]:
    lab = Labeler(
        schema=N_CLOSED,
        model="tiny",
        hosts=[server.url],
        concurrency_per_host=4,
        max_attempts=2,
        retry=fast_retry(),
    )
    yield lab
    lab.close()


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
    [(N_CLOSED, '{"n": 1180591620717411303424}'), (S_SCHEMA, '{"s": "\\udc80"}')],
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
        Labeler(schema=N_CLOSED, model="tiny", concurrency_per_host=0)
    with pytest.raises(ConfigError, match="value_format"):
        Labeler(schema=N_CLOSED, model="tiny", value_format="yaml")  # type: ignore[arg-type]
    missing = Labeler(schema=N_CLOSED, model="absent", hosts=server.url)
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


def test_one_actor_spreads_over_hosts_within_their_capacity(
    gauges: list[tuple[Gauge, str]],
) -> None:
    lab = Labeler(
        schema=N_CLOSED, model="tiny", hosts=[u for _, u in gauges], concurrency_per_host=2
    )
    try:
        out = lab(pa.table({"text": [f"<<{n}>>" for n in range(80)]}))
    finally:
        lab.close()
    assert all(out.column("ok").to_pylist())
    assert all(1 <= g.peak <= 2 for g, _ in gauges)
    assert all(len(g.requests) > 10 for g, _ in gauges)
