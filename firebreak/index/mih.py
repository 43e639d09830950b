"""Exact Hamming-radius search over 10 M 256-bit codes in ~1.25 GB: multi-index hashing (MIH)
over sorted arrays, with compact uint32 row numbers and a memory-mappable snapshot.

Why not faiss: `IndexBinaryMultiHash(256, 12, 21)` keeps a C++ hash map of int64 ids per table
(3.7 GB and ~1 ms a query at 10 M codes here), and with `nflip=1` it is only exact up to radius 23
(see below). Here each table is two flat arrays: `rows[t]`, the row numbers (uint32) sorted by the
table's substring, and `offsets[t]`, a dense prefix-count over all 2^b substring values, so bucket
`k` of table `t` is `rows[t][offsets[t][k]:offsets[t][k + 1]]`. A lookup is two loads; nothing is
hashed, nothing is a pointer, and every array saves to (and maps back from) one file as-is.

Exactness (the pigeonhole principle, in the sharpened form of Norouzi, Punjani and Fleet, "Fast
exact search in Hamming space with multi-index hashing", 2014). The 256 bits are cut into `m`
disjoint substrings that together cover every bit, so for a query `q` and a code `c` the full
distance is the sum of the substring distances: d(q, c) = Σ_t d_t(q, c). Write the radius as
r = q·m + a with 0 ≤ a < m (q = r // m). Give `a + 1` of the tables the probe radius `q` and the
other `m − a − 1` tables the probe radius `q − 1`. If no table found `c`, every one of the first
a + 1 tables has d_t ≥ q + 1 and every other has d_t ≥ q, so

    d(q, c) ≥ (a + 1)(q + 1) + (m − a − 1)·q = m·q + a + 1 = r + 1 > r.

Hence every code within `r` lies, in at least one table, in a bucket whose key is within that
table's probe radius of the query's substring; probing all such keys (all subsets of ≤ radius
flipped bits of the table's key) and checking the full 256-bit distance of each candidate finds
every hit and only hits. (The plain form, "some substring is within ⌊r/m⌋", is the special case of
giving every table radius q; the sharpened form lets `m − a − 1` tables probe one bit less, and when
q = 0 skips them entirely.) A hit may sit in the probed buckets of several tables; it is reported
only from the first table whose substring distance is within that table's probe radius, which needs
no set of seen rows. With faiss's 12 × 21-bit tables and 1-bit probes, the same argument only covers
r ≤ 2·12 − 1 = 23: codes at distance 24–31 can be missed, which the bench measures as its recall.

Layout, by measurement (`firebreak.bench.index_scale.compare_layouts`: 10 M random codes, 1000
queries at radius 31, CPU time of one thread on this shared 2-core machine; the expected count of
bucket lookups + candidates a query from `Layout.probe_cost` in brackets):

- 16 × 16 bits, 1-bit probes (41.8 k): 1005 MB, p50 0.86 ms, p99 1.20 ms — few lookups, but
  ~150 codes a bucket, so ~40 k scattered reads of candidate codes: verification dominates;
- 13 × 20/19 bits (15.6 k): 931 MB, p50 0.37 ms, p99 0.68 ms;
- 12 × 22/21 bits, 2-bit probes on 8 tables, 1-bit on 4 (9.3 k): 977 MB, p50 0.23 ms, p99
  0.34–0.45 ms;
- 11 × 24/23 bits, 2-bit probes on 10 tables, 1-bit on 1 (5.7 k): 1259 MB, p50 0.16–0.19 ms,
  p99 0.31–0.37 ms (one noisy run 0.72): the fastest, and within the 1.5 GB goal, though its
  dense offset arrays (2^23–2^24 entries a table) cost 448 MB of the 1259.

At 1 M codes the same comparison puts 12 × 22/21 (213 MB, p50 0.063 ms) and 13 × 20/19 (133 MB,
0.067 ms) ahead of 11 × 24/23 (529 MB, 0.098 ms: offsets dominate, buckets mostly empty).
`choose_layout(n)` therefore takes substrings of about log2(n) bits (Norouzi's rule m ≈ 256 /
log2 n: a few codes a bucket at any size), clamped to 14–22: 11 tables at 10 M, 12 at 1 M, 18 at
20 k. Each query's scattered reads are issued as three batches (bucket bounds, row numbers,
candidate codes) with software prefetch 16 reads ahead; on this machine a dependent read from
memory takes ~350 ns and pipelined ones ~15 ns, and the prefetching halved the query time.

Changes after a build: adds go to a small flat "delta" (scanned linearly, ~1–2 µs per thousand
codes, so ≤ ~60 µs at the default limit of 32 768), merged into a rebuilt main structure when it
passes `delta_limit` (10 M codes rebuild in ~13–30 s here); removes set a byte in a
tombstone array, and tombstoned rows are dropped at the next rebuild. Main rows are kept sorted by
external id, so an id's rows are found by binary search with no extra map.

Kernels are compiled by numba (cached on disk, `nogil`): the probe loop is branchy and per-query
work is a few thousand scattered reads, which numpy cannot express without materialising every
candidate several times.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from firebreak.errors import FirebreakError
from firebreak.index.hamming import IndexHit
from firebreak.signals.base import HASH_BITS, HASH_BYTES

Codes = npt.NDArray[np.uint8]
Ids = npt.NDArray[np.int64]
Words = npt.NDArray[np.uint64]

_MAGIC = b"FBMIH001"
_ALIGN = 64
_WORDS = HASH_BITS // 64
DEFAULT_DELTA_LIMIT = 32_768
# A linear scan reads a code in ~1 ns; a probe or a candidate is a scattered read (~10 ns). When
# the probe plan costs more than a scan, scan: exact for any radius, and cheap for tiny indices.
_SCAN_COST_RATIO = 8.0
# How many loads ahead the search kernel prefetches: enough to cover ~350 ns of latency.
_AHEAD = 16
# (table start bits, table widths, table probe radii, offset array starts, probe masks, table of
# each probe): everything a search needs to know about the layout for one radius.
_PlanArrays = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]


class IndexFormatError(FirebreakError, RuntimeError):
    """A file that is not a Firebreak MIH snapshot, is damaged or cannot be read. Also a
    RuntimeError, as faiss's read errors are, so a caller that rebuilds an index from the store
    when its faiss file is unreadable (persisted.py) does the same for this one."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _jit(function: Callable[..., Any], inline: bool = False) -> Callable[..., Any]:
    options: dict[str, Any] = {"cache": True, "nogil": True}
    if inline:
        options["inline"] = "always"
    return cast(Callable[..., Any], numba.njit(**options)(function))


