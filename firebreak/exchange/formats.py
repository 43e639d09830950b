"""Hash lists as other tools write them.

- ThreatExchange `local_file`: one `<signal_type> <signal>` a line, as python-threatexchange's file
  exchange reads and writes it (`pdq <hex>`, `vpdq <json list>`, `video_md5 <hex>`).
- CSV: `item,signal_type,signal` with a header, so that item names survive the round trip.
- GIFCT-style CSV: `hash_type,hash_value,label,category,source,date` with a header (only
  `hash_type` and `hash_value` must have a value; the others are the item's metadata). One row is
  one hash: the list has no notion of items. Reading accepts the spellings hash-sharing databases
  use (`PDQ`, `MD5`, `SHA-256`, `vPDQ`, `video_md5`...); writing uses the exchange names.

Types are written with their exchange names; a type we do not know is kept as it is, and written
back out exactly as it was read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath

from firebreak.errors import FirebreakError, HashListInvalid

CSV_COLUMNS = ("item", "signal_type", "signal")
GIFCT_METADATA = ("label", "category", "source", "date")
"""The GIFCT columns that are an item's metadata (keys of `Item.metadata`)."""
GIFCT_COLUMNS = ("hash_type", "hash_value", *GIFCT_METADATA)

_FIELD_LIMIT = 64 << 20
"""Largest CSV field read: a vPDQ list of a long video is far beyond csv's default 128 kB."""

# GIFCT and other hash-sharing databases spell types their own way; keys are lower case with
# spaces, '-' and '_' taken out. Anything else is an unknown type, kept exactly as written.
_GIFCT_ALIASES = {
    "pdq": "pdq",
    "vpdq": "vpdq",
    "md5": "video_md5",
    "videomd5": "video_md5",
    "sha256": "video_sha256",
    "videosha256": "video_sha256",
}


class ListNotWritable(FirebreakError):
    """A hash that a format cannot carry as it is (a ThreatExchange line cannot hold a type with
    a space or a value with a line break): export in another format."""

    def __init__(self, fmt: str, signal_type: str, value: str, reason: str) -> None:
        super().__init__(
            f"cannot write {signal_type!r} {value[:40]!r} in a {fmt} list ({reason}): "
            "export as csv or gifct"
        )
        self.signal_type = signal_type
        self.reason = reason


class ListFormat(StrEnum):
    TE = "te"
    CSV = "csv"
    GIFCT = "gifct"


@dataclass(frozen=True)
class HashRecord:
    signal_type: str
    value: str
    item: str | None = None
    line: int = field(default=0, compare=False)
    """Where the record was read from (1-based, as an editor numbers lines); 0 when not read."""
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    """What the list says about the hash (GIFCT: label, category, source, date); only non-empty
    values."""


def record_item_name(record: HashRecord) -> str:
    """The item a record becomes: the name the list gives it, else one made from the hash (the
    same hash always gets the same name, so importing a list twice adds nothing)."""
    if record.item:
        return record.item
    digest = hashlib.sha256(f"{record.signal_type} {record.value}".encode()).hexdigest()[:16]
    return f"{record.signal_type}-{digest}"


def gifct_type(name: str) -> str:
    """The exchange name for a type as a hash-sharing database spells it (`PDQ` -> `pdq`,
    `MD5` -> `video_md5`); a type we do not know, as it was written (without outer spaces)."""
    key = re.sub(r"[\s_\-]", "", name).lower()
    return _GIFCT_ALIASES.get(key, name.strip())


def read_list(text: str, fmt: ListFormat, source: str) -> list[HashRecord]:
    """The records of a hash list in `fmt`; HashListInvalid names the first bad line."""
    if fmt is ListFormat.CSV:
        return read_csv(text, source)
    if fmt is ListFormat.GIFCT:
        return read_gifct(text, source)
    return read_local_file(text, source)


def write_list(records: Iterable[HashRecord], fmt: ListFormat) -> str:
    if fmt is ListFormat.CSV:
        return write_csv(records)
    if fmt is ListFormat.GIFCT:
        return write_gifct(records)
    return write_local_file(records)


