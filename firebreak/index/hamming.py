"""Exact radius search over 256-bit codes: faiss's flat binary index with stable ids.

`brute_force_radius_search` is the oracle the index is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from firebreak.signals.base import HASH_BITS, HASH_BYTES

Codes = npt.NDArray[np.uint8]
Ids = npt.NDArray[np.int64]


@dataclass(frozen=True)
class IndexHit:
    query_row: int
    id: int
    distance: int


class HammingIndex:
    """Ids → 256-bit codes; adds and removes in place; exact search within a Hamming radius."""

    def __init__(self, index: faiss.IndexBinaryIDMap2 | None = None) -> None:
        self._index = index or faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(HASH_BITS))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: Ids, codes: Codes) -> None:
        if len(ids) != len(codes):
            raise ValueError("ids and codes differ in length")
        if len(ids):
            self._index.add_with_ids(_as_codes(codes), np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Ids) -> None:
        if len(ids):
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
            self._index.remove_ids(selector)

    def search_radius(self, queries: Codes, max_distance: int) -> list[IndexHit]:
        """Every (query, id) pair at Hamming distance ≤ `max_distance`."""
        if len(queries) == 0 or len(self) == 0:
            return []
        # faiss's binary range search keeps distances strictly below the radius.
        limits, distances, ids = self._index.range_search(_as_codes(queries), max_distance + 1)
        hits = []
        for row in range(len(queries)):
            for k in range(int(limits[row]), int(limits[row + 1])):
                hits.append(IndexHit(row, int(ids[k]), int(distances[k])))
        return hits

    def save(self, path: Path) -> None:
        faiss.write_index_binary(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> HammingIndex:
        loaded = faiss.read_index_binary(str(path))
        if not isinstance(loaded, faiss.IndexBinaryIDMap2):
            raise RuntimeError(f"{path} is not a Firebreak frame index")
        return cls(loaded)


def _as_codes(codes: Codes) -> Codes:
    array = np.ascontiguousarray(codes, dtype=np.uint8)
    if array.ndim != 2 or array.shape[1] != HASH_BYTES:
        raise ValueError(f"codes must be N×{HASH_BYTES} uint8, got {array.shape}")
    return array


def hex_codes(values: list[str]) -> Codes:
    """N×32 code matrix from 64-digit hex strings."""
    if not values:
        return np.zeros((0, HASH_BYTES), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(values)), dtype=np.uint8).reshape(-1, HASH_BYTES)


def brute_force_radius_search(
    ids: Ids, codes: Codes, queries: Codes, max_distance: int
) -> list[IndexHit]:
    """The naive oracle: popcount of XOR against every code."""
    hits = []
    for row, query in enumerate(queries):
        distances = np.unpackbits(np.bitwise_xor(codes, query), axis=1).sum(axis=1)
        for k in np.nonzero(distances <= max_distance)[0]:
            hits.append(IndexHit(row, int(ids[k]), int(distances[k])))
    return hits
