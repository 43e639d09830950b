"""Temporal alignment of frame hits and the scoring of matches into verdicts."""

from firebreak.match.align import Alignment, FrameHit, Segment, align_frame_hits
from firebreak.match.evidence import FrameEvidence
from firebreak.match.score import (
    ItemMatch,
    Judgement,
    Verdict,
    decide,
    frame_closeness,
    fuse_picture_and_sound,
    judge,
    score_alignment,
)

__all__ = [
    "Alignment",
    "FrameEvidence",
    "FrameHit",
    "ItemMatch",
    "Judgement",
    "Segment",
    "Verdict",
    "align_frame_hits",
    "decide",
    "frame_closeness",
    "fuse_picture_and_sound",
    "judge",
    "score_alignment",
]