def _popcount_intrinsic(typingctx: Any, value: Any) -> Any:
    """The CPU's popcnt on a uint64 (numba has no built-in for it)."""
    if value != types.uint64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


def _prefetch_intrinsic(typingctx: Any, array: Any, index: Any) -> Any:
    """A hint to start loading `array.flat[index]` into cache now (LLVM's prefetch)."""
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = _cgutils.get_item_pointer(
            context, builder, array_type, view, [args[1]], wraparound=False
        )
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
        function = _cgutils.get_or_insert_function(
            builder.module, function_type, "llvm.prefetch.p0"
        )
        # read, keep in all cache levels, data cache
        arguments = [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)]
        builder.call(function, arguments)
        return context.get_dummy_value()

    return types.void(array, index), codegen


_cgutils: Any = cgutils

# Both are called from compiled code only; typed as Any for mypy.
_popcount: Any = intrinsic(_popcount_intrinsic)
_prefetch: Any = intrinsic(_prefetch_intrinsic)


def _extract_py(words: Words, row: int, start: int, width: int) -> Any:
    """Bits [start, start + width) of a 256-bit code stored as 4 little-endian uint64 words."""
    word = start >> 6
    shift = start & 63
    value = words[row, word] >> np.uint64(shift)
    if shift + width > 64:
        value |= words[row, word + 1] << np.uint64(64 - shift)
    return np.int64(value & np.uint64((1 << width) - 1))


def _extract_xor_py(x: Words, start: int, width: int) -> Any:
    """`_extract` on a 4-word scratch vector (the XOR of a query and a candidate)."""
    word = start >> 6
    shift = start & 63
    value = x[word] >> np.uint64(shift)
    if shift + width > 64:
        value |= x[word + 1] << np.uint64(64 - shift)
    return np.int64(value & np.uint64((1 << width) - 1))


_extract = _jit(_extract_py, inline=True)
_extract_xor = _jit(_extract_xor_py, inline=True)


