"""``schemas check`` (``Schema.unenforced``) lists what the server's grammar converter leaves out.

For each schema: the lines ``unenforced`` reports are exactly the converter's own report on the
grammar form, and llama.cpp's grammar engine confirms it: a reply breaking only a listed keyword
gets through the grammar, and where nothing is listed, a reply breaking the schema does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extract.core.gbnf import schema_to_gbnf, unenforced_notes
from extract.core.schema import Schema, bundled_schemas
from extract.errors import SchemaError


def obj(name: str, sub: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {name: sub}, "required": [name]}


CASES: list[tuple[dict[str, Any], list[str], str]] = [
    # (schema, what check reports, a reply that breaks the schema)
    (
        obj("tags", {"type": ["array", "null"], "maxItems": 2}),
        # A list type goes to the server as anyOf branches, each with its own keywords.
        ["$.properties.tags.anyOf[0]: maxItems is not enforced by the grammar"],
        '{"tags": [1, 2, 3]}',
    ),
    (
        obj("code", {"type": "string", "pattern": "^[A-Z]+$", "minLength": 3}),
        ["$.properties.code: minLength is not enforced by the grammar"],
        '{"code": "AB"}',
    ),
    (
        obj("day", {"type": "string", "format": "date", "maxLength": 8}),
        ["$.properties.day: maxLength is not enforced by the grammar"],
        '{"day": "2024-01-02"}',
    ),
    (
        obj("x", {"type": "object", "required": ["a"]}),
        ["$.properties.x: required is not enforced by the grammar"],
        '{"x": {}}',
    ),
    (obj("n", {"type": "integer", "minimum": 1, "maximum": 5}), [], '{"n": 6}'),
    (obj("s", {"type": ["string", "null"], "maxLength": 2}), [], '{"s": "abc"}'),
    (obj("s", {"type": "string"}), [], '{"s": "a\x01"}'),
]


@pytest.mark.parametrize(("schema", "reported", "breaking"), CASES)
def test_check_reports_what_the_converter_leaves_out(
    schema: dict[str, Any], reported: list[str], breaking: str
) -> None:
    loaded = Schema.load(schema)
    assert loaded.grammar is not None
    assert [n for n in loaded.unenforced() if "grammar" in n] == reported
    assert unenforced_notes(loaded.grammar) == reported
    pytest.importorskip("llama_cpp")
    from gbnf_engine import engine

    assert engine().accepts(schema_to_gbnf(loaded.grammar), breaking) == bool(reported)


def _corpus() -> list[tuple[str, Any]]:
    sources: list[tuple[str, Any]] = list(bundled_schemas().items())
    data = Path(__file__).parent / "data"
    sources += [(path.name, path.read_text()) for path in sorted(data.glob("*.json"))]
    for path in sorted((data / "json-schema-test-suite").rglob("*.json")):
        groups = json.loads(path.read_text())
        if isinstance(groups, list):
            sources += [(f"{path.name}#{i}", g["schema"]) for i, g in enumerate(groups)]
    return sources


def test_check_includes_the_converter_report_for_every_corpus_schema() -> None:
    for name, source in _corpus():
        try:
            loaded = Schema.load(source)
        except SchemaError:  # refusals are test_schema's subject; here only loaded schemas count
            continue
        if loaded.grammar is None:
            continue
        notes = unenforced_notes(loaded.grammar)
        assert set(notes) <= set(loaded.unenforced()), name
