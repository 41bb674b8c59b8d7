"""Hostile documents: inputs that try to break a batch or the ``label`` command.

Huge, empty, binary and non-UTF-8 documents get clear errors (or are labelled) and never stop
a batch or the command; a reply with ``NaN`` never reaches an output file as non-standard JSON.
Hostile servers are in ``test_hostile_server``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import N_SCHEMA, Scripted

from extract import (
    ConnectError,
    Extractor,
    InputError,
    Labeling,
    RequestRejected,
)
from extract.cli import main
from extract.server import Reply

MiB = 2**20


def n_replies(scripted: Callable[..., Scripted]) -> Scripted:
    return scripted(slots=4, responder=lambda body: Reply.text('{"n": 1}'))


def test_bad_documents_get_clear_errors_and_never_stop_a_batch(
    scripted: Callable[..., Scripted],
) -> None:
    server = n_replies(scripted)
    huge = "lorem ipsum " * (MiB // 6)  # 2 MiB of text
    inputs: list[Any] = [
        {"id": "empty", "text": ""},
        {"id": "blank", "text": " \n\t "},
        b"\xff\xfe\x00binary",
        {"id": "bytes", "text": b"\x89PNG\r\n"},
        {"id": "number", "text": 42},
        None,
        {"id": "controls", "text": "a\x00b\x1b[31m\u202eevil\ufeff"},
        {"id": "huge", "text": huge},
        {"id": "fine", "text": "a document"},
    ]
    with Labeling(N_SCHEMA, model="tiny", hosts=server.url, retry=1, concurrency=2) as session:
        records = list(session.results(inputs))
    outcome = {r.id or r.line: (r.ok, type(r.error).__name__) for r in records}
    assert len(records) == len(inputs)
    assert outcome == {
        "empty": (False, "InputError"),
        "blank": (False, "InputError"),
        3: (False, "InputError"),
        "bytes": (False, "InputError"),
        "number": (False, "InputError"),
        6: (False, "InputError"),
        "controls": (True, "NoneType"),
        # 350k words: more than any context, so the server refuses it rather than cut it.
        "huge": (False, "DocumentTooLong"),
        "fine": (True, "NoneType"),
    }
    for record in records:
        if record.error is not None:
            assert record.error.message  # says what is wrong


def label_file(server: Scripted, source: Path, tmp_path: Path) -> tuple[Any, Path]:
    """``extract label`` of ``source`` with N_SCHEMA: the CLI result and the output path."""
    out = tmp_path / "out.jsonl"
    schema = tmp_path / "n.json"
    schema.write_text(json.dumps(N_SCHEMA))
    args = ["label", str(source), "-o", str(out), "-s", str(schema)]
    return CliRunner().invoke(main, [*args, "-m", "tiny", "--host", server.url]), out


def test_bad_lines_in_a_file_get_clear_errors_and_never_stop_the_command(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = n_replies(scripted)
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": "empty", "text": ""}\n'
        b"\xff\xfe\x00\x01 binary garbage\n"
        b'{"id": "latin1", "text": "caf\xe9"}\n'
        b'{"id": "nul", "text": "a\\u0000b"}\n'
        b"\x00\x00\x00\n"
        b'{"id": "huge", "text": "' + b"x" * (4 * MiB) + b'"}\n'
        b'{"id": "fine", "text": "a document"}\n'
    )
    result, out = label_file(server, source, tmp_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["ok"]) for r in lines] == [
        ("empty", False), (None, False), (None, False), ("nul", True), (None, False),
        ("huge", True), ("fine", True),
    ]  # fmt: skip
    assert [r["line"] for r in lines] == [1, 2, 3, 4, 5, 6, 7]
    for line in lines:
        assert line["ok"] or line["error"]["type"] == "InputError"


LONE_SURROGATE = "caf\udce9 au lait"


def test_a_document_with_a_lone_surrogate_gets_a_clear_error(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = n_replies(scripted)
    with Extractor("tiny", host=server.url, retry=1) as extractor, pytest.raises(InputError):
        extractor.extract(LONE_SURROGATE, N_SCHEMA)
    with Labeling(N_SCHEMA, model="tiny", hosts=server.url, retry=1) as session:
        records = list(session.results([LONE_SURROGATE, "fine"]))
    assert [(r.ok, type(r.error).__name__) for r in records] == [
        (False, "InputError"),
        (True, "NoneType"),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "s", "text": "caf\\udce9"}\n{"id": "fine", "text": "ok"}\n')
    result, out = label_file(server, source, tmp_path)
    assert result.exit_code == 1, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["s", "fine"]


def test_non_utf8_bytes_and_empty_text_are_input_errors(
    scripted: Callable[..., Scripted],
) -> None:
    server = n_replies(scripted)
    with Extractor("tiny", host=server.url) as extractor:
        for text in (b"caf\xe9", "", "   ", 42):
            with pytest.raises(InputError):
                extractor.extract(text, N_SCHEMA)  # type: ignore[arg-type]
        assert extractor.extract("caf\xe9".encode(), N_SCHEMA).value == {"n": 1}  # type: ignore[call-overload]
    assert len(server.generates()) == 1


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def test_a_reply_with_nan_never_reaches_the_output_as_invalid_json(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    server = scripted(responder=lambda body: Reply.text('{"x": NaN, "y": Infinity}'))
    schema = tmp_path / "xy.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"x": {"type": "number"}}}))
    source = tmp_path / "in.jsonl"
    source.write_text('"a document"\n')
    out = tmp_path / "out.jsonl"
    args = ["label", str(source), "-o", str(out), "-s", str(schema)]
    CliRunner().invoke(main, [*args, "-m", "tiny", "--host", server.url])
    [line] = out.read_text().splitlines()
    json.loads(line, parse_constant=reject_constant)


@pytest.mark.anyio
async def test_hostile_documents_in_an_async_batch_never_end_it(
    scripted: Callable[..., Scripted],
) -> None:
    server = n_replies(scripted)

    async def inputs() -> Any:
        for item in ("", b"\xff", {"text": None}, {"id": 1}, "fine"):
            await asyncio.sleep(0)
            yield item

    async with Labeling(N_SCHEMA, model="tiny", hosts=server.url, retry=1) as session:
        records = [r async for r in session.aresults(inputs())]
    assert [r.ok for r in records] == [False, False, False, False, True]
    assert all(isinstance(r.error, InputError) for r in records[:4])
    assert not any(isinstance(r.error, RequestRejected | ConnectError) for r in records)
