"""The Hamming index is exact: it returns what brute force returns, before and after changes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firebreak.index import (
    CosineIndex,
    HammingIndex,
    brute_force_cosine_search,
    brute_force_radius_search,
)


def _near_copies(rng: np.random.Generator, base: np.ndarray, flips: int) -> np.ndarray:
    bits = np.unpackbits(base, axis=1)
    for row in bits:
        row[rng.choice(256, size=flips, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def _as_set(hits: list) -> set[tuple[int, int, int]]:
    return {(h.query_row, h.id, h.distance) for h in hits}


@given(seed=st.integers(0, 2**32 - 1), radius=st.integers(0, 64), flips=st.integers(0, 48))
@settings(max_examples=40, deadline=None)
def test_radius_search_equals_brute_force(seed: int, radius: int, flips: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    ids = rng.choice(10**9, size=300, replace=False).astype(np.int64)
    queries = np.vstack(
        [_near_copies(rng, codes[:20], flips), rng.integers(0, 256, (5, 32), dtype=np.uint8)]
    )
    index = HammingIndex()
    index.add(ids, codes)

    assert _as_set(index.search_radius(queries, radius)) == _as_set(
        brute_force_radius_search(ids, codes, queries, radius)
    )


def test_removed_ids_are_never_returned_and_others_still_are() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, size=(100, 32), dtype=np.uint8)
    ids = np.arange(1000, 1100, dtype=np.int64)
    index = HammingIndex()
    index.add(ids, codes)

    index.remove(ids[:50])

    hits = index.search_radius(codes, 0)
    assert {h.id for h in hits} == set(ids[50:].tolist())
    assert len(index) == 50


def test_threshold_distance_is_inclusive() -> None:
    base = np.zeros((1, 32), dtype=np.uint8)
    at_31 = _near_copies(np.random.default_rng(1), base, 31)
    at_32 = _near_copies(np.random.default_rng(2), base, 32)
    index = HammingIndex()
    index.add(np.array([1, 2], dtype=np.int64), np.vstack([at_31, at_32]))

    hits = index.search_radius(base, 31)

    assert [(h.id, h.distance) for h in hits] == [(1, 31)]


def test_saved_index_reloads_with_the_same_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    index = HammingIndex()
    index.add(np.arange(50, dtype=np.int64), codes)
    index.save(tmp_path / "i.faiss")

    reloaded = HammingIndex.load(tmp_path / "i.faiss")

    assert _as_set(reloaded.search_radius(codes, 10)) == _as_set(index.search_radius(codes, 10))


@given(seed=st.integers(0, 2**32 - 1), max_distance=st.integers(0, 400))
@settings(max_examples=30, deadline=None)
def test_cosine_search_equals_brute_force(seed: int, max_distance: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(200, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:10] + 0.3 * rng.normal(size=(10, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.arange(200, dtype=np.int64) * 7
    index = CosineIndex(64)
    index.add(ids, vectors)

    fast = index.search_radius(queries, max_distance)
    slow = brute_force_cosine_search(ids, vectors, queries, max_distance)

    # Equal except for float32 rounding exactly at the boundary.
    boundary = {(h.query_row, h.id) for h in slow if abs(h.distance - max_distance) <= 1}
    assert {(h.query_row, h.id) for h in fast} - boundary == {
        (h.query_row, h.id) for h in slow
    } - boundary


def test_another_process_catches_up_step_by_step_without_rebuilding(
    tmp_path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from firebreak.index.persisted import StoreIndex
    from firebreak.service import Firebreak
    from firebreak.settings import Settings
    from firebreak.store import SignalValue

    database = f"sqlite:///{tmp_path / 'shared.db'}"
    writer = Firebreak(Settings(home=tmp_path / "writer", database_url=database))
    reader = Firebreak(Settings(home=tmp_path / "reader", database_url=database))
    writer.create_bank("known")
    rng = np.random.default_rng(7)
    codes = [rng.bytes(32).hex() for _ in range(3)]
    writer.add_hashes("known", "first", [SignalValue("pdq", codes[0])], "t")
    assert [h.item.name for h in reader.lookup_hash("pdq", codes[0])] == ["first"]

    def no_rebuild(self):  # type: ignore[no-untyped-def]
        raise AssertionError("rebuilt the whole index")

    monkeypatch.setattr(StoreIndex, "_rebuild", no_rebuild)
    writer.add_hashes("known", "second", [SignalValue("pdq", codes[1])], "t")
    writer.add_hashes("known", "third", [SignalValue("pdq", codes[2])], "t")
    writer.remove_item("known", "first")

    assert [h.item.name for h in reader.lookup_hash("pdq", codes[1])] == ["second"]
    assert [h.item.name for h in reader.lookup_hash("pdq", codes[2])] == ["third"]
    assert reader.lookup_hash("pdq", codes[0]) == []
    assert len(reader.indexes["frames"]) == 2
    writer.close()
    reader.close()


def test_index_file_older_than_the_store_is_caught_up_from_the_log(
    tmp_path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from firebreak.index.persisted import StoreIndex
    from firebreak.service import Firebreak
    from firebreak.settings import Settings
    from firebreak.store import SignalValue

    settings = Settings(home=tmp_path / "home")
    rng = np.random.default_rng(11)
    codes = [rng.bytes(32).hex() for _ in range(3)]
    first = Firebreak(settings)
    first.create_bank("known")
    first.add_hashes("known", "a", [SignalValue("pdq", codes[0])], "t")
    first.close()  # the index file is written at version 1
    crashed = Firebreak(settings)
    crashed.add_hashes("known", "b", [SignalValue("pdq", codes[1])], "t")
    crashed.add_hashes("known", "c", [SignalValue("pdq", codes[2])], "t")
    crashed.store.close()  # no flush: the file on disk stays behind the store

    def no_rebuild(self):  # type: ignore[no-untyped-def]
        raise AssertionError("rebuilt the whole index")

    monkeypatch.setattr(StoreIndex, "_rebuild", no_rebuild)
    restarted = Firebreak(settings)

    assert [h.item.name for h in restarted.lookup_hash("pdq", codes[2])] == ["c"]
    assert len(restarted.indexes["frames"]) == 3
    restarted.close()
