"""One decoding pass over a video: frames sampled at a fixed rate and scaled small, audio as PCM.

Every limit is checked while decoding too, because headers lie: a file may claim one minute and
hold ten hours, change resolution mid-stream, or be cut short.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
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
        decoded = _iter_sampled_frames(
            self.info, self._settings, self._fps, self._audio_chunks, fast=self._grey
        )
        pictures = _pictures(
            _read_ahead(decoded, self._decoded_depth(), "firebreak-decode"),
            grey_pixels if self._grey else _rgb_pixels,
            self._size,
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


def _pictures(
    decoded: Generator[tuple[float, av.VideoFrame], None, None],
    to_pixels: Callable[[av.VideoFrame, int], npt.NDArray[np.uint8]],
    size: int,
) -> Generator[SampledFrame, None, None]:
    try:
        for t, frame in decoded:
            yield SampledFrame(round(t, 3), to_pixels(frame, size))
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
) -> Generator[tuple[float, av.VideoFrame], None, None]:
    """(time, frame) of each sampled frame as decoded; audio, resampled, is appended to
    `audio_out`."""
    started = time.monotonic()
    errors = 0
    decoded_frames = 0
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
            # reference frames, once the frames nothing refers to are no longer decoded.
            video.thread_type = "FRAME"
            video.thread_count = _FAST_DECODE_THREADS
            # In-loop deblocking only smooths block edges; at hashing size it changes nothing a
            # perceptual hash sees. Frames no other frame refers to (most B-frames) are skipped:
            # the exact decode of every other frame stays as it is, and the frames kept still lie
            # within a frame or two of any moment. Where the stream proves that its P-frames
            # never refer to B-frames, every B-frame is skipped from then on (`BFrameProbe`).
            video.codec_context.options = {"skip_loop_filter": "all", "skip_frame": "noref"}
            probe = BFrameProbe(video)
        rate = video.average_rate or video.guessed_rate
        frame_period = 1.0 / float(rate) if rate else 1.0 / 25
        sampler = FrameSampler(fps)
        first_time: float | None = None
        streams: list[av.stream.Stream] = [video]
        resampler = None
        if audio_out is not None and container.streams.audio:
            streams.append(container.streams.audio[0])
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE)
        for packet in container.demux(*streams):
            if time.monotonic() - started > settings.max_decode_s:
                raise MediaRejected(
                    info.path, f"decoding took longer than {settings.max_decode_s:.0f} s"
                )
            if probe is not None and packet.stream is video:
                probe.feed(packet)
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                errors += 1
                if errors > settings.max_decode_errors:
                    raise MediaRejected(
                        info.path, f"corrupt: more than {settings.max_decode_errors} decode errors"
                    ) from None
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
                    if verdict is ProbeVerdict.SKIP_B_FRAMES:
                        video.codec_context.skip_frame = "BIDIR"
                    probe = None  # decided: the probe's decoder is let go
                decoded_frames += 1
                if decoded_frames > settings.max_decoded_frames:
                    raise MediaRejected(
                        info.path, f"more than {settings.max_decoded_frames} frames"
                    )
                check_pixel_count(info.path, frame.width, frame.height, settings.max_video_pixels)
                t_abs = frame.time if frame.time is not None else decoded_frames * frame_period
                if first_time is None:
                    first_time = t_abs
                t = max(0.0, t_abs - first_time)
                if t > settings.max_duration_s:
                    raise MediaRejected(
                        info.path,
                        f"plays longer than the limit of {settings.max_duration_s:.0f} s",
                    )
                if not sampler.wants(t, frame_period):
                    continue
                yield t, frame


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
