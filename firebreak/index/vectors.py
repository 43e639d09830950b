"""Exact cosine-similarity search over small unit vectors (frame thumbnails), with stable ids.

Distances are integers, `round((1 - cosine) × 1000)`, so that vector and Hamming indices answer the
same `search_radius(queries, max_distance)` question.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from firebreak.index.hamming import IndexHit

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
DISTANCE_SCALE = 1000.0


class CosineIndex:
    """Ids → unit vectors of one dimension; exact search above a cosine similarity."""

    def __init__(self, dimension: int, index: faiss.IndexIDMap2 | None = None) -> None:
        self.dimension = dimension
        self._index = index or faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids):
            self._index.add_with_ids(self._as_vectors(vectors), np.ascontiguousarray(ids, np.int64))

    def remove(self, ids: Ids) -> None:
        if len(ids):
            self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, np.int64)))

    def search_radius(self, queries: Vectors, max_distance: int) -> list[IndexHit]:
        """Every (query, id) pair with `round((1 - cosine) × 1000)` ≤ `max_distance`."""
        if len(queries) == 0 or len(self) == 0:
            return []
        # faiss keeps inner products strictly above the radius; shave half a unit off.
        min_similarity = 1.0 - (max_distance + 0.5) / DISTANCE_SCALE
        limits, similarities, ids = self._index.range_search(
            self._as_vectors(queries), min_similarity
        )
        hits = []
        for row in range(len(queries)):
            for k in range(int(limits[row]), int(limits[row + 1])):
                distance = round((1.0 - float(similarities[k])) * DISTANCE_SCALE)
                hits.append(IndexHit(row, int(ids[k]), max(0, distance)))
        return hits

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dimension: int) -> CosineIndex:
        loaded = faiss.read_index(str(path))
        if not isinstance(loaded, faiss.IndexIDMap2) or loaded.d != dimension:
            raise RuntimeError(f"{path} is not a Firebreak vector index of dimension {dimension}")
        return cls(dimension, loaded)

    def _as_vectors(self, vectors: Vectors) -> Vectors:
        array = np.ascontiguousarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.dimension:
            raise ValueError(f"vectors must be N×{self.dimension} float32, got {array.shape}")
        return array


def brute_force_cosine_search(
    ids: Ids, vectors: Vectors, queries: Vectors, max_distance: int
) -> list[IndexHit]:
    """The naive oracle: every dot product."""
    hits = []
    for row, query in enumerate(queries):
        distances = np.round((1.0 - vectors @ query) * DISTANCE_SCALE)
        for k in np.nonzero(distances <= max_distance)[0]:
            hits.append(IndexHit(row, int(ids[k]), max(0, int(distances[k]))))
    return hits