def read_local_file(text: str, source: str) -> list[HashRecord]:
    records = []
    for number, line in enumerate(_strip_bom(text).splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        signal_type, _, value = stripped.partition(" ")
        if not value.strip():
            raise HashListInvalid(source, number, "expected '<signal_type> <signal>'")
        records.append(HashRecord(signal_type, value.strip(), line=number))
    return records


def write_local_file(records: Iterable[HashRecord]) -> str:
    """One line a record; ListNotWritable for one that would not read back the same (a type
    we do not know, from another format, may hold what a line cannot)."""
    lines = []
    for r in records:
        if not r.signal_type or r.signal_type.startswith("#") or _has_space(r.signal_type):
            raise ListNotWritable("te", r.signal_type, r.value, "a type with a space")
        if r.value != r.value.strip() or r.value.splitlines() != [r.value]:
            raise ListNotWritable("te", r.signal_type, r.value, "a line break or outer space")
        lines.append(f"{r.signal_type} {r.value}\n")
    return "".join(lines)


def read_csv(text: str, source: str) -> list[HashRecord]:
    records = []
    rows = _csv_rows(text, source)
    header_line, header = next(rows, (1, []))
    names = [name.strip() for name in header]
    if not {"signal_type", "signal"} <= set(names):
        raise HashListInvalid(source, header_line, f"CSV header must name {', '.join(CSV_COLUMNS)}")
    for line, row in rows:
        cells = _cells(names, row, source, line)
        signal_type, value = cells.get("signal_type", ""), cells.get("signal", "")
        if not signal_type or not value:
            raise HashListInvalid(source, line, "empty signal_type or signal")
        records.append(HashRecord(signal_type, value, cells.get("item") or None, line=line))
    return records


def write_csv(records: Iterable[HashRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow([r.item or "", r.signal_type, r.value])
    return out.getvalue()


def read_gifct(text: str, source: str) -> list[HashRecord]:
    records = []
    rows = _csv_rows(text, source)
    header_line, header = next(rows, (1, []))
    names = [name.strip().lower() for name in header]
    if not {"hash_type", "hash_value"} <= set(names):
        raise HashListInvalid(
            source, header_line, f"GIFCT CSV header must name {', '.join(GIFCT_COLUMNS)}"
        )
    for line, row in rows:
        cells = _cells(names, row, source, line)
        hash_type, value = cells.get("hash_type", ""), cells.get("hash_value", "")
        if not hash_type or not value:
            raise HashListInvalid(source, line, "empty hash_type or hash_value")
        metadata = {key: cells[key] for key in GIFCT_METADATA if cells.get(key)}
        records.append(HashRecord(gifct_type(hash_type), value, line=line, metadata=metadata))
    return records


def write_gifct(records: Iterable[HashRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(GIFCT_COLUMNS)
    for r in records:
        writer.writerow([r.signal_type, r.value, *(r.metadata.get(k, "") for k in GIFCT_METADATA)])
    return out.getvalue()


def guess_format(filename: str, text: str) -> ListFormat:
    """The format of a list: from its header when it has one, else from its name (`.csv`)."""
    first = next((line for line in _strip_bom(text).splitlines() if line.strip()), "")
    header = {cell.strip().strip('"').lower() for cell in first.split(",")}
    if {"hash_type", "hash_value"} <= header:
        return ListFormat.GIFCT
    if {"signal_type", "signal"} <= header:
        return ListFormat.CSV
    suffix = PurePosixPath(filename.split("?", 1)[0]).suffix.lower()
    return ListFormat.CSV if suffix == ".csv" else ListFormat.TE


def _has_space(text: str) -> bool:
    return any(ch.isspace() for ch in text)


def _strip_bom(text: str) -> str:
    return text.removeprefix("\ufeff")


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of a CSV text with the line each starts on; HashListInvalid for
    what the csv module cannot read."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(_strip_bom(text)), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise HashListInvalid(source, max(start, reader.line_num), f"bad CSV: {exc}") from None
        if any(cell.strip() for cell in row):
            yield start, row


def _cells(names: list[str], row: list[str], source: str, line: int) -> dict[str, str]:
    if any(cell.strip() for cell in row[len(names) :]):
        raise HashListInvalid(
            source, line, f"{len(row)} fields where the header names {len(names)}"
        )
    return {name: cell.strip() for name, cell in zip(names, row, strict=False)}


__all__ = [
    "CSV_COLUMNS",
    "GIFCT_COLUMNS",
    "GIFCT_METADATA",
    "HashRecord",
    "ListFormat",
    "ListNotWritable",
    "gifct_type",
    "guess_format",
    "read_csv",
    "read_gifct",
    "read_list",
    "read_local_file",
    "record_item_name",
    "write_csv",
    "write_gifct",
    "write_list",
    "write_local_file",
]
