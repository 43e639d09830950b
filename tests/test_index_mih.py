"""The MIH index is exact: it returns what brute force returns, at the edge of the radius, on
clustered banks, after adds and removes, after a save and a memory-mapped load; shards merge to
the unsharded answer; the scale bench runs end to end on a small size."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from firebreak.bench.index_scale import format_report, make_codes, make_queries, run_index_bench
from firebreak.index import HammingIndex, IndexHit, brute_force_radius_search
from firebreak.index.mih import IndexFormatError, Layout, MIHIndex, choose_layout
from firebreak.index.shards import ShardedIndex, by_bank, by_prefix

Hits = set[tuple[int, int, int]]


def _as_set(hits: list[IndexHit]) -> Hits:
    return {(h.query_row, h.id, h.distance) for h in hits}


def _flip_bits(code: np.ndarray, bits: list[int]) -> np.ndarray:
    """Flip bit k of a code, numbered as the index numbers them (little-endian 64-bit words)."""
    out = code.copy()
    for k in bits:
        out[k // 8] ^= np.uint8(1 << (k % 8))
    return out


def _plant_evenly(
    rng: np.random.Generator, code: np.ndarray, layout: Layout, distance: int
) -> np.ndarray:
    """A copy of `code` at exactly `distance` bits, the flips spread as evenly as possible over
    the layout's substrings in a random order: the case the pigeonhole bound is tight for."""
    m = len(layout.bits)
    per_table = np.full(m, distance // m)
    per_table[rng.permutation(m)[: distance % m]] += 1
    bits: list[int] = []
    for start, width, count in zip(layout.starts, layout.bits, per_table, strict=True):
        bits += (start + rng.choice(width, size=int(count), replace=False)).tolist()
    return _flip_bits(code, bits)


def _random_copy(rng: np.random.Generator, code: np.ndarray, distance: int) -> np.ndarray:
    return _flip_bits(code, rng.choice(256, size=distance, replace=False).tolist())


def _bank(rng: np.random.Generator, n: int, clustered: bool) -> tuple[np.ndarray, np.ndarray]:
    codes = make_codes("clustered" if clustered else "random", n, int(rng.integers(1 << 30)))
    ids = rng.choice(10**12, size=n, replace=False).astype(np.int64)
    return ids, codes


def _adversarial_queries(rng: np.random.Generator, codes: np.ndarray, layout: Layout) -> np.ndarray:
    """Copies at 0–40 bits, spread evenly over the substrings and at random, plus strangers."""
    rows = rng.integers(0, len(codes), size=140)
    distances = [*range(41), *([30, 31, 32] * 20), *range(41)]
    even = [_plant_evenly(rng, codes[r], layout, d) for r, d in zip(rows, distances, strict=False)]
    scattered = [
        _random_copy(rng, codes[r], d) for r, d in zip(rows[::-1], range(41), strict=False)
    ]
    strangers = rng.integers(0, 256, size=(10, 32), dtype=np.uint8)
    return np.vstack([*even, *scattered, strangers])


def _built(ids: np.ndarray, codes: np.ndarray, layout: Layout | None = None) -> MIHIndex:
    index = MIHIndex(delta_limit=0, layout=layout)
    index.add(ids, codes)
    assert index.delta_size == 0 and index.layout is not None
    return index


@pytest.mark.parametrize("clustered", [False, True])
def test_radius_search_equals_brute_force_at_the_edge_of_the_radius(clustered: bool) -> None:
    rng = np.random.default_rng(11 + clustered)
    ids, codes = _bank(rng, 20_000, clustered)
    index = _built(ids, codes)
    assert index.layout == choose_layout(20_000)
    queries = _adversarial_queries(rng, codes, index.layout)

    within_32 = _as_set(brute_force_radius_search(ids, codes, queries, 32))
    for radius in (0, 1, 7, 17, 23, 24, 30, 31, 32):
        expected = {hit for hit in within_32 if hit[2] <= radius}
        assert _as_set(index.search_radius(queries, radius)) == expected, radius

    # The planted copies at exactly 31 are found and those at exactly 32 are not.
    hits_31 = _as_set(index.search_radius(queries, 31))
    assert any(d == 31 for _, _, d in hits_31)
    assert all(d <= 31 for _, _, d in hits_31)


@pytest.mark.parametrize("tables", [11, 12, 16])
def test_the_large_bank_layouts_are_exact_for_radius_31(tables: int) -> None:
    """The layouts used at 1–10 M codes, on a small bank (their offset arrays are full size)."""
    rng = np.random.default_rng(tables)
    ids, codes = _bank(rng, 5_000, clustered=False)
    layout = Layout.even(tables)
    index = _built(ids, codes, layout)
    queries = _adversarial_queries(rng, codes, layout)

    within_32 = _as_set(brute_force_radius_search(ids, codes, queries, 32))
    for radius in (23, 31, 32):
        expected = {hit for hit in within_32 if hit[2] <= radius}
        assert _as_set(index.search_radius(queries, radius)) == expected, radius


def test_probe_radii_follow_the_pigeonhole_bound() -> None:
    layout = Layout.even(11)  # 3 × 24 + 8 × 23 bits
    assert layout.bits == (24, 24, 24, *(23,) * 8)
    # 31 = 11·2 + 9: ten tables at 2 bits (the widest first), one at 1 bit.
    assert layout.radii(31) == (2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1)
    # 5 = 11·0 + 5: six tables at 0 bits, five not probed at all.
    assert layout.radii(5) == (0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1)
    for r in range(64):
        radii = layout.radii(r)
        # Missed by every table ⇒ distance ≥ Σ (radius + 1) = r + 1.
        assert sum(x + 1 for x in radii) == r + 1


def test_same_answers_as_the_faiss_index_through_the_same_interface() -> None:
    rng = np.random.default_rng(5)
    ids, codes = _bank(rng, 3_000, clustered=True)
    queries = np.vstack([_random_copy(rng, codes[i], i % 40) for i in range(120)])
    faiss_index = HammingIndex()
    faiss_index.add(ids, codes)
    mih = _built(ids, codes)

    assert _as_set(mih.search_radius(queries, 31)) == _as_set(
        faiss_index.search_radius(queries, 31)
    )
    assert len(mih) == len(faiss_index) == 3_000


def test_huge_radii_and_empty_cases() -> None:
    rng = np.random.default_rng(6)
    ids, codes = _bank(rng, 2_000, clustered=False)
    index = _built(ids, codes)
    queries = rng.integers(0, 256, size=(4, 32), dtype=np.uint8)

    for radius in (100, 128, 256):  # more probes than codes: a scan, still exact
        expected = _as_set(brute_force_radius_search(ids, codes, queries, radius))
        assert _as_set(index.search_radius(queries, radius)) == expected
    assert len(index.search_radius(queries, 256)) == 4 * 2_000
    assert index.search_radius(queries, -1) == []
    assert index.search_radius(queries[:0], 31) == []
    assert MIHIndex().search_radius(queries, 31) == []
    with pytest.raises(ValueError):
        index.search_radius(np.zeros((1, 31), dtype=np.uint8), 31)


def test_adds_after_a_build_and_removes_stay_exact() -> None:
    rng = np.random.default_rng(9)
    ids, codes = _bank(rng, 20_000, clustered=True)
    index = MIHIndex(delta_limit=1_000)
    index.add(ids[:15_000], codes[:15_000])  # over the limit: built
    assert index.delta_size == 0
    index.add(ids[15_000:15_600], codes[15_000:15_600])  # into the delta
    assert index.delta_size == 600
    removed = np.concatenate([ids[:300], ids[15_000:15_100], [123]])  # main, delta, unknown
    index.remove(removed)
    live = np.isin(ids[:15_600], removed, invert=True)
    live_ids, live_codes = ids[:15_600][live], codes[:15_600][live]
    queries = np.vstack([_random_copy(rng, codes[i], i % 34) for i in range(0, 15_600, 60)])

    expected = _as_set(brute_force_radius_search(live_ids, live_codes, queries, 31))
    assert _as_set(index.search_radius(queries, 31)) == expected
    assert len(index) == len(live_ids)

    index.add(ids[15_600:], codes[15_600:])  # over the limit again: merged, tombstones dropped
    assert index.delta_size == 0
    all_live = np.isin(ids, removed, invert=True)
    expected = _as_set(brute_force_radius_search(ids[all_live], codes[all_live], queries, 31))
    assert _as_set(index.search_radius(queries, 31)) == expected
    assert len(index) == int(all_live.sum())


def test_a_repeated_id_is_returned_for_each_code_and_removed_entirely() -> None:
    rng = np.random.default_rng(10)
    codes = rng.integers(0, 256, size=(3, 32), dtype=np.uint8)
    index = MIHIndex(delta_limit=0)
    index.add(np.array([7, 7, 8], dtype=np.int64), codes)
    assert sorted(h.id for h in index.search_radius(codes, 0)) == [7, 7, 8]
    index.remove(np.array([7], dtype=np.int64))
    assert [h.id for h in index.search_radius(codes, 0)] == [8]
    assert len(index) == 1


def test_saved_index_is_mapped_back_with_the_same_answers(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    ids, codes = _bank(rng, 20_000, clustered=True)
    index = MIHIndex(delta_limit=500)
    index.add(ids[:19_800], codes[:19_800])
    index.add(ids[19_800:], codes[19_800:])  # stays in the delta
    index.remove(ids[:50])
    queries = np.vstack([_random_copy(rng, codes[i], i % 34) for i in range(0, 20_000, 100)])
    path = tmp_path / "frames.mih"
    index.save(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    loaded = MIHIndex.load(path)

    assert isinstance(loaded._main.codes, np.memmap)  # type: ignore[union-attr]
    assert isinstance(loaded._main.rows, np.memmap)  # type: ignore[union-attr]
    assert len(loaded) == len(index) == 20_000 - 50
    assert loaded.delta_size == 200
    assert _as_set(loaded.search_radius(queries, 31)) == _as_set(index.search_radius(queries, 31))
    # Removes and adds after loading change the index in memory, never the mapped file.
    loaded.remove(ids[100:200])
    loaded.add(np.array([1], dtype=np.int64), codes[:1])
    live = np.isin(ids, np.concatenate([ids[:50], ids[100:200]]), invert=True)
    expected = brute_force_radius_search(
        np.concatenate([ids[live], [1]]), np.vstack([codes[live], codes[:1]]), queries, 31
    )
    assert _as_set(loaded.search_radius(queries, 31)) == _as_set(expected)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    # Saving over the file that is mapped is safe (written beside it, renamed into place).
    loaded.save(path)
    assert _as_set(MIHIndex.load(path).search_radius(queries, 31)) == _as_set(expected)


def test_a_file_that_is_not_an_index_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mih"
    junk.write_bytes(b"not an index at all")
    with pytest.raises(IndexFormatError):
        MIHIndex.load(junk)
    index = _built(np.arange(100, dtype=np.int64), make_codes("random", 100, 1))
    index.save(tmp_path / "ok.mih")
    truncated = tmp_path / "short.mih"
    truncated.write_bytes((tmp_path / "ok.mih").read_bytes()[:5_000])
    with pytest.raises(IndexFormatError):
        MIHIndex.load(truncated)


def test_a_faiss_file_or_no_file_is_refused_as_faiss_refuses_one(tmp_path: Path) -> None:
    """persisted.py rebuilds from the store on a RuntimeError (what faiss raises)."""
    old = HammingIndex()
    old.add(np.arange(10, dtype=np.int64), make_codes("random", 10, 1))
    old.save(tmp_path / "frames.faiss")
    for path in (tmp_path / "frames.faiss", tmp_path / "missing.mih"):
        with pytest.raises(IndexFormatError) as caught:
            MIHIndex.load(path)
        assert isinstance(caught.value, RuntimeError)


def test_a_file_with_damaged_bucket_bounds_is_refused(tmp_path: Path) -> None:
    """The kernels trust the bounds; a file whose bounds point past the codes must not load."""
    path = tmp_path / "frames.mih"
    _built(np.arange(1_000, dtype=np.int64), make_codes("random", 1_000, 2)).save(path)
    raw = bytearray(path.read_bytes())
    size = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + size])
    data_start = (16 + size + 63) // 64 * 64
    offsets = header["arrays"]["offsets"]
    last = data_start + offsets["offset"] + 4 * (offsets["shape"][0] - 1)
    raw[last : last + 4] = (10**9).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError):
        MIHIndex.load(path)


