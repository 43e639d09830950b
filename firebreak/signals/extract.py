"""Every signal of one media file, from one read of its bytes and one decoding pass."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.errors import MediaRejected
from firebreak.media import (
    MediaInfo,
    MediaKind,
    SampledFrame,
    VideoFrames,
    load_image_rgb,
    probe_media,
)
from firebreak.media.decode import AUDIO_SAMPLE_RATE
from firebreak.settings import Settings
from firebreak.signals.audio import AudioPeaks, SoundtrackPeaks, soundtrack_peaks
from firebreak.signals.base import FrameHash
from firebreak.signals.pdq import pdq_hash_pixels
from firebreak.signals.thumb import bank_thumbs
from firebreak.signals.views import (
    ContentBox,
    ThumbView,
    ViewHash,
    detect_content_box,
    detect_layout_regions,
    named_regions,
    query_thumb_views,
    query_view_hashes,
)

_CHUNK = 1 << 20
_T = TypeVar("_T")


@dataclass(frozen=True)
class FileDigests:
    md5: str
    sha256: str


@dataclass(frozen=True)
class MediaSignals:
    """The hashes of one file: digests of its bytes and PDQ of its picture(s)."""

    info: MediaInfo
    digests: FileDigests
    frames: tuple[FrameHash, ...]
    duration_s: float
    thumbs: tuple[tuple[float, npt.NDArray[np.float32]], ...] = ()
    """(timestamp, thumbnail) pairs: the bank's thumbnails of each sampled frame."""
    audio: AudioPeaks | None = None
    """The soundtrack's spectral peaks; None without a (non-silent) soundtrack."""

    @property
    def is_video(self) -> bool:
        return self.info.kind is MediaKind.VIDEO


@dataclass(frozen=True)
class QuerySignals:
    """The hashes of a file to look up: digests, and PDQ of every view of its sampled frames."""

    info: MediaInfo
    digests: FileDigests
    views: tuple[ViewHash, ...]
    content_box: ContentBox
    duration_s: float
    thumb_views: tuple[ThumbView, ...] = ()
    audio: AudioPeaks | None = None

    @property
    def is_video(self) -> bool:
        return self.info.kind is MediaKind.VIDEO


def file_digests(path: Path) -> FileDigests:
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                md5.update(chunk)
                sha.update(chunk)
    except OSError as exc:
        raise MediaRejected(path, f"cannot read file ({exc.strerror})") from None
    return FileDigests(md5.hexdigest(), sha.hexdigest())


def hash_media_file(path: Path, settings: Settings, fps: float, frame_size: int) -> MediaSignals:
    """Probe, digest and perceptually hash `path`.

    Videos are sampled at `fps` frames a second and each frame scaled to `frame_size` square
    (0: full size) before PDQ; images are always hashed at full size, as PDQ's reference does.
    """
    info = probe_media(path, settings)
    digests = file_digests(path)
    if info.kind is MediaKind.IMAGE:
        pixels = load_image_rgb(path, settings)
        image_thumbs = tuple((0.0, v) for v in bank_thumbs(pixels))
        return MediaSignals(info, digests, (pdq_hash_pixels(pixels),), 0.0, image_thumbs)
    stream = VideoFrames(info, settings, fps, frame_size, with_audio=True)
    frames: list[FrameHash] = []
    thumbs: list[tuple[float, npt.NDArray[np.float32]]] = []
    for sampled in stream:  # each frame is hashed and let go: memory stays bounded
        frames.append(pdq_hash_pixels(sampled.pixels, sampled.timestamp))
        thumbs.extend((sampled.timestamp, v) for v in bank_thumbs(sampled.pixels))
    audio = _soundtrack_peaks(stream.audio)
    return MediaSignals(
        info, digests, tuple(frames), stream.decoded_duration_s, tuple(thumbs), audio
    )


