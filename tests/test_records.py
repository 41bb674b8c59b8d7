"""Batch input readers and the resumable output file: every line becomes a document."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract import ConfigError, InputError
from extract.batch.ids import id_key
from extract.batch.records import (
    Document,
    OutputFile,
    count_lines,
    open_csv,
    read_csv,
    read_jsonl,
    to_document,
)


def jsonl(data: bytes) -> list[Document]:
    return list(read_jsonl(io.BytesIO(data), id_field="id", text_field="text"))


def csv_docs(text: str, **fields: str) -> list[Document]:
    args = {"id_field": "id", "text_field": "text", **fields}
    return list(read_csv(io.StringIO(text, newline=""), **args))


def test_jsonl_objects_and_strings() -> None:
    docs = jsonl(b'{"id": "a", "text": "one", "lang": "en"}\n"two"\n{"text": "three"}\n')
    assert [(d.id, d.line, d.text, d.fields) for d in docs] == [
        ("a", 1, "one", {"lang": "en"}),
        (None, 2, "two", {}),
        (None, 3, "three", {}),
    ]
    assert all(d.error is None for d in docs)


def test_jsonl_lines_are_line_numbers_counting_blank_lines() -> None:
    docs = jsonl(b'"a"\n\n   \n"b"\r\n"c"')
    assert [(d.id, d.line, d.text) for d in docs] == [
        (None, 1, "a"),
        (None, 4, "b"),
        (None, 5, "c"),
    ]


def test_jsonl_bad_lines_become_error_documents() -> None:
    data = (
        b'"ok"\n{"id": 1, "text": \n\xff\xfe"x"\n[1, 2]\n'
        b'{"id": "m", "body": "no text"}\n{"text": 5}\n'
    )
    docs = jsonl(data)
    # A line that is not a record has no id: its line number could be another record's id.
    assert [d.id for d in docs] == [None, None, None, None, "m", None]
    assert [d.line for d in docs] == [1, 2, 3, 4, 5, 6]
    assert docs[0].error is None
    errors = [d.error for d in docs[1:]]
    assert all(isinstance(e, InputError) for e in errors)
    messages = [e.message for e in errors if e is not None]
    assert "line 2: not valid JSON" in messages[0]
    assert "line 3: not UTF-8" in messages[1]
    assert "line 4: expected an object or a string" in messages[2]
    assert "no 'text' field (fields: id, body)" in messages[3]
    assert "'text' must be text, not int" in messages[4]
    assert errors[3] is not None
    assert errors[3].field == "text"


def test_jsonl_leading_bom_and_custom_fields() -> None:
    data = b'\xef\xbb\xbf{"key": 9, "body": "hello", "id": "x"}\n'
    [doc] = list(read_jsonl(io.BytesIO(data), id_field="key", text_field="body"))
    assert (doc.id, doc.line, doc.text, doc.fields) == (9, 1, "hello", {"id": "x"})


def test_empty_inputs_have_no_documents() -> None:
    assert jsonl(b"") == []
    assert jsonl(b"\n\n") == []
    assert csv_docs("") == []


@pytest.mark.parametrize(
    "item", [{"id": "", "text": "t"}, {"id": None, "text": "t"}, {"text": "t"}]
)
def test_an_empty_or_missing_id_is_no_id(item: dict[str, object]) -> None:
    doc = to_document(item, 7, id_field="id", text_field="text")
    assert (doc.id, doc.line, doc.text) == (None, 7, "t")


def test_non_record_items_are_errors() -> None:
    doc = to_document(42, 3, id_field="id", text_field="text")
    assert (doc.id, doc.line) == (None, 3)
    assert isinstance(doc.error, InputError)


def test_id_keys_compare_as_text() -> None:
    assert id_key(7) == id_key("7") == "7"
    assert id_key(True) == "true"
    assert id_key({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


@given(st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=20)), max_size=30))
def test_every_non_blank_line_is_one_document(lines: list[str | bytes]) -> None:
    raw = [ln.encode("utf-8", "surrogatepass") if isinstance(ln, str) else ln for ln in lines]
    raw = [ln.replace(b"\n", b" ") for ln in raw]
    non_blank = [
        ln for n, ln in enumerate(raw) if ln.removeprefix(b"\xef\xbb\xbf" * (n == 0)).strip()
    ]
    docs = jsonl(b"\n".join(raw))
    assert len(docs) == len(non_blank)
    assert all((d.text is None) != (d.error is None) for d in docs)


def test_csv_rows_with_ids_fields_and_row_numbers() -> None:
    docs = csv_docs('id,text,lang\nt1,"Hello, world",en\n,"multi\nline",fr\n')
    assert [(d.id, d.line, d.text, d.fields) for d in docs] == [
        ("t1", 1, "Hello, world", {"lang": "en"}),
        (None, 2, "multi\nline", {"lang": "fr"}),
    ]


def test_csv_without_the_text_column_is_refused_at_once() -> None:
    with pytest.raises(InputError, match=r"no 'text' column.*--text-field"):
        read_csv(io.StringIO("id,body\n1,x\n"), id_field="id", text_field="text")


def test_csv_short_row_and_non_utf8_row_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,text\n1,fine\n2\n3,caf\xe9\n4,last\n")
    with open_csv(path) as stream:
        docs = list(read_csv(stream, id_field="id", text_field="text"))
    assert [(d.id, d.line) for d in docs] == [("1", 1), ("2", 2), (None, 3), ("4", 4)]
    assert [d.error is None for d in docs] == [True, False, False, True]
    assert docs[2].error is not None
    assert "row 3: not UTF-8" in docs[2].error.message


def test_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a\nb\nc")
    assert count_lines(path) == 3
    path.write_bytes(b"a\nb\n")
    assert count_lines(path) == 2
    path.write_bytes(b"")
    assert count_lines(path) == 0


def line(record_id: object, ok: bool = True, number: object = None) -> bytes:
    """An output line; without ``number``, one written before records had lines."""
    placed = {} if number is None else {"line": number}
    return json.dumps({"id": record_id, **placed, "ok": ok}).encode() + b"\n"


def test_resume_of_a_missing_file_is_empty_and_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "none.jsonl"
    written = OutputFile(path).resume()
    assert (written.records, written.failed, len(written.entries)) == (0, 0, 0)
    assert path.read_bytes() == b""


def test_resume_counts_records_lines_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a", number=1) + line(None, ok=False, number=3) + line("a", number=4))
    written = OutputFile(path).resume()
    assert (written.records, written.failed, len(written.entries)) == (3, 1, 3)
    assert not written.legacy


def test_resume_counts_records_without_lines_by_id(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a") + line(2, ok=False) + line("a") + line("b", number=4))
    written = OutputFile(path).resume()
    assert (written.records, written.failed, len(written.entries)) == (4, 1, 1)
    assert sorted(written.legacy.values()) == [1, 2]


@pytest.mark.parametrize("bad", [0, -1, "2", True, 1.5, 2**40])
def test_a_record_with_a_bad_line_is_not_a_record(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a", number=1) + line("b", number=bad) + line("c", number=3))
    with pytest.raises(ConfigError, match="line 2 is not an output record"):
        OutputFile(path).resume()


def test_retry_failed_drops_the_failed_records(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    ok_a, ok_c = line("a", number=1), line("c", number=3)
    path.write_bytes(ok_a + line(None, ok=False, number=2) + ok_c + line("a", ok=False))
    written = OutputFile(path).resume(retry_failed=True)
    assert (written.records, written.failed) == (2, 0)
    assert path.read_bytes() == ok_a + ok_c
    assert not list(tmp_path.glob(".out.jsonl*"))


@pytest.mark.parametrize("tail", [b'{"id": "c", "o', b'{"id": "c"} trailing junk\n', b"\x00\x00"])
def test_resume_cuts_a_torn_last_line(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a", number=1) + line("b", number=2) + tail)
    assert OutputFile(path).resume().records == 2
    assert path.read_bytes() == line("a", number=1) + line("b", number=2)


def test_resume_keeps_a_whole_last_record_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a", number=1) + line("b", number=2).rstrip(b"\n"))
    assert OutputFile(path).resume().records == 2
    assert path.read_bytes() == line("a", number=1) + line("b", number=2)


def test_resume_refuses_garbage_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a", number=1) + b"not json\n" + line("b", number=3))
    with pytest.raises(ConfigError, match="line 2 is not an output record"):
        OutputFile(path).resume()


def test_write_appends_flushed_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    out = OutputFile(path)
    out.resume()
    out.write({"id": 1, "ok": True, "value": {"name": "Zoë"}})
    # Flushed: readable before close.
    assert json.loads(path.read_text("utf-8")) == {"id": 1, "ok": True, "value": {"name": "Zoë"}}
    out.write({"id": 2, "ok": True, "value": "\ud800"})
    out.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["value"] == "\ud800"