def _distance_py(queries: Words, qi: int, codes: Words, row: int, x: Words) -> Any:
    total = np.uint64(0)
    for w in range(4):
        x[w] = queries[qi, w] ^ codes[row, w]
        total += _popcount(x[w])
    return np.int64(total)


_distance = _jit(_distance_py, inline=True)


def _search_tables_py(
    queries: Words,
    codes: Words,
    rows: npt.NDArray[np.uint32],
    offsets: npt.NDArray[np.uint32],
    plan: _PlanArrays,
    deleted: npt.NDArray[np.uint8],
    max_distance: int,
    first_query: int,
    out_query: npt.NDArray[np.int64],
    out_row: npt.NDArray[np.int64],
    out_distance: npt.NDArray[np.int64],
) -> tuple[int, int]:
    """Probe every table's buckets within its radius, verify candidates, write hits.

    In passes per query — the bucket bounds of every probe, then the row numbers in those
    buckets, then each candidate's distance — with each pass prefetching the scattered reads a
    few steps ahead: on this machine a read from memory takes ~350 ns when it waits for the one
    before and ~15 ns when many are in flight, and a query is a few thousand such reads.

    Returns (next query to do, hits written). Hits of a query that do not fit in the output stop
    the kernel before that query, so the caller can grow the buffers and resume there.
    """
    table_starts, table_bits, offset_starts, masks, mask_table = (
        plan[0],
        plan[1],
        plan[3],
        plan[4],
        plan[5],
    )
    n_tables = table_bits.shape[0]
    n_probes = masks.shape[0]
    n_rows = codes.shape[0]
    capacity = out_query.shape[0]
    rows_flat = rows.reshape(-1)
    codes_flat = codes.reshape(-1)
    x = np.zeros(4, dtype=np.uint64)
    keys = np.empty(n_tables, dtype=np.int64)
    probe = np.empty(n_probes, dtype=np.int64)
    probe_lo = np.empty(n_probes, dtype=np.int64)
    probe_hi = np.empty(n_probes, dtype=np.int64)
    batch = 4096
    cand_row = np.empty(batch, dtype=np.int64)
    cand_table = np.empty(batch, dtype=np.int64)
    written = 0
    for qi in range(first_query, queries.shape[0]):
        mark = written
        for t in range(n_tables):
            keys[t] = _extract(queries, qi, table_starts[t], table_bits[t])
        for b in range(n_probes):
            t = mask_table[b]
            probe[b] = offset_starts[t] + (keys[t] ^ masks[b])
        for b in range(n_probes):
            if b + _AHEAD < n_probes:
                _prefetch(offsets, probe[b + _AHEAD])
            probe_lo[b] = mask_table[b] * n_rows + offsets[probe[b]]
            probe_hi[b] = mask_table[b] * n_rows + offsets[probe[b] + 1]
        n_cand = 0
        for b in range(n_probes):
            if b + _AHEAD < n_probes:
                _prefetch(rows_flat, probe_lo[b + _AHEAD])
            t = mask_table[b]
            for p in range(probe_lo[b], probe_hi[b]):
                cand_row[n_cand] = rows_flat[p]
                cand_table[n_cand] = t
                n_cand += 1
                if n_cand == batch:
                    written = _verify(
                        queries, qi, codes, codes_flat, deleted, max_distance, cand_row,
                        cand_table, n_cand, plan, x, out_query, out_row, out_distance, written,
                    )  # fmt: skip
                    n_cand = 0
        written = _verify(
            queries, qi, codes, codes_flat, deleted, max_distance, cand_row,
            cand_table, n_cand, plan, x, out_query, out_row, out_distance, written,
        )  # fmt: skip
        if written > capacity:
            return qi, mark
    return queries.shape[0], written


