"""What a file is (image or video), how big and how long it says it is, checked against limits."""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from firebreak.errors import MediaRejected
from firebreak.settings import Settings


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True)
class MediaInfo:
    """The facts a file declares about itself, before any pixel is decoded."""

    path: Path
    kind: MediaKind
    size_bytes: int
    width: int
    height: int
    duration_s: float
    codec: str
    has_audio: bool
    container: str = ""  # the demuxer's names, e.g. "mov,mp4,m4a,3gp,3g2,mj2"


def probe_media(path: Path, settings: Settings) -> MediaInfo:
    """Identify `path` as an image or a video and refuse it if it breaks a limit.

    Reads headers only: a decompression bomb or a ten-hour video is refused here, in milliseconds.
    """
    size = _checked_file_size(path, settings)
    image_info = _probe_still_image(path, size, settings)
    if image_info is not None:
        return image_info
    return _probe_video(path, size, settings)


def _checked_file_size(path: Path, settings: Settings) -> int:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise MediaRejected(path, "file not found") from None
    except OSError as exc:
        raise MediaRejected(path, f"cannot read file ({exc.strerror})") from None
    if not path.is_file():
        raise MediaRejected(path, "not a regular file")
    if stat.st_size == 0:
        raise MediaRejected(path, "empty file")
    if stat.st_size > settings.max_file_bytes:
        raise MediaRejected(
            path, f"file too large ({stat.st_size} bytes > limit {settings.max_file_bytes})"
        )
    return stat.st_size


def _probe_still_image(path: Path, size: int, settings: Settings) -> MediaInfo | None:
    """MediaInfo for a single-frame image Pillow recognises; None when it is not one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                frames = getattr(img, "n_frames", 1)
                fmt = (img.format or "image").lower()
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError:
        raise MediaRejected(path, "image dimensions exceed the decompression limit") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaRejected(path, f"corrupt image header ({exc})") from None
    if frames > 1:
        return None  # animated images are decoded as video
    check_pixel_count(path, width, height, settings.max_image_pixels)
    return MediaInfo(path, MediaKind.IMAGE, size, width, height, 0.0, fmt, has_audio=False)


def check_pixel_count(path: Path, width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise MediaRejected(path, f"invalid dimensions {width}x{height}")
    if width * height > limit:
        raise MediaRejected(
            path, f"resolution {width}x{height} exceeds the limit of {limit} pixels"
        )


def _probe_video(path: Path, size: int, settings: Settings) -> MediaInfo:
    try:
        container = av.open(str(path), mode="r", timeout=10.0)
    except av.error.FFmpegError as exc:
        raise MediaRejected(
            path, f"not a readable image or video ({_ffmpeg_reason(exc)})"
        ) from None
    with container:
        if not container.streams.video:
            raise MediaRejected(path, "no video stream")
        stream = container.streams.video[0]
        codec_name = _decodable_codec_name(path, stream)
        width = stream.codec_context.width
        height = stream.codec_context.height
        check_pixel_count(path, width, height, settings.max_video_pixels)
        duration = declared_duration_s(container, stream)
        if duration > settings.max_duration_s:
            raise MediaRejected(
                path,
                f"declared duration {duration:.0f} s exceeds the limit of "
                f"{settings.max_duration_s:.0f} s",
            )
        has_audio = bool(container.streams.audio)
        container_name = str(container.format.name or "")
    return MediaInfo(
        path,
        MediaKind.VIDEO,
        size,
        width,
        height,
        duration,
        codec_name,
        has_audio=has_audio,
        container=container_name,
    )


def _decodable_codec_name(path: Path, stream: av.video.stream.VideoStream) -> str:
    # PyAV 18 gives a stream that no decoder knows a codec_context of None, not an error.
    context = stream.codec_context
    try:
        codec = context.codec if context is not None else None
    except (av.error.FFmpegError, ValueError, AttributeError):
        codec = None
    name = getattr(codec, "name", None) or getattr(context, "name", None)
    if codec is None or not name or name == "none":
        raise MediaRejected(path, "unsupported video codec (no decoder available)")
    return str(name)


def declared_duration_s(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    """The duration the file claims for its video, in seconds (0 when it claims none)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / av.time_base
    return 0.0


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip().rstrip(".").lower()
