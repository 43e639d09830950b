"""Every signal of one media file, from one read of its bytes and one decoding pass."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.errors import MediaRejected
from firebreak.media import (
    DecodedVideo,
    MediaInfo,
    MediaKind,
    decode_video,
    load_image_rgb,
    probe_media,
)
from firebreak.settings import Settings
from firebreak.signals.audio import AudioPeaks, audio_peaks
from firebreak.signals.base import FrameHash
from firebreak.signals.pdq import pdq_hash_pixels
from firebreak.signals.thumb import bank_thumbs
from firebreak.signals.video import hash_sampled_frames
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
        thumbs = tuple((0.0, v) for v in bank_thumbs(pixels))
        return MediaSignals(info, digests, (pdq_hash_pixels(pixels),), 0.0, thumbs)
    decoded = decode_video(info, settings, fps, frame_size, with_audio=True)
    frames = tuple(hash_sampled_frames(decoded.frames))
    thumbs = tuple((f.timestamp, v) for f in decoded.frames for v in bank_thumbs(f.pixels))
    audio = _soundtrack_peaks(decoded)
    return MediaSignals(info, digests, frames, decoded.decoded_duration_s, thumbs, audio)


def hash_query_file(path: Path, settings: Settings) -> QuerySignals:
    """Probe, digest and hash every view of `path` for lookup.

    An image's whole-frame view is its full-size PDQ (what banks hold for images); its other views
    and every video frame are cut from small decoded frames.
    """
    info = probe_media(path, settings)
    digests = file_digests(path)
    if info.kind is MediaKind.IMAGE:
        pixels = load_image_rgb(path, settings)
        small = _shrink(pixels, settings.query_decode_size)
        box = detect_content_box([small])
        regions = named_regions(box, [])
        views = query_view_hashes([(0.0, small)], regions)
        exact = ViewHash("frame", pdq_hash_pixels(pixels))
        thumbs = query_thumb_views([(0.0, small)], regions, 1)
        return QuerySignals(info, digests, (exact, *views[1:]), box, 0.0, tuple(thumbs))
    decoded = decode_video(
        info, settings, settings.query_fps, settings.query_decode_size, with_audio=True, grey=True
    )
    frames = [(f.timestamp, f.pixels) for f in decoded.frames]
    pictures = [f.pixels for f in decoded.frames]
    box = detect_content_box(pictures)
    regions = named_regions(box, detect_layout_regions(pictures))
    views = query_view_hashes(frames, regions)
    every = max(1, round(settings.query_fps / settings.query_thumb_fps))
    thumbs = query_thumb_views(frames, regions, every)
    return QuerySignals(
        info,
        digests,
        tuple(views),
        box,
        decoded.decoded_duration_s,
        tuple(thumbs),
        _soundtrack_peaks(decoded),
    )


def _soundtrack_peaks(decoded: DecodedVideo) -> AudioPeaks | None:
    """The soundtrack's peaks, or None when there is no audio or only silence."""
    if len(decoded.audio) < decoded.audio_rate:  # under a second: nothing to match on
        return None
    peaks = audio_peaks(decoded.audio, decoded.audio_rate)
    return peaks if len(peaks) else None


def _shrink(pixels: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    image = Image.fromarray(pixels)
    image.thumbnail((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)
