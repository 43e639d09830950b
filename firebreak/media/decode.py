"""One decoding pass over a video: frames sampled at a fixed rate and scaled small, audio as PCM.

Every limit is checked while decoding too, because headers lie: a file may claim one minute and
hold ten hours, change resolution mid-stream, or be cut short.
"""

from __future__ import annotations

import bisect
import heapq
import math
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
import numpy.typing as npt

from firebreak.errors import MediaRejected
from firebreak.media.probe import MediaInfo, MediaKind, check_pixel_count
from firebreak.media.reduce import box_reduce
from firebreak.media.skipping import BFrameProbe, ProbeVerdict
from firebreak.settings import Settings

AUDIO_SAMPLE_RATE = 16_000
_FAST_DECODE_THREADS = 8
_READ_AHEAD_BYTES = 16 << 20  # sampled frames decoded ahead of their consumer, at most this much
_MAX_READ_AHEAD = 64
_DECODED_AHEAD_BYTES = 8 << 20  # decoded frames waiting to be scaled, at most this much
_MAX_DECODED_AHEAD = 4
_LANE_AHEAD_BYTES = 48 << 20  # pixels a decoding lane may hold for the merge, at most this much
_MAX_LANE_AHEAD = 512
_Item = TypeVar("_Item")


@dataclass(frozen=True)
class SampledFrame:
    """One frame picked by the sampler: its time in seconds from the first frame, RGB pixels."""

    timestamp: float
    pixels: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class DecodedVideo:
    """What one pass over a video produced."""

    info: MediaInfo
    frames: tuple[SampledFrame, ...]
    decoded_duration_s: float
    audio: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    audio_rate: int = AUDIO_SAMPLE_RATE


@dataclass
class FrameSampler:
    """Picks the first frame at or after each multiple of 1/fps (one frame per slot)."""

    fps: float
    next_slot: int = 0

    def wants(self, t: float, frame_period: float) -> bool:
        # Half a frame of slack so 29.97 fps material doesn't drift one frame late each slot.
        if t + frame_period / 2 < self.next_slot / self.fps:
            return False
        self.next_slot = math.floor((t + frame_period / 2) * self.fps) + 1
        return True


class VideoFrames:
    """One decoding pass, iterated frame by frame so that memory stays bounded.

    Iterating yields the sampled frames, `fps` a second, as RGB (or, with `grey`, luma only) scaled
    to `size`×`size` (full size when `size` is 0). Once the loop has ended, `decoded_duration_s` and
    `audio` (mono PCM at 16 kHz, when asked for) hold the rest of what the pass found.

    Raises MediaRejected while iterating when a limit is broken (duration, frame count, pixel
    count, decode time, decode errors), and at the end when the decodable part is much shorter
    than the file claims.
    """

    def __init__(
        self,
        info: MediaInfo,
        settings: Settings,
        fps: float,
        size: int,
        *,
        with_audio: bool = False,
        grey: bool = False,
    ) -> None:
        if info.kind is not MediaKind.VIDEO:
            raise ValueError(f"{info.path} is not a video")
        self.info = info
        self._settings = settings
        self._fps = fps
        self._size = size
        self._grey = grey
        self._audio_chunks: list[npt.NDArray[np.float32]] | None = [] if with_audio else None
        self._audio_taken = 0
        self.decoded_duration_s = 0.0
        self.audio = np.zeros(0, np.float32)

    def __iter__(self) -> Iterator[SampledFrame]:
        last: float | None = None
        # Two threads: one decodes (the decoder releases the GIL) and one scales the decoded
        # frames, so that the decoder is fed without pause while the consumer hashes what it has.
        to_pixels = grey_pixels if self._grey else _rgb_pixels
        decoded = _iter_sampled_frames(
            self.info,
            self._settings,
            self._fps,
            self._audio_chunks,
            self._grey,
            to_pixels,
            self._size,
        )
        pictures = _pictures(
            _read_ahead(decoded, self._decoded_depth(), "firebreak-decode"), to_pixels, self._size
        )
        for frame in _read_ahead(pictures, self._sampled_depth(), "firebreak-decode-pixels"):
            last = frame.timestamp
            yield frame
        self.decoded_duration_s = _checked_decoded_duration(
            self.info, self._settings, last, self._fps
        )
        if self._audio_chunks:
            self.audio = np.concatenate(self._audio_chunks)
            self._audio_chunks = []

    def take_audio(self) -> list[npt.NDArray[np.float32]]:
        """While iterating: the audio decoded since the last call, in order (mono PCM at 16 kHz).

        Once the loop has ended, `audio` holds all of it, taken or not."""
        chunks = self._audio_chunks or []
        taken = chunks[self._audio_taken :]
        self._audio_taken += len(taken)
        return taken

    def _decoded_depth(self) -> int:
        """How many decoded frames (full size, about 1.5 bytes a pixel) may wait to be scaled."""
        frame_bytes = max(1, self.info.width * self.info.height * 3 // 2)
        return max(2, min(_MAX_DECODED_AHEAD, _DECODED_AHEAD_BYTES // frame_bytes))

    def _sampled_depth(self) -> int:
        """How many sampled frames may wait for the consumer: a byte budget's worth."""
        if self._size > 0:
            side = 2 * self._size  # a reduced frame is under twice the size on either side
            frame_bytes = side * side
        else:
            frame_bytes = max(1, self.info.width * self.info.height)
        frame_bytes *= 1 if self._grey else 3
        return max(2, min(_MAX_READ_AHEAD, _READ_AHEAD_BYTES // frame_bytes))


_Picture = av.VideoFrame | npt.NDArray[np.uint8]
"""A frame as decoded, or its pixels already made (by a decoding lane)."""
_ToPixels = Callable[[av.VideoFrame, int], npt.NDArray[np.uint8]]


def _pictures(
    decoded: Generator[tuple[float, _Picture], None, None], to_pixels: _ToPixels, size: int
) -> Generator[SampledFrame, None, None]:
    try:
        for t, picture in decoded:
            pixels = picture if isinstance(picture, np.ndarray) else to_pixels(picture, size)
            yield SampledFrame(round(t, 3), pixels)
    finally:
        decoded.close()


def _read_ahead(
    source: Generator[_Item, None, None], depth: int, name: str
) -> Generator[_Item, None, None]:
    """The items of `source`, produced by a thread of their own up to `depth` ahead of the consumer.

    An error in the thread is raised here, at the point of the stream where it happened; a consumer
    that stops early stops the thread (which closes `source`, and so the container) before this
    generator ends."""
    handoff: queue.Queue[_Item | _Failure | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: _Item | _Failure | None) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer(_Failure(exc))
        else:
            offer(None)
        finally:
            source.close()

    producer = threading.Thread(target=produce, name=name, daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        producer.join()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def decode_video(
    info: MediaInfo,
    settings: Settings,
    fps: float,
    size: int,
    *,
    with_audio: bool = False,
    grey: bool = False,
) -> DecodedVideo:
    """Every sampled frame of one decoding pass, in memory (see VideoFrames for streaming)."""
    stream = VideoFrames(info, settings, fps, size, with_audio=with_audio, grey=grey)
    frames = tuple(stream)
    return DecodedVideo(info, frames, stream.decoded_duration_s, stream.audio)


def _checked_decoded_duration(
    info: MediaInfo, settings: Settings, last_frame_s: float | None, fps: float
) -> float:
    if last_frame_s is None:
        raise MediaRejected(info.path, "no decodable video frames")
    last = last_frame_s + 1.0 / fps
    decoded = min(last, info.duration_s) if info.duration_s > 0 else last
    if info.duration_s > 0 and decoded < settings.min_decoded_fraction * info.duration_s:
        raise MediaRejected(
            info.path,
            f"truncated or corrupt: only {decoded:.1f} s of the declared "
            f"{info.duration_s:.1f} s could be decoded",
        )
    return decoded


def _iter_sampled_frames(
    info: MediaInfo,
    settings: Settings,
    fps: float,
    audio_out: list[npt.NDArray[np.float32]] | None,
    fast: bool,
    to_pixels: _ToPixels,
    size: int,
) -> Generator[tuple[float, _Picture], None, None]:
    """(time, frame) of each sampled frame as decoded, or (time, pixels) where lanes decode (they
    make each frame's pixels themselves, so that what they hold ahead is small); audio,
    resampled, is appended to `audio_out`."""
    started = time.monotonic()
    decoded_frames = 0
    lanes = _decoding_lanes(info) if fast else 1
    errors = _ErrorCount(settings.max_decode_errors)
    skipping = _SharedSkip()
    shrink = (to_pixels, size) if lanes > 1 else None
    limits = _LaneLimits(started + settings.max_decode_s, settings.max_decode_s, errors)
    sources = [
        _lane_frames(
            info, lane, lanes, audio_out if lane == 0 else None, fast, limits, skipping, shrink
        )
        for lane in range(lanes)
    ]
    frames: Iterator[_LaneFrame]
    if lanes == 1:
        opened_all = [sources[0]]
        frames = sources[0]
    else:
        # Each lane decodes in a thread of its own; their frames are merged by display time.
        # A lane runs ahead by up to a GOP's worth of frames while the merge still takes the
        # other lane's; it holds their pixels, made small, within a byte budget.
        side = 2 * size if size > 0 else max(info.width, info.height)
        depth = max(2, min(_MAX_LANE_AHEAD, _LANE_AHEAD_BYTES // (side * side)))
        opened_all = [
            _read_ahead(source, depth, f"firebreak-decode-lane{i}")
            for i, source in enumerate(sources)
        ]
        frames = heapq.merge(*opened_all, key=_display_time)
    sampler = FrameSampler(fps)
    first_time: float | None = None
    try:
        for t_abs, frame_period, width, height, picture in frames:
            decoded_frames += 1
            if decoded_frames > settings.max_decoded_frames:
                raise MediaRejected(info.path, f"more than {settings.max_decoded_frames} frames")
            check_pixel_count(info.path, width, height, settings.max_video_pixels)
            if t_abs is None:
                t_abs = decoded_frames * frame_period
            if first_time is None:
                first_time = t_abs
            t = max(0.0, t_abs - first_time)
            if t > settings.max_duration_s:
                raise MediaRejected(
                    info.path, f"plays longer than the limit of {settings.max_duration_s:.0f} s"
                )
            if not sampler.wants(t, frame_period):
                continue
            yield t, picture
    finally:
        for opened_lane in opened_all:
            opened_lane.close()


_LaneFrame = tuple[float | None, float, int, int, _Picture]
"""(time or None, frame period, width, height, frame or its pixels) as a lane hands it over."""


def _display_time(item: _LaneFrame) -> float:
    return item[0] if item[0] is not None else 0.0


# Containers whose packets carry presentation times, so that the frames of lanes can be merged.
_TIMED_CONTAINERS = ("mov", "mp4", "matroska", "webm", "flv", "mpegts")
_MIN_LANE_SECONDS = 4.0


def _decoding_lanes(info: MediaInfo) -> int:
    """How many decoders share a video, each taking every other group of pictures (GOP).

    A chain of P-frames decodes one frame after another whatever the number of frame threads, so
    one decoder keeps about one core busy once the frames nobody refers to are skipped; GOPs
    start from a keyframe and need nothing before it, so two decoders on alternate GOPs keep two
    cores busy. Only for H.264 files long enough to hold several GOPs, in containers with
    timestamps: an H.264 keyframe is (nearly always) an IDR picture, which nothing after it looks
    back past, while HEVC's usual CRA keyframes start open GOPs whose leading pictures refer to
    the GOP before, which another lane decodes."""
    if info.codec != "h264" or info.duration_s < _MIN_LANE_SECONDS:
        return 1
    if not any(name in info.container.split(",") for name in _TIMED_CONTAINERS):
        return 1
    return 2


@dataclass
class _ErrorCount:
    """Decode errors of all lanes together, against one limit."""

    limit: int
    count: int = 0

    def add(self, path: Path) -> None:
        self.count += 1
        if self.count > self.limit:
            raise MediaRejected(path, f"corrupt: more than {self.limit} decode errors")


@dataclass(frozen=True)
class _LaneLimits:
    """What every lane checks as it reads: the decode deadline (monotonic clock) and the
    decode errors of all lanes together."""

    deadline: float
    max_decode_s: float
    errors: _ErrorCount


@dataclass
class _SharedSkip:
    """Whether the stream proved that its B-frames may be skipped (one lane probes, all skip)."""

    verdict: ProbeVerdict = ProbeVerdict.UNDECIDED


def _lane_frames(
    info: MediaInfo,
    lane: int,
    lanes: int,
    audio_out: list[npt.NDArray[np.float32]] | None,
    fast: bool,
    limits: _LaneLimits,
    skipping: _SharedSkip,
    shrink: tuple[_ToPixels, int] | None,
) -> Generator[_LaneFrame, None, None]:
    """Every frame one decoder returns, in display order: of the GOPs numbered `lane` modulo
    `lanes` (all of them when `lanes` is 1), as pixels made by `shrink` when given. The first
    lane also decodes the soundtrack into `audio_out`."""
    try:
        container = av.open(str(info.path), mode="r", timeout=10.0)
    except av.error.FFmpegError as exc:
        raise MediaRejected(info.path, f"cannot open video ({exc})") from None
    with container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        probe: BFrameProbe | None = None
        if fast:
            # More frame threads than cores keep both cores busy between the dependencies of
            # reference frames, once the frames nothing refers to are no longer decoded (a chain
            # of P-frames alone they cannot spread: for that there are lanes).
            video.thread_type = "FRAME"
            video.thread_count = max(2, _FAST_DECODE_THREADS // lanes)
            # In-loop deblocking only smooths block edges; at hashing size it changes nothing a
            # perceptual hash sees. Frames no other frame refers to (most B-frames) are skipped:
            # the exact decode of every other frame stays as it is, and the frames kept still lie
            # within a frame or two of any moment. Where the stream proves that its P-frames
            # never refer to B-frames, every B-frame is skipped from then on (`BFrameProbe`).
            video.codec_context.options = {"skip_loop_filter": "all", "skip_frame": "noref"}
            probe = BFrameProbe(video) if lane == 0 else None
        rate = video.average_rate or video.guessed_rate
        frame_period = 1.0 / float(rate) if rate else 1.0 / 25
        time_base = float(video.time_base) if video.time_base else 0.0
        streams: list[av.stream.Stream] = [video]
        resampler = None
        if audio_out is not None and container.streams.audio:
            streams.append(container.streams.audio[0])
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE)
        gop = -1
        # Display times at which each GOP starts: a frame shown before its own GOP's keyframe
        # (an open GOP's leading frames) refers to the GOP before, which another lane decodes.
        gop_starts: list[float] = []
        skipping_b = False
        for packet in container.demux(*streams):
            if time.monotonic() > limits.deadline:
                raise MediaRejected(
                    info.path, f"decoding took longer than {limits.max_decode_s:.0f} s"
                )
            if packet.stream is video and packet.size > 0:  # empty packets flush every lane
                if packet.is_keyframe:
                    gop += 1
                    if packet.pts is not None:
                        gop_starts.append(packet.pts * time_base)
                if gop % lanes != lane:
                    continue
                if not skipping_b and skipping.verdict is ProbeVerdict.SKIP_B_FRAMES:
                    video.codec_context.skip_frame = "BIDIR"
                    skipping_b = True
                if probe is not None:
                    probe.feed(packet)
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                limits.errors.add(info.path)
                continue
            if packet.stream.type == "audio":
                if resampler is not None and audio_out is not None:
                    for aframe in (f for f in decoded if isinstance(f, av.AudioFrame)):
                        for out in resampler.resample(aframe):
                            audio_out.append(out.to_ndarray().reshape(-1).astype(np.float32))
                continue
            for frame in decoded:
                if not isinstance(frame, av.VideoFrame):
                    continue
                if (
                    probe is not None
                    and (verdict := probe.observe(frame)) is not ProbeVerdict.UNDECIDED
                ):
                    skipping.verdict = verdict  # every lane skips B-frames from its next packet
                    probe = None  # decided: the probe's decoder is let go
                t = frame.time
                if lanes > 1 and t is not None and gop_starts:
                    shown_in = bisect.bisect_right(gop_starts, t) - 1
                    if shown_in % lanes != lane:
                        continue
                picture = frame if shrink is None else shrink[0](frame, shrink[1])
                yield t, frame_period, frame.width, frame.height, picture


def _rgb_pixels(frame: av.VideoFrame, size: int) -> npt.NDArray[np.uint8]:
    if size <= 0:
        return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    small = frame.reformat(width=size, height=size, format="rgb24", interpolation="AREA")
    return np.asarray(small.to_ndarray(), dtype=np.uint8)


# 8-bit pixel formats whose first plane is the luma (Y) plane at full resolution.
_LUMA_FIRST = frozenset(
    f"{family}{layout}"
    for family in ("yuv", "yuvj")
    for layout in ("420p", "422p", "444p", "440p", "411p", "410p")
) | {"nv12", "nv21", "gray"}


def grey_pixels(frame: av.VideoFrame, size: int) -> npt.NDArray[np.uint8]:
    """Luma scaled to about `size`×`size`, read straight from the decoder's Y plane.

    Scaling colour frames in swscale costs more than decoding them; the Y plane needs no colour
    conversion, and an integer box reduction of it (`box_reduce`, Pillow's `reduce` to the bit)
    reads it in place."""
    if frame.format.name not in _LUMA_FIRST:
        return np.asarray(frame.reformat(format="gray").to_ndarray(), dtype=np.uint8)
    plane = frame.planes[0]
    luma = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
    luma = luma[:, : plane.width]
    if size <= 0:
        return luma.copy()  # the decoder reuses its buffers
    return box_reduce(luma, max(1, plane.width // size), max(1, plane.height // size))
