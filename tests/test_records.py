"""Batch input readers and the resumable output file: every line becomes a document."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract import ConfigError, InputError
from extract.batch.records import (
    Document,
    OutputFile,
    count_lines,
    id_key,
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
    assert [(d.id, d.text, d.fields) for d in docs] == [
        ("a", "one", {"lang": "en"}),
        (2, "two", {}),
        (3, "three", {}),
    ]
    assert all(d.error is None for d in docs)


def test_jsonl_ids_are_line_numbers_counting_blank_lines() -> None:
    docs = jsonl(b'"a"\n\n   \n"b"\r\n"c"')
    assert [(d.id, d.text) for d in docs] == [(1, "a"), (4, "b"), (5, "c")]


def test_jsonl_bad_lines_become_error_documents() -> None:
    data = (
        b'"ok"\n{"id": 1, "text": \n\xff\xfe"x"\n[1, 2]\n'
        b'{"id": "m", "body": "no text"}\n{"text": 5}\n'
    )
    docs = jsonl(data)
    assert [d.id for d in docs] == [1, 2, 3, 4, "m", 6]
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
    assert (doc.id, doc.text, doc.fields) == (9, "hello", {"id": "x"})


def test_empty_inputs_have_no_documents() -> None:
    assert jsonl(b"") == []
    assert jsonl(b"\n\n") == []
    assert csv_docs("") == []


def test_empty_or_missing_id_falls_back_to_position() -> None:
    doc = to_document({"id": "", "text": "t"}, 7, id_field="id", text_field="text")
    assert doc.id == 7
    doc = to_document({"id": None, "text": "t"}, 8, id_field="id", text_field="text")
    assert doc.id == 8


def test_non_record_items_are_errors() -> None:
    doc = to_document(42, 3, id_field="id", text_field="text")
    assert doc.id == 3
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
    assert [(d.id, d.text, d.fields) for d in docs] == [
        ("t1", "Hello, world", {"lang": "en"}),
        (2, "multi\nline", {"lang": "fr"}),
    ]


def test_csv_without_the_text_column_is_refused_at_once() -> None:
    with pytest.raises(InputError, match=r"no 'text' column.*--text-field"):
        read_csv(io.StringIO("id,body\n1,x\n"), id_field="id", text_field="text")


def test_csv_short_row_and_non_utf8_row_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,text\n1,fine\n2\n3,caf\xe9\n4,last\n")
    with open_csv(path) as stream:
        docs = list(read_csv(stream, id_field="id", text_field="text"))
    assert [d.id for d in docs] == ["1", "2", 3, "4"]
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


def line(record_id: object, ok: bool = True) -> bytes:
    return json.dumps({"id": record_id, "ok": ok}).encode() + b"\n"


def test_resume_of_a_missing_file_is_empty_and_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "none.jsonl"
    done, failed = OutputFile(path).resume()
    assert (dict(done), failed) == ({}, 0)
    assert path.read_bytes() == b""


def test_resume_counts_ids_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a") + line(2, ok=False) + line("a"))
    done, failed = OutputFile(path).resume()
    assert dict(done) == {"a": 2, "2": 1}
    assert failed == 1


@pytest.mark.parametrize("tail", [b'{"id": "c", "o', b'{"id": "c"} trailing junk\n', b"\x00\x00"])
def test_resume_cuts_a_torn_last_line(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a") + line("b") + tail)
    done, _ = OutputFile(path).resume()
    assert set(done) == {"a", "b"}
    assert path.read_bytes() == line("a") + line("b")


def test_resume_keeps_a_whole_last_record_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a") + line("b").rstrip(b"\n"))
    done, _ = OutputFile(path).resume()
    assert set(done) == {"a", "b"}
    assert path.read_bytes() == line("a") + line("b")


def test_resume_refuses_garbage_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(line("a") + b"not json\n" + line("b"))
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
