"""Hash-list formats shared with the industry (ThreatExchange local files, CSV, GIFCT-style CSV).

Fetchers (`firebreak.exchange.fetchers`) bring such lists in from a file or a URL, only when they
changed; that module is imported on its own, so the formats stay free of network code.
"""

from firebreak.exchange.formats import (
    CSV_COLUMNS,
    GIFCT_COLUMNS,
    GIFCT_METADATA,
    HashRecord,
    ListFormat,
    ListNotWritable,
    gifct_type,
    guess_format,
    read_csv,
    read_gifct,
    read_list,
    read_local_file,
    record_item_name,
    write_csv,
    write_gifct,
    write_list,
    write_local_file,
)

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
