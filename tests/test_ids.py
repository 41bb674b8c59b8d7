"""Ids and lines: every output record traces to its input line, duplicate ids are caught, and a
rerun keys on the line (``extract.batch.ids``, ``extract label``)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Responder, Scripted
from hypothesis import given
from hypothesis import strategies as st

from extract.batch.ids import Pending, SeenIds, Written, id_digest, id_key
from extract.batch.records import Document, Record, read_jsonl
from extract.cli import main
from extract.errors import ConfigError, DuplicateId, InputError
from extract.server import Reply

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
# The input of the report: a malformed line 2, a record whose id is 2, and id "a" twice.
REPORTED = (
    b'{"id":"a","text":"<<1>>"}\nnot json\n{"id":2,"text":"<<2>>"}\n{"id":"a","text":"<<4>>"}\n'
)


def docs_of(data: bytes) -> list[Document]:
    return list(read_jsonl(io.BytesIO(data), id_field="id", text_field="text"))


def written(*records: tuple[Any, int | None, bool]) -> Written:
    out = Written()
    for record in records:
        out.add(*record)
    return out


def test_id_keys_compare_as_text() -> None:
    assert id_key(7) == id_key("7") == "7"
    assert id_key(True) == "true"
    assert id_key({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_no_id_has_digest_zero_and_every_id_another() -> None:
    assert id_digest(None) == 0
    assert id_digest(7) == id_digest("7") != id_digest("07")
    assert 0 not in {id_digest(v) for v in ["", "null", 0, False, [], {}, "\ud800"]}


@given(st.lists(st.integers(0, 2**64 - 1), max_size=3000))
def test_seen_ids_is_a_set_that_remembers_the_first_line(digests: list[int]) -> None:
    seen, first = SeenIds(), dict[int, int]()
    for line, digest in enumerate(digests, 1):
        digest = digest or 1  # ids never digest to 0
        assert seen.first_line(digest, line) == first.get(digest)
        first.setdefault(digest, line)
    assert seen.size == len(first)


def test_pending_skips_done_lines_and_flags_later_duplicates() -> None:
    done = written(("a", 1, True), (2, 3, False))
    pending = list(Pending(done)(docs_of(REPORTED)))
    assert [(d.id, d.line) for d in pending] == [(None, 2), ("a", 4)]
    assert isinstance(pending[0].error, InputError)  # the malformed line, again
    duplicate = pending[1].error
    assert isinstance(duplicate, DuplicateId)
    assert duplicate.first_line == 1
    assert duplicate.to_dict()["first_line"] == 1
    assert "already used by line 1" in duplicate.message
    assert "--allow-duplicate-ids" in duplicate.message
    assert pending[1].text is None


def test_allowed_duplicates_are_labelled() -> None:
    pending = list(Pending(Written(), allow_duplicates=True)(docs_of(REPORTED)))
    assert [(d.id, d.line, d.error is None) for d in pending] == [
        ("a", 1, True), (None, 2, False), (2, 3, True), ("a", 4, True),
    ]  # fmt: skip


def test_7_and_the_string_7_are_one_id_and_null_ids_never_repeat() -> None:
    data = b'{"id": 7, "text": "x"}\n{"id": "7", "text": "y"}\n"no id"\n"no id"\n{"text": "z"}\n'
    pending = list(Pending(Written())(docs_of(data)))
    assert [type(d.error).__name__ for d in pending] == [
        "NoneType", "DuplicateId", "NoneType", "NoneType", "NoneType",
    ]  # fmt: skip


def test_a_done_line_out_of_order_is_still_found() -> None:
    # A --retry-failed run appends the lines it relabels after the others.
    data = b'"x"\n"y"\n"z"\n'
    done = written((None, 3, True), (None, 1, True))
    assert [d.line for d in Pending(done)(docs_of(data))] == [2]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([("b", 1, True)], r"line 1 has id \"a\" in INPUT, another in OUTPUT"),
        ([(None, 2, True), (2, 2, True)], r"line 2 has no id in INPUT, another in OUTPUT"),
        ([(None, 2, False), ("z", 5, True)], r"record for line 5, which is blank in INPUT"),
        ([("a", 1, True), ("q", 9, True)], r"record for line 9, which INPUT does not have"),
    ],
)
def test_a_changed_input_is_refused(records: list[Any], message: str) -> None:
    *first_three, fourth = REPORTED.splitlines(keepends=True)
    data = b"".join([*first_three, b"\n", b" \n", fourth])  # line 4 moved to line 6
    pending = Pending(written(*records))
    with pytest.raises(ConfigError, match=message) as caught:
        pending.verify(docs_of(data))
    assert "INPUT changed since OUTPUT was written" in caught.value.message
    assert "write to a new OUTPUT" in caught.value.message
    with pytest.raises(ConfigError, match=message):
        list(pending(docs_of(data)))  # stdin: no second read, the same check on the way


def test_a_change_past_a_gap_is_found_before_the_gap_is_labelled() -> None:
    # Line 2 failed and was dropped by --retry-failed; since then line 3's id changed.
    before, after = b'"x"\n"y"\n{"id": "a", "text": "z"}\n', b'"x"\n"y"\n{"id": "b", "text": "z"}\n'
    pending = Pending(written((None, 1, True), ("a", 3, True)))
    with pytest.raises(ConfigError, match="line 3 has id"):
        next(pending(docs_of(after), reread=lambda: (d for d in docs_of(after))))
    # Read only once (stdin), line 2 goes out before line 3 shows the change.
    stream = pending(docs_of(after))
    assert next(stream).line == 2
    with pytest.raises(ConfigError, match="line 3 has id"):
        next(stream)
    # Unchanged, the second read finds nothing wrong.
    assert [
        d.line for d in pending(docs_of(before), reread=lambda: (d for d in docs_of(before)))
    ] == [2]


def test_verify_reads_no_further_than_the_last_done_line() -> None:
    def lines() -> Any:
        yield from docs_of(b'"a"\n"b"\n')
        raise AssertionError("read past the last line OUTPUT holds")

    Pending(written((None, 2, True))).verify(lines())


def test_records_written_without_lines_are_matched_by_their_old_id() -> None:
    # An older extract gave a line without an id its line number as id.
    old = written(("a", None, True), (2, None, False), (2, None, True))
    assert (old.records, old.failed) == (3, 1)
    pending = list(Pending(old)(docs_of(REPORTED)))
    # "a" once (line 1), then 2 twice: the malformed line 2 and the record with id 2.
    assert [(d.id, d.line) for d in pending] == [("a", 4)]


def test_record_json_puts_line_after_id() -> None:
    record = Record("a", True, {"n": 1}, line=4)
    assert list(record.to_json())[:3] == ["id", "line", "ok"]
    assert record.to_json()["line"] == 4


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def server(scripted: Callable[..., Scripted]) -> Scripted:
    return scripted(slots=4, responder=Responder())


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "n.json"
    path.write_text(json.dumps(SCHEMA))
    return path


def label(server: Scripted, schema: Path, *args: str, stdin: bytes | None = None) -> Any:
    base = ["label", "--schema", str(schema), "-m", "tiny", "--host", server.url, "--no-cache"]
    return CliRunner().invoke(main, [*base, *args], input=stdin)


def output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def outcome(path: Path) -> list[tuple[Any, int, str]]:
    """(id, line, "ok" or the error's type) per output record, by line."""
    records = sorted(output(path), key=lambda r: r["line"])
    return [(r["id"], r["line"], r["error"]["type"] if "error" in r else "ok") for r in records]


REPORTED_OUTCOME = [("a", 1, "ok"), (None, 2, "InputError"), (2, 3, "ok"), ("a", 4, "DuplicateId")]


def test_the_reported_input_gets_one_traceable_record_per_line(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(REPORTED)
    first = label(server, schema_file, str(source), "-o", str(out))
    assert first.exit_code == 1, first.output
    assert outcome(out) == REPORTED_OUTCOME
    assert "lines repeating an earlier line's id: 1, not labelled" in first.stderr
    sent = len(server.generates())
    assert sent == 2
    retried = label(server, schema_file, str(source), "-o", str(out), "--retry-failed")
    assert retried.exit_code == 1, retried.output
    assert outcome(out) == REPORTED_OUTCOME  # the malformed line kept its record
    assert len(server.generates()) == sent  # and id 2 was not labelled again
    allowed = ["--retry-failed", "--allow-duplicate-ids"]
    last = label(server, schema_file, str(source), "-o", str(out), *allowed)
    assert last.exit_code == 1, last.output  # the malformed line still fails
    assert outcome(out)[3] == ("a", 4, "ok")
    assert [r["value"] for r in output(out) if r["line"] == 4] == [{"n": 4}]


def test_duplicates_on_stdin_are_caught_as_they_stream(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = label(server, schema_file, "-", "-o", str(out), "--quiet", stdin=REPORTED)
    assert result.exit_code == 1, result.output
    assert outcome(out) == REPORTED_OUTCOME


def test_allow_duplicate_ids_labels_every_line(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(REPORTED.replace(b"not json", b'"<<9>>"'))
    result = label(server, schema_file, str(source), "-o", str(out), "--allow-duplicate-ids")
    assert result.exit_code == 0, result.output
    assert outcome(out) == [("a", 1, "ok"), (None, 2, "ok"), (2, 3, "ok"), ("a", 4, "ok")]


def test_a_changed_input_stops_the_rerun_before_any_labelling(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"r{n}", "text": f"<<{n}>>"}) + "\n" for n in range(6))
    )
    assert label(server, schema_file, str(source), "-o", str(out)).exit_code == 0
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:3]))  # killed after 3
    lines = source.read_text().splitlines(keepends=True)
    source.write_text("".join([lines[0], lines[2], lines[1], *lines[3:]]))  # lines 2, 3 swapped
    sent, before = len(server.generates()), out.read_bytes()
    result = label(server, schema_file, str(source), "-o", str(out))
    assert result.exit_code == 2
    assert 'INPUT changed since OUTPUT was written: line 2 has id "r2"' in result.stderr
    assert len(server.generates()) == sent
    assert out.read_bytes() == before


