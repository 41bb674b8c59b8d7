"""Ids and lines: how a batch run matches OUTPUT's records to INPUT's lines, and finds
duplicate ids, in a few bytes per record.

Every output record carries the input ``line`` it came from, so a resumed run keys on the
line, never on the id: a record in OUTPUT for line N means line N is done, whatever its id,
and --retry-failed drops the failed records so their lines are labelled again. OUTPUT is
checked against INPUT on the way (``Pending``): a record for line N whose id is not line N's
id, or a record for a line INPUT does not have (blank now, or past its end), means INPUT
changed, and the run stops with a ConfigError — before labelling anything when INPUT is a
file (it is read a second time when the lines OUTPUT holds are not all at its start), as the
lines are read when it is a stream. Records written before records had lines (no ``line``
field) are matched by id as they were then: a record without an id had its position as id,
and each id stands for as many lines as it has records.

A line whose id an earlier line already has becomes a ``DuplicateId`` error record unless
duplicates are allowed; lines without an id (``null``) are never duplicates. Every line's id
is remembered, labelled in this run or before, so the rule holds across reruns. Ids are
remembered as 64-bit digests in a sharded table (16 bytes a slot, about 32 MB for a million
ids), not as text: two different ids share a digest with odds of about n²/2⁶⁵ (3 in 100
million for a million ids), which would give the later one a DuplicateId.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DuplicateId

if TYPE_CHECKING:
    from .records import Document

# A written record is packed in one 64-bit word: its line above, its id's digest below (the
# low bits only: enough to notice that a line's id changed).
_DIGEST_BITS = 24
_DIGEST_MASK = (1 << _DIGEST_BITS) - 1
MAX_LINE = (1 << (64 - _DIGEST_BITS)) - 1
_DIGEST64 = (1 << 64) - 1
_SHARD_BITS = 8
_SHARD_SLOTS = 16


def id_key(value: Any) -> str:
    """An id as text, the form in which ids are compared.

    >>> id_key(7), id_key("7"), id_key(7.5), id_key(["a", 1])
    ('7', '7', '7.5', '["a", 1]')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def id_digest(value: Any) -> int:
    """An id as a 64-bit number: 0 for no id (None), never 0 for an id.

    Python's string hash (SipHash, keyed anew in each process) serves: the digests never
    leave the process, and it costs a fraction of a cryptographic hash.

    >>> id_digest(None), id_digest(7) == id_digest("7") != 0
    (0, True)
    """
    if value is None:
        return 0
    return hash(id_key(value)) & _DIGEST64 or 1


class _Shard:
    """An open-addressing table over two flat arrays (digest, line); 0 marks a free slot."""

    __slots__ = ("digests", "lines", "size")

    def __init__(self, slots: int) -> None:
        self.digests = array("Q", bytes(8 * slots))
        self.lines = array("Q", bytes(8 * slots))
        self.size = 0

    def first_line(self, digest: int, line: int) -> int | None:
        digests, mask = self.digests, len(self.digests) - 1
        slot = digest & mask
        while (held := digests[slot]) != 0:
            if held == digest:
                return self.lines[slot]
            slot = (slot + 1) & mask
        digests[slot], self.lines[slot] = digest, line
        self.size += 1
        return None

    def full(self) -> bool:
        return 3 * self.size > 2 * len(self.digests)

    def grown(self) -> _Shard:
        bigger = _Shard(2 * len(self.digests))
        for digest, line in zip(self.digests, self.lines, strict=True):
            if digest:
                bigger.first_line(digest, line)
        return bigger


class SeenIds:
    """The ids met so far (their ``id_digest``), each with the line it was first met on.

    256 shards, chosen by a digest's top byte, each doubled when two thirds full: one growth
    copies a 256th of the table, so the peak stays near the table's own size (16 bytes a slot).
    """

    def __init__(self) -> None:
        self._shards = [_Shard(_SHARD_SLOTS) for _ in range(1 << _SHARD_BITS)]
        self.size = 0

    def first_line(self, digest: int, line: int) -> int | None:
        """The line an id (its nonzero digest) was first met on; None when it is new, which
        records it as met on ``line``.

        >>> seen = SeenIds()
        >>> seen.first_line(id_digest("a"), 1), seen.first_line(id_digest("a"), 4)
        (None, 1)
        """
        index = digest >> (64 - _SHARD_BITS)
        shard = self._shards[index]
        first = shard.first_line(digest, line)
        if first is None:
            self.size += 1
            if shard.full():
                self._shards[index] = shard.grown()
        return first


@dataclasses.dataclass
class Written:
    """What OUTPUT already holds: each record's line and id (packed, 8 bytes a record), how
    many records failed, and the ids of records written without a line (with counts)."""

    entries: array[int] = dataclasses.field(default_factory=lambda: array("Q"))
    failed: int = 0
    legacy: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)

    def add(self, record_id: Any, line: int | None, ok: bool) -> None:
        """Note one output record (``line`` None: written before records had lines)."""
        self.failed += not ok
        if line is None:
            self.legacy[id_digest(record_id)] += 1
        else:
            self.entries.append(line << _DIGEST_BITS | id_digest(record_id) & _DIGEST_MASK)

    @property
    def records(self) -> int:
        """How many records OUTPUT holds."""
        return len(self.entries) + self.legacy.total()


