"""Which frames a query decode may leave undecoded, proven on the stream itself.

A query decode already skips the frames no other frame refers to. Many streams also hold
B-frames that are references only for other B-frames: x264 at reference count 1 (its ultrafast to
veryfast presets, the defaults of most live-streaming software) predicts every P-frame from the
previous I- or P-frame alone. In such a stream every B-frame can go, and the I- and P-frames left
decode to exactly the same pixels. Other encoders (x264 from its faster preset on, HEVC's
generalised B-frames) predict P-frames from B-frames too, and skipping those would corrupt every
frame after them.

Nothing in the container says which kind a stream is, so `BFrameProbe` finds out: for the first
seconds it decodes the stream a second time, with every B-frame skipped, and compares each I- and
P-frame it gets with the same frame of the real decode, byte for byte. Only when enough of them are
identical, B-frames did come between them, and the frames left are still close together in time
(so that sampling stays dense), is the real decode told to skip B-frames from then on. A stream
that stops being identical is never switched; the check costs one extra decode of a few seconds of
I- and P-frames.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any, cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

# av's picture types (FFmpeg's AVPictureType): intra, predicted, bi-predicted.
_INTRA, _PREDICTED, _BIDIRECTIONAL = 1, 2, 3
_IDENTICAL_NEEDED = 24  # I-/P-frames after a B-frame, identical in both decodes
_MAX_PROBE_PACKETS = 300  # give up if that many packets prove nothing either way
_NO_B_FRAMES_AFTER = 32  # I-/P-frames with no B-frame among them: nothing to skip
# Frames left after skipping B-frames must lie no further apart than this (s): four frames at
# 30 fps, so that any moment still has a decoded frame within two frames of it.
MAX_KEPT_GAP_S = 4 / 30 + 1e-3


class ProbeVerdict(Enum):
    UNDECIDED = "undecided"
    SKIP_B_FRAMES = "skip B-frames"
    KEEP_B_FRAMES = "keep B-frames"


class BFrameProbe:
    """Decides, from the first seconds of `stream`, whether its B-frames may be skipped.

    Call `feed` with each of the stream's packets before the real decoder gets it and `observe`
    with each frame the real decoder returns, until `verdict` is no longer UNDECIDED. `time_base`
    turns presentation timestamps into seconds."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.verdict = ProbeVerdict.UNDECIDED
        self._time_base = float(stream.time_base) if stream.time_base else 0.0
        self._context: VideoCodecContext | None = None
        try:
            context = cast(
                VideoCodecContext, av.CodecContext.create(stream.codec_context.name, "r")
            )
            context.extradata = stream.codec_context.extradata
            context.options = {"skip_loop_filter": "all", "skip_frame": "bidir"}
            context.open()
            self._context = context
        except (av.error.FFmpegError, ValueError):
            self.verdict = ProbeVerdict.KEEP_B_FRAMES
        self._without_b: dict[int, bytes] = {}  # pts → luma digest, from the probe's decode
        self._with_b: dict[int, bytes] = {}  # pts → luma digest, from the real decode
        self._packets = 0
        self._b_frames_seen = False
        self._identical = 0
        self._kept = 0
        self._last_kept_s: float | None = None
        self._widest_gap_s = 0.0

    def feed(self, packet: av.Packet[Any]) -> None:
        if self.verdict is not ProbeVerdict.UNDECIDED or self._context is None:
            return
        self._packets += 1
        if self._packets > _MAX_PROBE_PACKETS:
            self._decide(ProbeVerdict.KEEP_B_FRAMES)
            return
        try:
            frames = self._context.decode(packet)
        except av.error.FFmpegError:
            self._decide(ProbeVerdict.KEEP_B_FRAMES)
            return
        for frame in frames:
            if frame.pts is None:
                self._decide(ProbeVerdict.KEEP_B_FRAMES)
                return
            self._without_b[frame.pts] = _luma_digest(frame)
        self._compare()

    def observe(self, frame: av.VideoFrame) -> ProbeVerdict:
        """Takes a frame of the real decode; returns the verdict so far."""
        if self.verdict is not ProbeVerdict.UNDECIDED:
            return self.verdict
        kind = int(frame.pict_type)
        if kind == _BIDIRECTIONAL:
            self._b_frames_seen = True
            return self.verdict
        if kind not in (_INTRA, _PREDICTED) or frame.pts is None:
            self._decide(ProbeVerdict.KEEP_B_FRAMES)
            return self.verdict
        self._kept += 1
        if self._kept >= _NO_B_FRAMES_AFTER and not self._b_frames_seen:
            self._decide(ProbeVerdict.KEEP_B_FRAMES)
            return self.verdict
        seconds = frame.pts * self._time_base
        if self._last_kept_s is not None:
            self._widest_gap_s = max(self._widest_gap_s, seconds - self._last_kept_s)
        self._last_kept_s = seconds
        if self._b_frames_seen:
            self._with_b[frame.pts] = _luma_digest(frame)
        self._compare()
        return self.verdict

    def _compare(self) -> None:
        for pts in [pts for pts in self._with_b if pts in self._without_b]:
            if self._with_b.pop(pts) != self._without_b.pop(pts):
                self._decide(ProbeVerdict.KEEP_B_FRAMES)
                return
            self._identical += 1
        if self._widest_gap_s > MAX_KEPT_GAP_S:
            self._decide(ProbeVerdict.KEEP_B_FRAMES)
        elif self._identical >= _IDENTICAL_NEEDED:
            self._decide(ProbeVerdict.SKIP_B_FRAMES)

    def _decide(self, verdict: ProbeVerdict) -> None:
        self.verdict = verdict
        self._context = None  # the probe's decoder and what it held are let go
        self._without_b.clear()
        self._with_b.clear()


def _luma_digest(frame: av.VideoFrame) -> bytes:
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
    return hashlib.blake2b(
        np.ascontiguousarray(rows[:, : plane.width]).data, digest_size=16
    ).digest()