def _verify_py(
    queries: Words,
    qi: int,
    codes: Words,
    codes_flat: Words,
    deleted: npt.NDArray[np.uint8],
    max_distance: int,
    cand_row: npt.NDArray[np.int64],
    cand_table: npt.NDArray[np.int64],
    n_cand: int,
    plan: _PlanArrays,
    x: Words,
    out_query: npt.NDArray[np.int64],
    out_row: npt.NDArray[np.int64],
    out_distance: npt.NDArray[np.int64],
    written: int,
) -> int:
    """Full distance of each candidate; a hit counts in the first table that can reach it."""
    table_starts, table_bits, table_radii = plan[0], plan[1], plan[2]
    capacity = out_query.shape[0]
    for j in range(n_cand):
        if j + _AHEAD < n_cand:
            _prefetch(codes_flat, cand_row[j + _AHEAD] * 4)
        row = cand_row[j]
        d = _distance(queries, qi, codes, row, x)
        if d > max_distance or deleted[row]:
            continue
        seen = False
        for t2 in range(cand_table[j]):
            r2 = table_radii[t2]
            if r2 >= 0:
                sub = np.uint64(_extract_xor(x, table_starts[t2], table_bits[t2]))
                if np.int64(_popcount(sub)) <= r2:
                    seen = True
                    break
        if seen:
            continue
        if written < capacity:
            out_query[written] = qi
            out_row[written] = row
            out_distance[written] = d
        written += 1
    return written


def _scan_py(
    queries: Words,
    codes: Words,
    deleted: npt.NDArray[np.uint8],
    max_distance: int,
    first_query: int,
    out_query: npt.NDArray[np.int64],
    out_row: npt.NDArray[np.int64],
    out_distance: npt.NDArray[np.int64],
) -> tuple[int, int]:
    """Every live code against every query: the delta, tiny indices and huge radii."""
    capacity = out_query.shape[0]
    x = np.zeros(4, dtype=np.uint64)
    written = 0
    for qi in range(first_query, queries.shape[0]):
        mark = written
        for row in range(codes.shape[0]):
            d = _distance(queries, qi, codes, row, x)
            if d <= max_distance and not deleted[row]:
                if written < capacity:
                    out_query[written] = qi
                    out_row[written] = row
                    out_distance[written] = d
                written += 1
        if written > capacity:
            return qi, mark
    return queries.shape[0], written


def _build_table_py(
    codes: Words,
    start: int,
    width: int,
    offsets: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.uint32],
) -> None:
    """One table by counting sort: `rows` ← row numbers ordered by substring (stable),
    `offsets[k]` ← position of the first row whose substring is k."""
    n_buckets = offsets.shape[0] - 1
    keys = np.empty(codes.shape[0], dtype=np.uint32)
    counts = np.zeros(n_buckets + 1, dtype=np.uint32)
    for row in range(codes.shape[0]):
        key = _extract(codes, row, start, width)
        keys[row] = key
        counts[key + 1] += 1
    for k in range(n_buckets):
        counts[k + 1] += counts[k]
    for k in range(n_buckets + 1):
        offsets[k] = counts[k]
    for row in range(keys.shape[0]):
        key = keys[row]
        rows[counts[key]] = row
        counts[key] += 1


_verify = _jit(_verify_py)
_search_tables = _jit(_search_tables_py)
_scan = _jit(_scan_py)
_build_table = _jit(_build_table_py)


@dataclass(frozen=True)
class Layout:
    """How the 256 bits are cut into table substrings: contiguous runs of `bits[t]` bits."""

    bits: tuple[int, ...]

    def __post_init__(self) -> None:
        if sum(self.bits) != HASH_BITS or not all(1 <= b <= 30 for b in self.bits):
            raise ValueError(f"substring widths must be 1..30 bits and cover {HASH_BITS}")

    @classmethod
    def even(cls, tables: int) -> Layout:
        """`tables` substrings as equal as possible, wider ones first."""
        width, extra = divmod(HASH_BITS, tables)
        return cls(tuple(width + 1 if t < extra else width for t in range(tables)))

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(int(s) for s in np.cumsum((0, *self.bits[:-1])))

    def radii(self, max_distance: int) -> tuple[int, ...]:
        """Probe radius per table for an exact search within `max_distance` (see module doc).

        The `a + 1` tables probed one bit further are the widest ones: a wider table has
        sparser buckets, so its extra probes bring fewer candidates.
        """
        m = len(self.bits)
        q, a = divmod(max_distance, m)
        order = sorted(range(m), key=lambda t: -self.bits[t])
        radii = [q - 1] * m
        for t in order[: a + 1]:
            radii[t] = q
        return tuple(radii)

    def probe_cost(self, max_distance: int, n: int) -> float:
        """Expected bucket lookups plus candidates per query on uniformly spread codes."""
        cost = 0.0
        for width, radius in zip(self.bits, self.radii(max_distance), strict=True):
            if radius >= 0:
                probes = sum(math.comb(width, k) for k in range(min(radius, width) + 1))
                cost += probes * (1.0 + n / 2.0**width)
        return cost