class _Cursor:
    """Walks OUTPUT's records (sorted by line) alongside INPUT's documents, in line order."""

    def __init__(self, entries: array[int]) -> None:
        self._entries = entries
        self._at = 0

    def holds(self, doc: Document, digest: int) -> bool:
        """Whether OUTPUT holds ``doc``'s line; raises ConfigError when INPUT changed."""
        entries, at = self._entries, self._at
        if at < len(entries) and entries[at] >> _DIGEST_BITS < doc.line:
            line = entries[at] >> _DIGEST_BITS
            raise _changed(f"OUTPUT has a record for line {line}, which is blank in INPUT")
        held = False
        while at < len(entries) and entries[at] >> _DIGEST_BITS == doc.line:
            if entries[at] & _DIGEST_MASK != digest & _DIGEST_MASK:
                shown = "no id" if doc.id is None else f"id {_shown(doc.id)}"
                raise _changed(f"line {doc.line} has {shown} in INPUT, another in OUTPUT")
            at, held = at + 1, True
        self._at = at
        return held

    def finish(self) -> None:
        """Raises ConfigError when OUTPUT holds a line past INPUT's last."""
        if self._at < len(self._entries):
            line = self._entries[self._at] >> _DIGEST_BITS
            raise _changed(f"OUTPUT has a record for line {line}, which INPUT does not have")


def _changed(what: str) -> ConfigError:
    return ConfigError(f"INPUT changed since OUTPUT was written: {what}; write to a new OUTPUT")


class Pending:
    """The input lines a run still has to label, given what OUTPUT holds (``Written``).

    Calling it on INPUT's documents (in input order) skips every line OUTPUT holds, turns a
    line whose id an earlier line has into a DuplicateId error document (unless
    ``allow_duplicates``), and yields the rest; it raises ConfigError as soon as it sees that
    INPUT changed since OUTPUT was written.
    """

    def __init__(self, written: Written, *, allow_duplicates: bool = False) -> None:
        self.allow_duplicates = allow_duplicates
        entries = written.entries
        # Records come in input order, except those a --retry-failed run appended.
        if any(a > b for a, b in itertools.pairwise(entries)):
            entries = array("Q", sorted(entries))
        self._entries = entries
        self._last = entries[-1] >> _DIGEST_BITS if entries else 0
        self._legacy = collections.Counter(written.legacy)

    def verify(self, docs: Iterable[Document]) -> None:
        """Check OUTPUT's records against INPUT up to the last line OUTPUT holds, before a run.

        Raises ConfigError when INPUT changed since OUTPUT was written.
        """
        cursor = _Cursor(self._entries)
        for doc in docs:
            cursor.holds(doc, id_digest(doc.id))
            if doc.line >= self._last:
                return
        cursor.finish()

    def __call__(
        self, docs: Iterable[Document], *, reread: Callable[[], Generator[Document]] | None = None
    ) -> Iterator[Document]:
        """INPUT's documents still to label. ``reread`` reads INPUT again from the start (None
        for a stream): before the first line to label that lies before a line OUTPUT holds,
        the rest of OUTPUT is checked against INPUT, so that a changed INPUT stops the run
        before anything is labelled. Without it, each line is checked as it is read."""
        cursor = _Cursor(self._entries)
        seen = None if self.allow_duplicates else SeenIds()
        for doc in docs:
            digest = id_digest(doc.id)
            # Every line's id is remembered, done or not, so a repeat is caught on any run.
            first = seen.first_line(digest, doc.line) if seen is not None and digest else None
            if cursor.holds(doc, digest) or self._legacy_holds(doc):
                continue
            if reread is not None and doc.line < self._last:
                # Only a --retry-failed run leaves such gaps; a killed one leaves a prefix,
                # which the cursor has checked by now.
                with contextlib.closing(reread()) as again:
                    self.verify(again)
                reread = None
            if first is None:
                yield doc
            else:
                yield dataclasses.replace(doc, text=None, error=_duplicate(doc, first))
        cursor.finish()

    def _legacy_holds(self, doc: Document) -> bool:
        if not self._legacy:
            return False
        # The id an older extract gave it: the id, else its position.
        key = id_digest(doc.line if doc.id is None else doc.id)
        if self._legacy[key] <= 0:
            return False
        self._legacy[key] -= 1
        return True


def _duplicate(doc: Document, first: int) -> DuplicateId:
    return DuplicateId(
        f"line {doc.line}: id {_shown(doc.id)} was already used by line "
        f"{first} (only the first line with an id is labelled); to label this line too, rerun "
        "with --allow-duplicate-ids --retry-failed",
        first_line=first,
    )


def _shown(value: Any, most: int = 60) -> str:
    """An id as JSON, shortened for a message.

    >>> _shown("a"), _shown(2), _shown("x" * 100, most=8)
    ('"a"', '2', '"xxxxx...')
    """
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= most else text[: most - 2] + "..."
