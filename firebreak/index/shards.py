"""Banks beyond one index: shards by hash prefix or by bank, queried by fan-out.

A radius query cannot be routed by prefix (a code 31 bits away may differ in any prefix bit), so
every query goes to every shard and the answers are merged; routing decides only where a code is
stored: by prefix to spread codes evenly, by bank so a bank can be loaded, rebuilt or dropped
alone. Removes go to every shard (an id's shard is not remembered; a shard without the id does
nothing). Shards answer on a thread pool: MIH and faiss both release the GIL, so N shards use up
to N cores. A shard is anything with the index interface, so a client of a remote matcher node
can be one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from firebreak.index.hamming import IndexHit

Codes = npt.NDArray[np.uint8]
Ids = npt.NDArray[np.int64]
ShardNumbers = npt.NDArray[np.int64]
Router = Callable[[Ids, Codes], ShardNumbers]


class Searchable(Protocol):
    def search_radius(self, queries: Any, max_distance: int) -> list[IndexHit]: ...


class Shard(Protocol):
    def __len__(self) -> int: ...
    def add(self, ids: Any, codes: Any) -> None: ...
    def remove(self, ids: Any) -> None: ...
    def search_radius(self, queries: Any, max_distance: int) -> list[IndexHit]: ...


def by_prefix(n_shards: int) -> Router:
    """Shard = the code's first 16 bits scaled to `n_shards`: even for PDQ's balanced bits."""
    if n_shards < 1:
        raise ValueError("at least one shard")

    def route(ids: Ids, codes: Codes) -> ShardNumbers:
        prefix = codes[:, 0].astype(np.int64) << 8 | codes[:, 1].astype(np.int64)
        return (prefix * n_shards) >> 16

    return route


def by_bank(
    bank_of: Callable[[Ids], npt.NDArray[np.int64]], shard_of_bank: Mapping[int, int]
) -> Router:
    """Shard chosen by the bank each id belongs to (`bank_of` maps ids to bank numbers)."""

    def route(ids: Ids, codes: Codes) -> ShardNumbers:
        banks = bank_of(ids)
        try:
            return np.array([shard_of_bank[int(b)] for b in banks], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"bank {exc.args[0]} has no shard") from None

    return route


def search_all(
    shards: Sequence[Searchable],
    queries: Codes,
    max_distance: int,
    pool: ThreadPoolExecutor | None = None,
) -> list[IndexHit]:
    """Every shard's hits for `queries`, merged and sorted by query row, distance, id; on `pool`
    when given (shards answer at once), else one after the other."""
    if pool is not None and len(shards) > 1:
        answers = list(pool.map(lambda s: s.search_radius(queries, max_distance), shards))
    else:
        answers = [s.search_radius(queries, max_distance) for s in shards]
    hits = [hit for answer in answers for hit in answer]
    hits.sort(key=lambda h: (h.query_row, h.distance, h.id))
    return hits


class ShardedIndex:
    """Several indices behind the one-index interface; results equal one unsharded index's."""

    def __init__(self, shards: Sequence[Shard], route: Router, threads: int | None = None):
        if not shards:
            raise ValueError("at least one shard")
        self.shards = list(shards)
        self._route = route
        self._pool = ThreadPoolExecutor(threads or len(self.shards))

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def add(self, ids: Ids, codes: Codes) -> None:
        if len(ids) != len(codes):
            raise ValueError("ids and codes differ in length")
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype=np.int64)
        codes = np.asarray(codes, dtype=np.uint8)
        target = self._route(ids, codes)
        if len(target) and (target.min() < 0 or target.max() >= len(self.shards)):
            raise ValueError("router chose a shard that does not exist")
        for number, shard in enumerate(self.shards):
            mine = target == number
            if mine.any():
                shard.add(ids[mine], codes[mine])

    def remove(self, ids: Ids) -> None:
        list(self._pool.map(lambda shard: shard.remove(ids), self.shards))

    def search_radius(self, queries: Codes, max_distance: int) -> list[IndexHit]:
        """Every shard's hits, merged, sorted by query row, distance, id."""
        return search_all(self.shards, queries, max_distance, self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