def test_an_empty_index_saves_and_loads(tmp_path: Path) -> None:
    MIHIndex().save(tmp_path / "empty.mih")
    loaded = MIHIndex.load(tmp_path / "empty.mih")
    assert len(loaded) == 0
    assert loaded.search_radius(np.zeros((1, 32), dtype=np.uint8), 31) == []


def test_shards_by_prefix_answer_as_one_index() -> None:
    rng = np.random.default_rng(13)
    ids, codes = _bank(rng, 12_000, clustered=True)
    queries = np.vstack([_random_copy(rng, codes[i], i % 36) for i in range(0, 12_000, 50)])
    whole = _built(ids, codes)
    shards = [MIHIndex(delta_limit=0) for _ in range(4)]
    with ShardedIndex(shards, by_prefix(4)) as sharded:
        sharded.add(ids, codes)
        assert all(len(s) > 2_000 for s in shards)  # spread, not all in one
        assert len(sharded) == len(whole)

        fanned = sharded.search_radius(queries, 31)
        assert fanned == whole.search_radius(queries, 31)  # same hits, same order

        sharded.remove(ids[::3])
        whole.remove(ids[::3])
        assert sharded.search_radius(queries, 31) == whole.search_radius(queries, 31)


def test_shards_by_bank_answer_as_one_index() -> None:
    rng = np.random.default_rng(14)
    ids = np.arange(6_000, dtype=np.int64)
    codes = make_codes("random", 6_000, 3)
    bank_of_id = ids % 3  # three banks
    queries = np.vstack([_random_copy(rng, codes[i], i % 34) for i in range(0, 6_000, 40)])
    shards = [MIHIndex(delta_limit=0), HammingIndex()]  # any index with the interface
    route = by_bank(lambda x: bank_of_id[x], {0: 0, 1: 1, 2: 1})
    with ShardedIndex(shards, route) as sharded:
        sharded.add(ids, codes)
        assert len(shards[0]) == 2_000 and len(shards[1]) == 4_000
        expected = brute_force_radius_search(ids, codes, queries, 31)
        assert _as_set(sharded.search_radius(queries, 31)) == _as_set(expected)
        with pytest.raises(ValueError):
            ShardedIndex(shards, by_bank(lambda x: x, {})).add(ids[:1], codes[:1])


