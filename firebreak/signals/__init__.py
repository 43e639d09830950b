"""Signal types (one module each) and the extraction of every signal from a media file."""

from firebreak.signals.base import FrameHash, SignalType, codes_matrix, hamming_distance
from firebreak.signals.extract import (
    FileDigests,
    MediaSignals,
    QuerySignals,
    file_digests,
    hash_media_file,
    hash_query_file,
)
from firebreak.signals.registry import SIGNAL_TYPES, signal_type, signal_type_for_exchange_name

__all__ = [
    "SIGNAL_TYPES",
    "FileDigests",
    "FrameHash",
    "MediaSignals",
    "QuerySignals",
    "SignalType",
    "codes_matrix",
    "file_digests",
    "hamming_distance",
    "hash_media_file",
    "hash_query_file",
    "signal_type",
    "signal_type_for_exchange_name",
]