def choose_layout(n: int) -> Layout:
    """Substrings of about log2(n) bits (14–22): buckets of a few codes at any size."""
    width = min(22, max(14, round(math.log2(max(n, 2)))))
    return Layout.even(HASH_BITS // width)


@dataclass(frozen=True)
class _Main:
    """The built structure: codes and ids sorted by id, and one (rows, offsets) pair a table."""

    layout: Layout
    codes: Words  # N × 4 uint64
    ids: Ids  # N, ascending
    rows: npt.NDArray[np.uint32]  # tables × N
    offsets: npt.NDArray[np.uint32]  # concatenated, 2^bits + 1 per table
    offset_starts: npt.NDArray[np.int64]  # tables + 1
    deleted: npt.NDArray[np.uint8]  # N, 1 = removed
    plans: dict[int, _PlanArrays | None] = field(default_factory=dict, compare=False)

    @property
    def nbytes(self) -> int:
        arrays = (self.codes, self.ids, self.rows, self.offsets, self.deleted)
        return int(sum(a.nbytes for a in arrays))


@dataclass(frozen=True)
class SearchResult:
    """Hits as parallel arrays (no Python object per hit), sorted by query, distance, id."""

    query_rows: Ids
    ids: Ids
    distances: Ids

    def hits(self) -> list[IndexHit]:
        return [
            IndexHit(int(q), int(i), int(d))
            for q, i, d in zip(self.query_rows, self.ids, self.distances, strict=True)
        ]


class MIHIndex:
    """Ids → 256-bit codes; exact radius search by multi-index hashing; same interface as
    `HammingIndex`. Ids need not be unique: removing an id removes every row that has it."""

    def __init__(self, delta_limit: int = DEFAULT_DELTA_LIMIT, layout: Layout | None = None):
        self.delta_limit = delta_limit
        self._fixed_layout = layout
        self._main: _Main | None = None
        self._live_main = 0
        self._delta_codes: Words = np.zeros((0, _WORDS), dtype=np.uint64)
        self._delta_ids: Ids = np.zeros(0, dtype=np.int64)

    # --- size and memory -------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live_main + len(self._delta_ids)

    @property
    def layout(self) -> Layout | None:
        return self._main.layout if self._main is not None else None

    @property
    def delta_size(self) -> int:
        return len(self._delta_ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by the structure's arrays (mapped or not)."""
        main = self._main.nbytes if self._main is not None else 0
        return main + self._delta_codes.nbytes + self._delta_ids.nbytes

    # --- changes ---------------------------------------------------------------------------

    def add(self, ids: Ids, codes: Codes) -> None:
        """Into the delta; when that passes `delta_limit`, everything is rebuilt at once."""
        if len(ids) != len(codes):
            raise ValueError("ids and codes differ in length")
        if len(ids) == 0:
            return
        words = _as_words(codes)
        ids = np.asarray(ids, dtype=np.int64)
        if len(self._delta_ids) + len(ids) > self.delta_limit:
            self._rebuild(ids, words)
        else:
            self._delta_codes = np.concatenate([self._delta_codes, words])
            self._delta_ids = np.concatenate([self._delta_ids, ids])

    def remove(self, ids: Ids) -> None:
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        if len(wanted) == 0:
            return
        if len(self._delta_ids):
            keep = ~np.isin(self._delta_ids, wanted)
            self._delta_ids = self._delta_ids[keep]
            self._delta_codes = self._delta_codes[keep]
        main = self._main
        if main is None:
            return
        lo = np.searchsorted(main.ids, wanted, side="left")
        hi = np.searchsorted(main.ids, wanted, side="right")
        spans = hi - lo
        if spans.sum() == 0:
            return
        rows = np.repeat(lo, spans) + _ranges(spans)
        newly = rows[main.deleted[rows] == 0]
        main.deleted[newly] = 1
        self._live_main -= len(newly)
        if self._live_main < len(main.ids) // 2:
            self.merge()

    def merge(self) -> None:
        """Rebuild the main structure from its live rows and the delta (drops tombstones)."""
        self._rebuild(np.zeros(0, dtype=np.int64), np.zeros((0, _WORDS), dtype=np.uint64))

    def _rebuild(self, new_ids: Ids, new_words: Words) -> None:
        """One copy of the live codes, the old tables freed before the new ones are made: the
        peak is the old codes + the new structure, not two structures."""
        parts_codes = [self._delta_codes, new_words]
        parts_ids = [self._delta_ids, new_ids]
        old = self._main
        if old is not None:
            live = old.deleted == 0
            if live.all():
                parts_codes.insert(0, np.asarray(old.codes))
                parts_ids.insert(0, np.asarray(old.ids))
            else:
                parts_codes.insert(0, np.asarray(old.codes)[live])
                parts_ids.insert(0, np.asarray(old.ids)[live])
        nonempty = [i for i, part in enumerate(parts_ids) if len(part)]
        if len(nonempty) == 1:
            # One part: no concatenated copy. The caller's own arrays are copied (by the sort,
            # or here), so that changing them later cannot change the index.
            codes, ids = parts_codes[nonempty[0]], parts_ids[nonempty[0]]
            if codes is new_words and _is_sorted(ids):
                codes, ids = codes.copy(), ids.copy()
        else:
            codes, ids = np.concatenate(parts_codes), np.concatenate(parts_ids)
        del parts_codes, parts_ids
        self._main = None
        self._live_main = 0
        del old
        self._main = _build(ids, codes, self._fixed_layout or choose_layout(len(ids)))
        self._live_main = len(ids)
        self._delta_codes = np.zeros((0, _WORDS), dtype=np.uint64)
        self._delta_ids = np.zeros(0, dtype=np.int64)

    # --- search ----------------------------------------------------------------------------

    def search_radius(self, queries: Codes, max_distance: int) -> list[IndexHit]:
        """Every (query, id) pair at Hamming distance ≤ `max_distance`."""
        return self.search(queries, max_distance).hits()

    def search(self, queries: Codes, max_distance: int) -> SearchResult:
        """As `search_radius`, as arrays; sorted by query row, then distance, then id."""
        words = _as_words(queries)
        parts: list[tuple[Ids, Ids, Ids]] = []
        if max_distance >= 0 and len(words):
            main = self._main
            if main is not None and self._live_main:
                q, rows, d = _search_main(main, words, max_distance)
                if len(q):
                    parts.append((q, np.asarray(main.ids)[rows], d))
            if len(self._delta_ids):
                none_deleted = np.zeros(len(self._delta_ids), dtype=np.uint8)
                q, rows, d = _run(
                    lambda first, oq, orow, od: _scan(
                        words, self._delta_codes, none_deleted, max_distance, first, oq, orow, od
                    ),
                    len(words),
                )
                if len(q):
                    parts.append((q, self._delta_ids[rows], d))
        return _sorted_result(parts)

    # --- persistence -----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """One file: a JSON header, then each array raw at a 64-byte aligned offset, so `load`
        maps it instead of reading it. Written beside `path` and renamed into place."""
        arrays: dict[str, np.ndarray[Any, Any]] = {
            "delta_codes": self._delta_codes,
            "delta_ids": self._delta_ids,
        }
        main = self._main
        if main is not None:
            arrays |= {
                "codes": np.asarray(main.codes),
                "ids": np.asarray(main.ids),
                "rows": np.asarray(main.rows),
                "offsets": np.asarray(main.offsets),
                "offset_starts": np.asarray(main.offset_starts),
                "deleted": np.asarray(main.deleted),
            }
        header: dict[str, Any] = {
            "format": 1,
            "layout": list(main.layout.bits) if main is not None else None,
            "delta_limit": self.delta_limit,
            "fixed_layout": list(self._fixed_layout.bits) if self._fixed_layout else None,
            "arrays": {},
        }
        specs: dict[str, dict[str, Any]] = {}
        position = 0
        for name, array in arrays.items():
            specs[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": position}
            position += _aligned(array.nbytes)
        header["arrays"] = specs
        blob = json.dumps(header).encode()
        # Array offsets are relative to the first aligned byte after the header.
        data_start = _aligned(len(_MAGIC) + 8 + len(blob))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(_MAGIC + len(blob).to_bytes(8, "little") + blob)
                for name, array in arrays.items():
                    f.seek(data_start + specs[name]["offset"])
                    f.write(np.ascontiguousarray(array).data)
                f.truncate(data_start + position)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> MIHIndex:
        """Map a saved snapshot: seconds at any size; pages are read as queries touch them.
        Tombstones are mapped copy-on-write, so removes never write to the file."""
        try:
            with path.open("rb") as f:
                if f.read(len(_MAGIC)) != _MAGIC:
                    raise IndexFormatError(path, "not a Firebreak MIH index")
                size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(size))
            data_start = _aligned(len(_MAGIC) + 8 + size)
            specs = header["arrays"]
            file_size = path.stat().st_size

            def mapped(name: str, mode: Literal["r", "c"] = "r") -> np.ndarray[Any, Any]:
                spec = specs[name]
                shape = tuple(spec["shape"])
                dtype = np.dtype(spec["dtype"])
                offset = data_start + int(spec["offset"])
                if offset + dtype.itemsize * math.prod(shape) > file_size:
                    raise IndexFormatError(path, f"array {name} runs past the end of the file")
                if math.prod(shape) == 0:
                    return np.zeros(shape, dtype=dtype)
                return np.memmap(path, dtype=dtype, mode=mode, offset=offset, shape=shape)

            fixed = header.get("fixed_layout")
            index = cls(header["delta_limit"], Layout(tuple(fixed)) if fixed else None)
            index._delta_codes = np.array(mapped("delta_codes"), dtype=np.uint64)
            index._delta_ids = np.array(mapped("delta_ids"), dtype=np.int64)
            if header["layout"] is not None:
                main = _Main(
                    Layout(tuple(header["layout"])),
                    mapped("codes"),
                    mapped("ids"),
                    mapped("rows"),
                    mapped("offsets"),
                    mapped("offset_starts"),
                    mapped("deleted", "c"),
                )
                _check_main(path, main)
                index._main = main
                index._live_main = len(main.ids) - int(np.count_nonzero(main.deleted))
            return index
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise IndexFormatError(path, f"damaged index header ({exc})") from exc
        except OSError as exc:
            raise IndexFormatError(path, f"cannot read ({exc.strerror or exc})") from exc


# --- building ----------------------------------------------------------------------------------


def _build(ids: Ids, words: Words, layout: Layout) -> _Main:
    """Sort rows by id, then build the tables on parallel threads (the kernels drop the GIL)."""
    if len(ids) >= 2**32 - 1:
        raise ValueError("one MIH index holds fewer than 2^32 codes; shard beyond that")
    if not _is_sorted(ids):
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        words = words[order]
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    words = np.ascontiguousarray(words, dtype=np.uint64)
    n = len(ids)
    bits = np.array(layout.bits, dtype=np.int64)
    offset_starts = np.concatenate([[0], np.cumsum((1 << bits) + 1)]).astype(np.int64)
    offsets = np.empty(int(offset_starts[-1]), dtype=np.uint32)
    rows = np.empty((len(bits), n), dtype=np.uint32)

    def build_table(t: int) -> None:
        segment = offsets[offset_starts[t] : offset_starts[t + 1]]
        _build_table(words, layout.starts[t], layout.bits[t], segment, rows[t])

    workers = max(1, min(len(bits), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(build_table, range(len(bits))))
    return _Main(layout, words, ids, rows, offsets, offset_starts, np.zeros(n, dtype=np.uint8))


def _check_main(path: Path, main: _Main) -> None:
    """Types, shapes and bucket bounds of a mapped structure: the kernels do not check bounds,
    so a damaged file must fail here rather than crash a search. (The bounds of every bucket are
    not read: that would touch every page; the first and last of each table are.)"""
    n = len(main.ids)
    bits = np.array(main.layout.bits, dtype=np.int64)
    expected = np.concatenate([[0], np.cumsum((1 << bits) + 1)])
    types_ok = (
        main.codes.dtype == np.uint64
        and main.ids.dtype == np.int64
        and main.rows.dtype == np.uint32
        and main.offsets.dtype == np.uint32
        and main.offset_starts.dtype == np.int64
        and main.deleted.dtype == np.uint8
    )
    if (
        not types_ok
        or main.codes.shape != (n, _WORDS)
        or main.rows.shape != (len(bits), n)
        or main.deleted.shape != (n,)
        or not np.array_equal(np.asarray(main.offset_starts), expected)
        or main.offsets.shape != (int(expected[-1]),)
    ):
        raise IndexFormatError(path, "arrays do not match the layout")
    firsts = np.asarray(main.offsets)[expected[:-1]]
    lasts = np.asarray(main.offsets)[expected[1:] - 1]
    if firsts.any() or not np.all(lasts == n):
        raise IndexFormatError(path, "bucket bounds do not match the number of codes")


# --- searching ---------------------------------------------------------------------------------

_Kernel = Callable[
    [int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]], tuple[int, int]
]


def _plan(main: _Main, max_distance: int) -> _PlanArrays | None:
    """The probe plan for a radius (cached on the structure), or None when a scan is cheaper."""
    if max_distance in main.plans:
        return main.plans[max_distance]
    layout = main.layout
    plan: _PlanArrays | None = None
    if layout.probe_cost(max_distance, len(main.ids)) * _SCAN_COST_RATIO < len(main.ids):
        radii = layout.radii(max_distance)
        masks: list[int] = []
        mask_table: list[int] = []
        for t, (width, radius) in enumerate(zip(layout.bits, radii, strict=True)):
            for k in range(radius + 1):
                for bits in itertools.combinations(range(width), k):
                    masks.append(sum(1 << b for b in bits))
                    mask_table.append(t)
        plan = (
            np.array(layout.starts, dtype=np.int64),
            np.array(layout.bits, dtype=np.int64),
            np.array(radii, dtype=np.int64),
            np.asarray(main.offset_starts, dtype=np.int64),
            np.array(masks, dtype=np.int64),
            np.array(mask_table, dtype=np.int64),
        )
    main.plans[max_distance] = plan
    return plan


def _search_main(main: _Main, words: Words, max_distance: int) -> tuple[Ids, Ids, Ids]:
    plan = _plan(main, max_distance)
    if plan is None:
        return _run(
            lambda first, oq, orow, od: _scan(
                words, main.codes, main.deleted, max_distance, first, oq, orow, od
            ),
            len(words),
        )
    return _run(
        lambda first, oq, orow, od: _search_tables(
            words,
            main.codes,
            main.rows,
            main.offsets,
            plan,
            main.deleted,
            max_distance,
            first,
            oq,
            orow,
            od,
        ),
        len(words),
    )


def _run(kernel: _Kernel, n_queries: int) -> tuple[Ids, Ids, Ids]:
    """Call a kernel until every query is done, doubling the output when one query's hits do
    not fit (a query near a large cluster of near-duplicate frames can have thousands)."""
    capacity = max(256, 4 * n_queries)
    chunks: list[tuple[Ids, Ids, Ids]] = []
    first = 0
    while first < n_queries:
        oq = np.empty(capacity, dtype=np.int64)
        orow = np.empty(capacity, dtype=np.int64)
        od = np.empty(capacity, dtype=np.int64)
        done, written = kernel(first, oq, orow, od)
        chunks.append((oq[:written], orow[:written], od[:written]))
        if done == first:
            capacity *= 2
        first = done
    if len(chunks) == 1:
        return chunks[0]
    return (
        np.concatenate([c[0] for c in chunks]),
        np.concatenate([c[1] for c in chunks]),
        np.concatenate([c[2] for c in chunks]),
    )


def _sorted_result(parts: Sequence[tuple[Ids, Ids, Ids]]) -> SearchResult:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return SearchResult(empty, empty, empty)
    if len(parts) == 1:
        q, ids, d = parts[0]
    else:
        q = np.concatenate([p[0] for p in parts])
        ids = np.concatenate([p[1] for p in parts])
        d = np.concatenate([p[2] for p in parts])
    if len(q) > 1:
        order = np.lexsort((ids, d, q))
        q, ids, d = q[order], ids[order], d[order]
    return SearchResult(q, ids, d)


# --- helpers -----------------------------------------------------------------------------------


def _as_words(codes: Codes) -> Words:
    array = np.ascontiguousarray(codes, dtype=np.uint8)
    if array.ndim != 2 or array.shape[1] != HASH_BYTES:
        raise ValueError(f"codes must be N×{HASH_BYTES} uint8, got {array.shape}")
    return array.view("<u8").astype(np.uint64, copy=False).reshape(-1, _WORDS)


def _is_sorted(ids: Ids) -> bool:
    return len(ids) < 2 or bool(np.all(ids[1:] >= ids[:-1]))


def _ranges(lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """[0..l0), [0..l1), ... concatenated."""
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - starts


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN
