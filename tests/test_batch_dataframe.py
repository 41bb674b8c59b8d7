"""``label_dataframe``: a DataFrame's text column in, value/ok/error columns out."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from conftest import N_SCHEMA, N, Responder, Scripted

from extract import ModelNotFound
from extract.integrations.pandas import label_dataframe


def test_adds_value_ok_and_error_columns(server: Scripted) -> None:
    df = pd.DataFrame(
        {"ticket": ["<<1>>", "<<2:bad>>", "  ", None], "lang": ["en", "fr", "de", "it"]},
        index=[10, 11, 12, 13],
    )
    out = label_dataframe(df, "ticket", N_SCHEMA, model="tiny", host=server.url, max_attempts=1)
    assert list(out.columns) == ["ticket", "lang", "value", "ok", "error"]
    assert list(out.index) == [10, 11, 12, 13]
    assert out["value"].tolist() == [{"n": 1}, None, None, None]
    assert out["ok"].tolist() == [True, False, False, False]
    errors = out["error"].tolist()
    assert errors[0] is None
    assert errors[1].startswith("ExtractionFailed: ")
    assert errors[2] == "InputError: the document is empty"
    assert errors[3].startswith("InputError: ")
    assert "value" not in df.columns  # the input frame is left alone


def test_pydantic_values_and_several_hosts(scripted: Callable[..., Scripted]) -> None:
    a = scripted(responder=Responder())
    b = scripted(responder=Responder())
    df = pd.DataFrame({"text": [f"<<{n}>>" for n in range(8)]})
    out = label_dataframe(df, "text", N, model="tiny", host=[a.url, b.url])
    assert out["value"].tolist() == [N(n=n) for n in range(8)]
    assert out["ok"].all()


def test_problems_with_the_call_raise(server: Scripted) -> None:
    df = pd.DataFrame({"text": ["<<1>>"]})
    with pytest.raises(KeyError, match="no column 'body'"):
        label_dataframe(df, "body", N_SCHEMA, model="tiny", host=server.url)
    with pytest.raises(TypeError, match="DataFrame"):
        label_dataframe([1], "text", N_SCHEMA, model="tiny", host=server.url)
    with pytest.raises(ModelNotFound):
        label_dataframe(df, "text", N_SCHEMA, model="absent", host=server.url)
