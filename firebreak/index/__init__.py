"""Indices over the store's signals: Hamming (PDQ codes) and cosine (thumbnails), persisted."""

from firebreak.index.hamming import HammingIndex, IndexHit, brute_force_radius_search, hex_codes
from firebreak.index.mih import IndexFormatError, Layout, MIHIndex, choose_layout
from firebreak.index.persisted import IndexKind, StoreIndex, cosine_kind, hamming_kind
from firebreak.index.shards import ShardedIndex, by_bank, by_prefix
from firebreak.index.vectors import CosineIndex, brute_force_cosine_search

__all__ = [
    "CosineIndex",
    "HammingIndex",
    "IndexFormatError",
    "IndexHit",
    "IndexKind",
    "Layout",
    "MIHIndex",
    "ShardedIndex",
    "StoreIndex",
    "brute_force_cosine_search",
    "brute_force_radius_search",
    "by_bank",
    "by_prefix",
    "choose_layout",
    "cosine_kind",
    "hamming_kind",
    "hex_codes",
]