def test_bench_queries_are_planted_at_their_distance() -> None:
    codes = make_codes("clustered", 5_000, 4)
    queries, planted = make_queries(codes, 300, 4)
    copies = planted >= 0
    assert copies.sum() == 180 and set(planted[copies]) == set(range(41))
    for query, distance in zip(queries[copies], planted[copies], strict=True):
        nearest = np.unpackbits(codes ^ query, axis=1).sum(axis=1).min()
        assert nearest <= distance


def test_index_bench_runs_end_to_end_on_a_small_size(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_index_bench(
        sizes=(20_000,), queries=120, out_dir=tmp_path, progress=lines.append, recall_queries=120
    )

    rows = {(r["workload"], r["index"]): r for r in report["results"]}
    assert set(rows) == {
        (w, i)
        for w in ("random", "clustered")
        for i in ("faiss-flat", "firebreak-mih", "faiss-mih-12x21")
    }
    for workload in ("random", "clustered"):
        ours = rows[(workload, "firebreak-mih")]
        assert ours["exact"] and ours["recall"] == 1.0 and ours["true_pairs"] >= 60
        assert ours["loaded_answers_same"]
        assert ours["structure_mb"] > 0 and ours["p99_ms"] >= ours["p50_ms"] > 0
        assert 0 < rows[(workload, "faiss-mih-12x21")]["recall"] <= 1.0
    assert Path(report["path"]).exists()
    assert "firebreak-mih" in format_report(report)
    assert any("faiss-flat" in line for line in lines)