def test_a_changed_input_stops_a_retry_before_any_labelling(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(b'"<<1>>"\n"<<2:bad>>"\n{"id": "c", "text": "<<3>>"}\n')
    assert label(server, schema_file, str(source), "-o", str(out)).exit_code == 1
    source.write_bytes(source.read_bytes().replace(b'"c"', b'"C"'))
    sent = len(server.generates())
    result = label(server, schema_file, str(source), "-o", str(out), "--retry-failed")
    assert result.exit_code == 2
    assert 'line 3 has id "C" in INPUT, another in OUTPUT' in result.stderr
    assert len(server.generates()) == sent


def test_an_output_from_before_lines_resumes_by_id(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(b'{"id": "a", "text": "<<1>>"}\n"<<2>>"\n"<<3>>"\n')
    old = [{"id": "a", "ok": True, "value": {"n": 1}}, {"id": 2, "ok": True, "value": {"n": 2}}]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    result = label(server, schema_file, str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "2 of them were written by an older extract" in result.stderr
    assert len(server.generates()) == 1
    assert output(out)[2] == {**output(out)[2], "id": None, "line": 3, "value": {"n": 3}}


def test_csv_rows_are_lines_and_empty_ids_are_null(
    server: Scripted, schema_file: Path, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    source.write_text('id,text\nx,<<1>>\n,"<<2>>\nsecond line"\nx,<<3>>\n')
    result = label(server, schema_file, str(source), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert outcome(out) == [("x", 1, "ok"), (None, 2, "ok"), ("x", 3, "DuplicateId")]


def test_every_failed_line_is_relabelled_after_an_outage(
    scripted: Callable[..., Scripted], schema_file: Path, tmp_path: Path
) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(REPORTED.replace(b"<<2>>", b"<<2:bad>>"))
    down = scripted(responder=Responder())
    assert label(down, schema_file, str(source), "-o", str(out)).exit_code == 1
    healed = scripted(responder=lambda _body: Reply.text('{"n": 2}'))
    result = label(healed, schema_file, str(source), "-o", str(out), "--retry-failed")
    assert result.exit_code == 1
    assert len(healed.generates()) == 1  # line 3 only: line 1 was ok, 2 and 4 fail as before
    assert outcome(out) == REPORTED_OUTCOME