def hash_query_file(path: Path, settings: Settings) -> QuerySignals:
    """Probe, digest and hash every view of `path` for lookup.

    An image's whole-frame view is its full-size PDQ (what banks hold for images); its other views
    and every video frame are cut from small decoded frames.
    """
    info = probe_media(path, settings)
    if info.kind is MediaKind.IMAGE:
        digests = file_digests(path)
        pixels = load_image_rgb(path, settings)
        small = _shrink(pixels, settings.query_decode_size)
        box = detect_content_box([small])
        regions = named_regions(box, [])
        image_views = query_view_hashes([(0.0, small)], regions)
        exact = ViewHash("frame", pdq_hash_pixels(pixels))
        image_thumbs = query_thumb_views([(0.0, small)], regions, settings.query_thumb_fps)
        return QuerySignals(info, digests, (exact, *image_views[1:]), box, 0.0, tuple(image_thumbs))
    pending_digests = _Background(file_digests, path)
    stream = VideoFrames(
        info, settings, settings.query_fps, settings.query_decode_size, with_audio=True, grey=True
    )
    views: list[ViewHash] = []
    thumbs: list[ThumbView] = []
    boxes: list[ContentBox] = []
    # The file is digested, and its soundtrack analysed, while the frames are being decoded.
    soundtrack = SoundtrackPeaks(AUDIO_SAMPLE_RATE)
    fed = 0
    windows = _windows(stream, settings.query_window_s)
    try:
        for window in windows:
            # Borders and panels are found per window, so compilations may change layout.
            pictures = [pixels for _, pixels in window]
            box = detect_content_box(pictures)
            regions = named_regions(box, detect_layout_regions(pictures))
            views.extend(query_view_hashes(window, regions))
            thumbs.extend(query_thumb_views(window, regions, settings.query_thumb_fps))
            boxes.append(box)
            for chunk in stream.take_audio():
                soundtrack.add(chunk)
                fed += len(chunk)
    except BaseException:
        windows.close()  # stops the decoding thread now, not when the traceback is let go
        pending_digests.result()  # a file that cannot be read is refused for that, as it always was
        raise
    soundtrack.add(stream.audio[fed:])
    return QuerySignals(
        info,
        pending_digests.result(),
        tuple(views),
        boxes[0] if boxes else ContentBox(),
        stream.decoded_duration_s,
        tuple(thumbs),
        _finished_peaks(soundtrack, len(stream.audio)),
    )


class _Background(Generic[_T]):
    """`function(argument)` run by a thread of its own; `result` waits for it and returns its value
    or raises its error. (Reading and hashing a file release the GIL.)"""

    def __init__(self, function: Callable[[Path], _T], argument: Path) -> None:
        self._value: _T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(function, argument), name="firebreak-digests", daemon=True
        )
        self._thread.start()

    def _run(self, function: Callable[[Path], _T], argument: Path) -> None:
        try:
            self._value = function(argument)
        except BaseException as exc:  # raised by `result`, in the caller's thread
            self._error = exc

    def result(self) -> _T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _windows(
    frames: Iterable[SampledFrame], seconds: float
) -> Generator[list[tuple[float, npt.NDArray[np.uint8]]], None, None]:
    """Consecutive runs of frames spanning `seconds` each (the last may be shorter)."""
    window: list[tuple[float, npt.NDArray[np.uint8]]] = []
    for frame in frames:
        if window and frame.timestamp - window[0][0] >= seconds:
            yield window
            window = []
        window.append((frame.timestamp, frame.pixels))
    if window:
        yield window


def _soundtrack_peaks(audio: npt.NDArray[np.float32]) -> AudioPeaks | None:
    """The soundtrack's peaks, or None when there is no audio or only silence."""
    if len(audio) < AUDIO_SAMPLE_RATE:  # under a second: nothing to match on
        return None
    peaks = soundtrack_peaks(audio, AUDIO_SAMPLE_RATE)
    return peaks if len(peaks) else None


def _finished_peaks(soundtrack: SoundtrackPeaks, samples: int) -> AudioPeaks | None:
    """`_soundtrack_peaks` of a soundtrack `samples` long, analysed as it arrived."""
    if samples < AUDIO_SAMPLE_RATE:
        return None
    peaks = soundtrack.finish()
    return peaks if len(peaks) else None


def _shrink(pixels: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    image = Image.fromarray(pixels)
    image.thumbnail((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)
