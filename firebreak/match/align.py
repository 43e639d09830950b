"""Temporal alignment: from frame hits to the segment of the query that shows the item, and where.

A true copy puts its hits on a line `item_time = offset + query_time`; coincidental hits scatter.
We vote for the offset (within a tolerance) that the most distinct query frames agree on, keep the
hits on it, and report the query and item segments they span.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FrameHit:
    """A query frame within the threshold of an item frame."""

    query_time: float
    item_time: float
    distance: int


@dataclass(frozen=True)
class Segment:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_list(self) -> list[float]:
        return [round(self.start, 2), round(self.end, 2)]


@dataclass(frozen=True)
class Alignment:
    """The hits that agree on one offset, one per query frame (the closest), and their spans."""

    offset_s: float
    hits: tuple[FrameHit, ...]
    query_segment: Segment
    item_segment: Segment

    @property
    def matched_query_frames(self) -> int:
        return len(self.hits)

    @property
    def matched_item_frames(self) -> int:
        return len({h.item_time for h in self.hits})


def align_frame_hits(
    hits: Sequence[FrameHit],
    tolerance_s: float,
    query_step_s: float,
    item_step_s: float,
    query_duration_s: float,
    item_duration_s: float,
) -> Alignment | None:
    """The best-supported alignment of `hits`, or None when there are none.

    `query_step_s` and `item_step_s` are the sampling intervals. An item frame stands for the half
    step of footage either side of it, so the item segment reaches half a step past the first and
    last aligned item frames; the query segment is the item segment mapped through the offset, both
    clipped to the two files' durations.
    """
    if not hits:
        return None
    best_offset = _best_supported_offset(hits, tolerance_s)
    closest: dict[float, FrameHit] = {}
    for h in hits:
        if abs(h.item_time - h.query_time - best_offset) > tolerance_s:
            continue
        kept = closest.get(h.query_time)
        if kept is None or h.distance < kept.distance:
            closest[h.query_time] = h
    inliers = tuple(sorted(closest.values(), key=lambda h: h.query_time))
    # Refine the offset as the median of the inliers' offsets.
    inlier_offsets = sorted(h.item_time - h.query_time for h in inliers)
    offset = inlier_offsets[len(inlier_offsets) // 2]
    item_times = [h.item_time for h in inliers]
    if item_step_s <= 0:  # a still image: no time axis on the item side
        query_segment = Segment(inliers[0].query_time, inliers[-1].query_time + query_step_s)
        return Alignment(offset, inliers, query_segment, Segment(0.0, 0.0))
    last = max(item_times)
    # The item's last sample stands for the footage up to its end.
    reach = item_step_s if last + item_step_s >= item_duration_s else item_step_s / 2
    lo = max(min(item_times) - item_step_s / 2, 0.0, offset)
    hi = min(last + reach, item_duration_s, query_duration_s + offset)
    hi = max(hi, lo)
    item_segment = Segment(lo, hi)
    query_segment = Segment(lo - offset, hi - offset)
    return Alignment(offset, inliers, query_segment, item_segment)


def _best_supported_offset(hits: Sequence[FrameHit], tolerance_s: float) -> float:
    """Centre of the offset window of width 2×tolerance holding the most distinct query frames."""
    pairs = sorted((h.item_time - h.query_time, h.query_time) for h in hits)
    in_window: Counter[float] = Counter()
    left = 0
    best = (-1, 0, 0)
    for right, (offset, query_time) in enumerate(pairs):
        in_window[query_time] += 1
        while offset - pairs[left][0] > 2 * tolerance_s:
            leaving = pairs[left][1]
            in_window[leaving] -= 1
            if in_window[leaving] == 0:
                del in_window[leaving]
            left += 1
        if len(in_window) > best[0]:
            best = (len(in_window), left, right)
    _, lo, hi = best
    window = [offset for offset, _ in pairs[lo : hi + 1]]
    return window[len(window) // 2]
