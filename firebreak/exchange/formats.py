"""Hash lists as other tools write them.

- ThreatExchange `local_file`: one `<signal_type> <signal>` a line, as python-threatexchange's file
  exchange reads and writes it (`pdq <hex>`, `vpdq <json list>`, `video_md5 <hex>`).
- CSV: `item,signal_type,signal` with a header, so that item names survive the round trip.

Types are written with their exchange names; a type we do not know is kept as it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from firebreak.errors import HashListInvalid

CSV_COLUMNS = ("item", "signal_type", "signal")


class ListFormat(StrEnum):
    TE = "te"
    CSV = "csv"


@dataclass(frozen=True)
class HashRecord:
    signal_type: str
    value: str
    item: str | None = None
    line: int = field(default=0, compare=False)
    """Where the record was read from (1-based, as an editor numbers lines); 0 when not read."""


def read_local_file(text: str, source: str) -> list[HashRecord]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        signal_type, _, value = stripped.partition(" ")
        if not value.strip():
            raise HashListInvalid(source, number, "expected '<signal_type> <signal>'")
        records.append(HashRecord(signal_type, value.strip(), line=number))
    return records


def write_local_file(records: Iterable[HashRecord]) -> str:
    return "".join(f"{r.signal_type} {r.value}\n" for r in records)


def read_csv(text: str, source: str) -> list[HashRecord]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"signal_type", "signal"} <= set(reader.fieldnames):
        raise HashListInvalid(source, 1, f"CSV header must name {', '.join(CSV_COLUMNS)}")
    records = []
    for row in reader:
        signal_type = (row.get("signal_type") or "").strip()
        value = (row.get("signal") or "").strip()
        if not signal_type or not value:
            raise HashListInvalid(source, reader.line_num, "empty signal_type or signal")
        item = (row.get("item") or "").strip() or None
        records.append(HashRecord(signal_type, value, item, line=reader.line_num))
    return records


def write_csv(records: Iterable[HashRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow([r.item or "", r.signal_type, r.value])
    return out.getvalue()


def guess_format(filename: str, text: str) -> ListFormat:
    if filename.lower().endswith(".csv"):
        return ListFormat.CSV
    first = next((line for line in text.splitlines() if line.strip()), "")
    return (
        ListFormat.CSV if first.replace(" ", "").startswith("item,signal_type") else ListFormat.TE
    )
