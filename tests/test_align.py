"""Temporal alignment finds the offset that the most frames agree on and reports both segments."""

from __future__ import annotations

import pytest

from firebreak.match import FrameHit, align_frame_hits

SPEEDS = (0.5, 2 / 3, 0.75, 0.8, 0.9, 1.0, 1.1, 1.25, 4 / 3, 1.5, 2.0)


def test_excerpt_hits_align_on_their_offset_despite_coincidental_hits() -> None:
    # Query is item 20..30 s; hits every banked second, plus two stray hits elsewhere.
    hits = [FrameHit(q, q + 20.0, 8) for q in range(10)]
    hits += [FrameHit(3.0, 55.0, 30), FrameHit(7.0, 2.0, 29)]

    alignment = align_frame_hits(hits, 1.5, 1 / 30, 1.0, 10.0, 60.0)

    assert alignment is not None
    assert alignment.offset_s == pytest.approx(20.0)
    assert alignment.speed == pytest.approx(1.0)
    assert alignment.matched_item_frames == 10
    assert abs(alignment.item_segment.start - 20.0) <= 1.0
    assert abs(alignment.item_segment.end - 30.0) <= 1.0
    assert abs(alignment.query_segment.start - 0.0) <= 1.0
    assert abs(alignment.query_segment.end - 10.0) <= 1.0


def test_embedded_copy_reports_where_it_sits_in_the_query() -> None:
    # The whole 12 s item sits at 40..52 s of a 90 s query.
    hits = [FrameHit(40.0 + t + 0.02, float(t), 5) for t in range(12)]

    alignment = align_frame_hits(hits, 1.5, 1 / 30, 1.0, 90.0, 12.0)

    assert alignment is not None
    assert abs(alignment.query_segment.start - 40.0) <= 1.0
    assert abs(alignment.query_segment.end - 52.0) <= 1.0
    assert alignment.item_segment.start == 0.0
    assert alignment.item_segment.end == 12.0


def test_each_query_frame_keeps_only_its_closest_hit() -> None:
    hits = [FrameHit(1.0, 1.0, 20), FrameHit(1.0, 1.5, 4), FrameHit(2.0, 2.0, 6)]

    alignment = align_frame_hits(hits, 1.5, 0.5, 1.0, 3.0, 3.0)

    assert alignment is not None
    assert [h.distance for h in alignment.hits] == [4, 6]


def test_no_hits_no_alignment() -> None:
    assert align_frame_hits([], 1.5, 1.0, 1.0, 1.0, 1.0) is None


@pytest.mark.parametrize("speed", [0.5, 0.75, 1.5, 2.0])
def test_speed_changed_copy_aligns_on_its_speed(speed: float) -> None:
    # Item seconds 10..40 played at `speed`: query time q shows item time 10 + speed * q.
    duration = 30.0 / speed
    hits = [FrameHit(round((t - 10.0) / speed, 3), float(t), 6) for t in range(10, 40)]
    hits += [FrameHit(1.0, 70.0, 30)]

    alignment = align_frame_hits(hits, 0.75, 1 / 30, 1.0, duration, 80.0, SPEEDS)

    assert alignment is not None
    assert alignment.speed == pytest.approx(speed, rel=0.02)
    assert abs(alignment.item_segment.start - 10.0) <= 1.0
    assert abs(alignment.item_segment.end - 40.0) <= 1.0
    assert abs(alignment.query_segment.end - duration) <= 1.0
