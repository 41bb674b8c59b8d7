"""One table of request fields drives the wire type, the call options and the server's checks."""

from __future__ import annotations

from typing import get_type_hints

import pytest
from conftest import Scripted

from extract import CallOptions, Extractor
from extract.core.wire import GIVEN_FIELDS, REQUEST_FIELDS, GenerateRequest


def test_the_table_names_exactly_the_wire_fields() -> None:
    assert [f.name for f in REQUEST_FIELDS] == list(get_type_hints(GenerateRequest))


def test_every_field_a_caller_sets_is_a_call_option() -> None:
    assert set(GIVEN_FIELDS) <= set(get_type_hints(CallOptions))


def test_the_server_checks_every_field_by_its_kind() -> None:
    from extract.server._requests import _GENERATE_FIELDS

    checked = {f.name for f in REQUEST_FIELDS if f.kind not in ("format", "duration", "think")}
    assert set(_GENERATE_FIELDS) == checked


@pytest.mark.parametrize(
    ("field", "value"),
    [("suffix", "end"), ("shift", False), ("logprobs", True), ("top_logprobs", 3)],
)
def test_a_given_field_reaches_the_wire_as_given(
    scripted: type[Scripted] | object, field: str, value: object
) -> None:
    server = scripted(capabilities={"tiny": ("completion", "insert")})  # type: ignore[operator]
    with Extractor("tiny", host=server.url) as ex:
        ex.extract("Ann is 34.", schema={"type": "object"}, **{field: value})  # type: ignore[misc]
    assert server.generates()[0][field] == value
