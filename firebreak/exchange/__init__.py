"""Hash-list formats shared with the industry (ThreatExchange local files, CSV)."""

from firebreak.exchange.formats import (
    HashRecord,
    ListFormat,
    guess_format,
    read_csv,
    read_local_file,
    write_csv,
    write_local_file,
)

__all__ = [
    "HashRecord",
    "ListFormat",
    "guess_format",
    "read_csv",
    "read_local_file",
    "write_csv",
    "write_local_file",
]
