"""What the index said about a query's frames, before alignment."""

from __future__ import annotations

from dataclasses import dataclass

from firebreak.match.align import FrameHit


@dataclass(frozen=True)
class FrameEvidence:
    """A query's frames found in the index: (signal id, hit) pairs for PDQ views and thumbnails,
    timed in seconds from the query's start."""

    pdq: tuple[tuple[int, FrameHit], ...] = ()
    thumbs: tuple[tuple[int, FrameHit], ...] = ()

    def __add__(self, other: FrameEvidence) -> FrameEvidence:
        return FrameEvidence(self.pdq + other.pdq, self.thumbs + other.thumbs)

    def since(self, start: float) -> FrameEvidence:
        """The hits of query frames at `start` or later, their times as they are."""
        return FrameEvidence(
            tuple(pair for pair in self.pdq if pair[1].query_time >= start),
            tuple(pair for pair in self.thumbs if pair[1].query_time >= start),
        )

    def between(self, start: float, end: float) -> FrameEvidence:
        """The hits of query frames in [start, end), timed from `start`."""
        return FrameEvidence(_between(self.pdq, start, end), _between(self.thumbs, start, end))


def _between(
    hits: tuple[tuple[int, FrameHit], ...], start: float, end: float
) -> tuple[tuple[int, FrameHit], ...]:
    return tuple(
        (signal_id, FrameHit(hit.query_time - start, hit.item_time, hit.distance, hit.view))
        for signal_id, hit in hits
        if start <= hit.query_time < end
    )
