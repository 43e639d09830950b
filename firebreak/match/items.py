"""From one item's evidence to one scored ItemMatch: the rules every matcher shares.

The service (an upload against the store's indices) and the retroactive sweep (stored hashes
against an index scattered to Dask workers) find their hits differently, but score them the same
way, here, so a sweep's verdict is the one `firebreak match` would give.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from firebreak.index.audio import AudioMatch
from firebreak.match.align import FrameHit, Segment, align_frame_hits
from firebreak.match.score import ItemMatch, frame_closeness, score_alignment
from firebreak.media import MediaKind
from firebreak.settings import Settings
from firebreak.signals.audio import AudioSignal
from firebreak.signals.base import SignalType
from firebreak.signals.thumb import ThumbSignal
from firebreak.store import Item


def aligned_item_match(
    item: Item,
    hits: Sequence[FrameHit],
    signal: type[SignalType],
    query_step: float,
    query_duration_s: float,
    most_needed: int,
    item_times: Sequence[float],
    settings: Settings,
) -> ItemMatch | None:
    """One item's frame hits aligned in time (offset and speed) and scored; None when they do
    not line up. `item_times` are the times of the item's usable frames of this signal;
    `most_needed` caps the aligned item frames needed for full confidence."""
    s = settings
    item_step = 1.0 / s.bank_fps if item.media_kind == MediaKind.VIDEO.value else 0.0
    alignment = align_frame_hits(
        list(hits),
        s.align_tolerance_s,
        query_step,
        item_step,
        query_duration_s,
        item.duration_s,
        s.align_speeds,
    )
    if alignment is None:
        return None
    threshold = signal.threshold(s)
    seg = alignment.item_segment
    in_segment = sum(1 for t in item_times if seg.start <= t < max(seg.end, seg.start + 1e-6))
    needed = min(s.min_matched_frames, most_needed, max(1, len(item_times)))
    if signal is ThumbSignal:
        needed = most_needed  # a thumbnail alone is weak: always want several frames
    score = score_alignment(alignment, in_segment, needed, threshold)
    distances = [h.distance for h in alignment.hits]
    closeness = [frame_closeness(d, threshold) for d in distances]
    return ItemMatch(
        item,
        score,
        {
            signal.name: {
                "score": round(score, 4),
                "matched_item_frames": alignment.matched_item_frames,
                "item_frames": in_segment,
                "matched_query_frames": alignment.matched_query_frames,
                "mean_distance": round(float(np.mean(distances)), 2),
                "closeness": round(float(np.mean(closeness)), 3),
                "offset_s": round(alignment.offset_s, 2),
                "speed": round(alignment.speed, 3),
                "views": dict(Counter(h.view for h in alignment.hits)),
            }
        },
        alignment.query_segment,
        alignment.item_segment,
    )


def keep_better_alignment(
    found: dict[int, ItemMatch], match: ItemMatch, match_score: float
) -> None:
    """Merge a thumbnail alignment into the PDQ one already `found` for its item (or add it).

    PDQ (found first) places segments more precisely than thumbnails: its alignment stands
    whenever it is a match on its own; the score is the better of the two, the signals both."""
    kept = found.get(match.item.id)
    if kept is None:
        found[match.item.id] = match
        return
    pdq_stands = kept.score >= match_score or kept.score >= match.score
    better, other = (kept, match) if pdq_stands else (match, kept)
    found[match.item.id] = ItemMatch(
        better.item,
        max(better.score, other.score),
        {**other.signals, **better.signals},
        better.query_segment,
        better.item_segment,
    )


def audio_item_match(item: Item, match: AudioMatch) -> ItemMatch:
    """A soundtrack match of `item` as an ItemMatch."""
    return ItemMatch(
        item,
        match.score,
        {
            AudioSignal.name: {
                "score": round(match.score, 4),
                "matched_landmarks": match.matches,
                "coverage": round(match.coverage, 3),
                "speed": round(match.speed, 3),
                "pitch": round(match.pitch, 3),
                "offset_s": round(match.offset, 2),
            }
        },
        Segment(*match.query_segment),
        Segment(*match.item_segment),
    )


def digest_item_match(item: Item, signal_name: str, query_duration_s: float) -> ItemMatch:
    """An exact file-digest match: the whole query is the whole item."""
    return ItemMatch(
        item,
        1.0,
        {signal_name: {"exact": True}},
        Segment(0.0, query_duration_s),
        Segment(0.0, item.duration_s),
    )


def add_digest_match(found: dict[int, ItemMatch], exact: ItemMatch) -> None:
    """Add an exact digest match to the picture and sound matches `found`: where the item was
    already found, its segments stand and the digest makes it certain."""
    previous = found.get(exact.item.id)
    if previous is not None:
        exact = ItemMatch(
            exact.item,
            1.0,
            {**previous.signals, **exact.signals},
            previous.query_segment,
            previous.item_segment,
        )
    found[exact.item.id] = exact
