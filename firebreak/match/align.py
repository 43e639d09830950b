"""Temporal alignment: from frame hits to the segment of the query that shows the item, and where.

A true copy puts its hits on a line `item_time = offset + speed × query_time` (speed 1 for a plain
copy, 2 for one played twice as fast); coincidental hits scatter. For each candidate speed we vote
for the offset that the most distinct query frames agree on, keep the best line, refine it by least
squares over its hits, and report the query and item segments the hits span.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameHit:
    """A query frame within the threshold of an item frame."""

    query_time: float
    item_time: float
    distance: int
    view: str = "frame"


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
    """The hits on one line, one per query frame (the closest), and the segments they span."""

    offset_s: float
    speed: float
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
    speeds: Sequence[float] = (1.0,),
) -> Alignment | None:
    """The best-supported alignment of `hits` over the candidate `speeds`, or None without hits.

    `tolerance_s` is how far (in item time) a hit may lie from the line. `query_step_s` and
    `item_step_s` are the sampling intervals. An item frame stands for the half step of footage
    either side of it, so the item segment reaches half a step past the first and last aligned item
    frames; the query segment is the item segment mapped back through the line, both clipped to the
    two files' durations.
    """
    if not hits:
        return None
    best_key: tuple[int, float] | None = None
    speed, offset = 1.0, 0.0
    for candidate in speeds:
        candidate_offset, support = _best_supported_offset(hits, candidate, tolerance_s)
        key = (support, -abs(math.log(candidate)))
        if best_key is None or key > best_key:
            best_key, speed, offset = key, candidate, candidate_offset
    inliers = _closest_on_line(hits, speed, offset, tolerance_s)
    speed, offset = _refine_line(inliers, speed, offset)
    inliers = _closest_on_line(hits, speed, offset, tolerance_s) or inliers

    item_times = [h.item_time for h in inliers]
    if item_step_s <= 0:  # a still image: no time axis on the item side
        query_segment = Segment(inliers[0].query_time, inliers[-1].query_time + query_step_s)
        return Alignment(offset, speed, inliers, query_segment, Segment(0.0, 0.0))
    last = max(item_times)
    # The item's last sample stands for the footage up to its end.
    reach = item_step_s if last + item_step_s >= item_duration_s else item_step_s / 2
    lo = max(min(item_times) - item_step_s / 2, 0.0, offset)
    hi = min(last + reach, item_duration_s, offset + speed * query_duration_s)
    hi = max(hi, lo)
    query_segment = Segment((lo - offset) / speed, (hi - offset) / speed)
    return Alignment(offset, speed, inliers, query_segment, Segment(lo, hi))


def _closest_on_line(
    hits: Sequence[FrameHit], speed: float, offset: float, tolerance_s: float
) -> tuple[FrameHit, ...]:
    closest: dict[float, FrameHit] = {}
    for h in hits:
        if abs(h.item_time - offset - speed * h.query_time) > tolerance_s:
            continue
        kept = closest.get(h.query_time)
        if kept is None or h.distance < kept.distance:
            closest[h.query_time] = h
    return tuple(sorted(closest.values(), key=lambda h: h.query_time))


def _refine_line(inliers: Sequence[FrameHit], speed: float, offset: float) -> tuple[float, float]:
    """Least-squares line through the inliers, when they span enough time to fix a slope."""
    if len(inliers) < 4:
        return speed, offset
    q = np.array([h.query_time for h in inliers])
    r = np.array([h.item_time for h in inliers])
    if q.max() - q.min() < 3.0:
        return speed, offset
    slope, intercept = np.polyfit(q, r, 1)
    if not 0.85 * speed <= slope <= 1.15 * speed:
        return speed, offset
    return float(slope), float(intercept)


def _best_supported_offset(
    hits: Sequence[FrameHit], speed: float, tolerance_s: float
) -> tuple[float, int]:
    """For lines of slope `speed`: the offset whose window of width 2×tolerance holds the most
    distinct query frames, and that count."""
    pairs = sorted((h.item_time - speed * h.query_time, h.query_time) for h in hits)
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
    support, lo, hi = best
    window = [offset for offset, _ in pairs[lo : hi + 1]]
    return window[len(window) // 2], support
