"""An in-memory inverted index from landmark hashes to banked soundtracks.

`brute_force_search` is the oracle the index is tested against: it compares the hash arrays of
every item directly and aligns the hits with the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from firebreak.signals.audio import (
    DEFAULT_AUDIO_PARAMS,
    AudioFingerprint,
    AudioParams,
    LandmarkAlignment,
    align_landmark_hits,
    best_alignment,
    brute_force_alignment,
    hits_from_rows,
)

Indices = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AudioMatch:
    """A banked soundtrack a query lines up with: item time = offset + speed × query time."""

    item_id: int
    matches: int
    """Distinct query landmarks on the aligned line."""
    score: float
    """Confidence 0..1: 0.5 at `min_matches` aligned landmarks, 1 at twice as many."""
    coverage: float
    """Share of the query's landmarks within the query segment that align, 0..1."""
    speed: float
    """Item seconds per query second (above 1: the copy plays faster)."""
    pitch: float
    """Query frequency over item frequency (1 for tempo changes, the speed for resampling)."""
    offset: float
    query_segment: tuple[float, float]
    item_segment: tuple[float, float]

    @classmethod
    def from_alignment(
        cls, item_id: int, alignment: LandmarkAlignment, min_matches: int
    ) -> AudioMatch:
        return cls(
            item_id=item_id,
            matches=alignment.matches,
            score=min(1.0, alignment.matches / (2.0 * max(1, min_matches))),
            coverage=alignment.coverage,
            speed=alignment.speed,
            pitch=alignment.pitch,
            offset=alignment.offset,
            query_segment=alignment.query_segment,
            item_segment=alignment.item_segment,
        )


@dataclass(frozen=True)
class _Postings:
    """Every banked hash, sorted, with the item and the row of that item's fingerprint."""

    hashes: npt.NDArray[np.uint32]
    items: Indices
    rows: Indices


class AudioIndex:
    """Item ids → landmark fingerprints; adds and removes in place; aligned-landmark search."""

    def __init__(self, params: AudioParams = DEFAULT_AUDIO_PARAMS) -> None:
        self._params = params
        self._items: dict[int, AudioFingerprint] = {}
        self._postings: _Postings | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._items

    def add(self, item_id: int, fingerprint: AudioFingerprint) -> None:
        """Index an item's bank-side fingerprint, replacing any it had."""
        self._items[item_id] = fingerprint
        self._postings = None

    def remove(self, item_id: int) -> None:
        if self._items.pop(item_id, None) is not None:
            self._postings = None

    def search(
        self, query: AudioFingerprint | Sequence[AudioFingerprint], min_matches: int
    ) -> list[AudioMatch]:
        """Items with at least `min_matches` aligned landmarks, most first; one match per item,
        at whichever of the query's candidate speeds aligns best."""
        queries = [query] if isinstance(query, AudioFingerprint) else list(query)
        found: dict[int, list[LandmarkAlignment]] = {}
        for fp in queries:
            for item_id, alignment in self._search_one(fp, min_matches):
                found.setdefault(item_id, []).append(alignment)
        return _ranked(found, min_matches)

    def _search_one(
        self, query: AudioFingerprint, min_matches: int
    ) -> list[tuple[int, LandmarkAlignment]]:
        postings = self._built()
        query_rows, posting_rows = _equal_rows(query.hashes, postings.hashes)
        if len(query_rows) == 0:
            return []
        items = postings.items[posting_rows]
        order = np.argsort(items, kind="stable")
        items, query_rows, posting_rows = items[order], query_rows[order], posting_rows[order]
        bounds = np.flatnonzero(np.diff(items)) + 1
        results = []
        for group in np.split(np.arange(len(items)), bounds):
            item_id = int(items[group[0]])
            hits = hits_from_rows(
                query, self._items[item_id], query_rows[group], postings.rows[posting_rows[group]]
            )
            alignment = align_landmark_hits(hits, query, min_matches, self._params)
            if alignment is not None:
                results.append((item_id, alignment))
        return results

    def _built(self) -> _Postings:
        if self._postings is None:
            self._postings = _build_postings(self._items)
        return self._postings


def _build_postings(items: dict[int, AudioFingerprint]) -> _Postings:
    if not items:
        empty = np.zeros(0, np.int64)
        return _Postings(np.zeros(0, np.uint32), empty, empty)
    hashes = np.concatenate([fp.hashes for fp in items.values()])
    owners = np.concatenate([np.full(len(fp), i, np.int64) for i, fp in items.items()])
    rows = np.concatenate([np.arange(len(fp), dtype=np.int64) for fp in items.values()])
    order = np.argsort(hashes, kind="stable")
    return _Postings(hashes[order], owners[order], rows[order])


def _equal_rows(
    needles: npt.NDArray[np.uint32], haystack: npt.NDArray[np.uint32]
) -> tuple[Indices, Indices]:
    """Every (needle row, haystack row) with equal values; `haystack` is sorted."""
    low = np.searchsorted(haystack, needles, side="left")
    high = np.searchsorted(haystack, needles, side="right")
    counts = high - low
    needle_rows = np.repeat(np.arange(len(needles), dtype=np.int64), counts)
    # Position within each needle's run of equal values, added to where the run starts.
    run_starts = np.repeat(np.cumsum(counts) - counts, counts)
    haystack_rows = np.repeat(low, counts) + np.arange(len(needle_rows)) - run_starts
    return needle_rows, haystack_rows.astype(np.int64)


def _ranked(found: dict[int, list[LandmarkAlignment]], min_matches: int) -> list[AudioMatch]:
    matches = []
    for item_id, alignments in found.items():
        best = best_alignment(alignments)
        if best is not None:
            matches.append(AudioMatch.from_alignment(item_id, best, min_matches))
    return sorted(matches, key=lambda m: (-m.matches, m.item_id))


def brute_force_search(
    items: dict[int, AudioFingerprint],
    query: AudioFingerprint | Sequence[AudioFingerprint],
    min_matches: int,
    params: AudioParams = DEFAULT_AUDIO_PARAMS,
) -> list[AudioMatch]:
    """What `AudioIndex.search` must return, found without an index."""
    queries = [query] if isinstance(query, AudioFingerprint) else list(query)
    found: dict[int, list[LandmarkAlignment]] = {}
    for item_id, fp in items.items():
        alignment = brute_force_alignment(queries, fp, min_matches, params)
        if alignment is not None:
            found[item_id] = [alignment]
    return _ranked(found, min_matches)
