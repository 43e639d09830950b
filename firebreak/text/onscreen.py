"""On-screen text: names and slogans burned into pictures and video frames, found by the same
matcher as posts.

    image or video ──► frames (`text_ocr_fps` a second, at most `text_ocr_max_frames`)
                   ──► OCR (RapidOCR's bundled PP-OCRv4 models, offline) ──► lines with boxes
                   ──► AliasMatcher (every line, and the frame's lines joined in reading order,
                       for a phrase wrapped over two lines) ──► hits with frame time and box

A frame nearly identical to the last one read (a caption over a still shot) reuses its lines, so
a static title costs one OCR pass, not one a second. Frames are read at most `max_side` pixels on
their long side; boxes are given in the pixels of the original frame.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.classify.ocr import OcrEngine, TextLine, rapidocr_engine
from firebreak.media.decode import VideoFrames
from firebreak.media.images import load_image_rgb
from firebreak.media.probe import MediaKind, probe_media
from firebreak.settings import Settings
from firebreak.text.matcher import AliasMatcher

Pixels = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]

_MIN_CONFIDENCE = 0.5
_SAME_FRAME_MEAN_DIFF = 3.0


@dataclass(frozen=True)
class ScreenHit:
    """An organisation's alias read on screen."""

    time_s: float
    box: Box
    """x, y, width, height of the text line in the frame's own pixels."""
    line: str
    """The text OCR read there."""
    org: str
    alias: str
    span: tuple[int, int]
    """Where the alias lies in `line`."""
    confidence: float

    def to_json(self) -> dict[str, object]:
        return {
            "time_s": round(self.time_s, 3),
            "box": list(self.box),
            "text": self.line,
            "org": self.org,
            "alias": self.alias,
            "span": list(self.span),
            "confidence": round(self.confidence, 3),
        }


def media_frames(path: Path, settings: Settings) -> Iterator[tuple[float, Pixels]]:
    """(time, RGB pixels) of an image (time 0) or of a video's frames at `text_ocr_fps`."""
    info = probe_media(path, settings)
    if info.kind is MediaKind.IMAGE:
        yield 0.0, load_image_rgb(path, settings)
        return
    for count, frame in enumerate(VideoFrames(info, settings, settings.text_ocr_fps, 0)):
        if count >= settings.text_ocr_max_frames:
            return
        yield frame.timestamp, frame.pixels


class ScreenReader:
    """Reads frames' text and finds aliases in it."""

    def __init__(
        self, matcher: AliasMatcher, engine: OcrEngine | None = None, max_side: int = 960
    ) -> None:
        self.matcher = matcher
        self._engine = engine
        self.max_side = max_side
        self.frames_read = 0
        self.frames_seen = 0

    def read_media(self, path: Path, settings: Settings) -> list[ScreenHit]:
        hits: list[ScreenHit] = []
        last: tuple[npt.NDArray[np.int16], list[TextLine], float] | None = None
        for time_s, rgb in media_frames(path, settings):
            self.frames_seen += 1
            thumb = _thumb(rgb)
            if last is not None and _nearly_same(thumb, last[0]):
                lines, scale = last[1], last[2]
            else:
                lines, scale = self._read(rgb)
                last = (thumb, lines, scale)
            hits.extend(self.find(time_s, lines, scale))
        return _first_sightings(hits, 1.0 / settings.text_ocr_fps)

    def find(self, time_s: float, lines: list[TextLine], scale: float = 1.0) -> list[ScreenHit]:
        """Aliases in one frame's lines: each line alone, then the lines joined for phrases
        wrapped over two lines (a hit there is placed on the box around the lines it spans)."""
        kept = [line for line in lines if line.confidence >= _MIN_CONFIDENCE and line.text]
        hits = []
        found: set[str] = set()
        for line in kept:
            for hit in self.matcher.scan(line.text):
                found.add(hit.org)
                hits.append(
                    ScreenHit(
                        time_s,
                        _scaled(line.box, scale),
                        line.text,
                        hit.org,
                        hit.alias,
                        hit.span,
                        line.confidence,
                    )
                )
        joined = " ".join(line.text for line in kept)
        starts = np.cumsum([0] + [len(line.text) + 1 for line in kept])
        for hit in self.matcher.scan(joined):
            if hit.org in found:
                continue
            first = int(np.searchsorted(starts, hit.span[0], side="right")) - 1
            last = int(np.searchsorted(starts, hit.span[1] - 1, side="right")) - 1
            spanned = kept[first : last + 1]
            hits.append(
                ScreenHit(
                    time_s,
                    _scaled(_union([line.box for line in spanned]), scale),
                    joined,
                    hit.org,
                    hit.alias,
                    hit.span,
                    min(line.confidence for line in spanned),
                )
            )
        return hits

    def _read(self, rgb: Pixels) -> tuple[list[TextLine], float]:
        if self._engine is None:
            self._engine = _shared_read
        self.frames_read += 1
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        return self._engine(rgb), scale


_engine_lock = threading.Lock()


@functools.cache
def _shared_engine() -> OcrEngine:
    return rapidocr_engine()


def _shared_read(rgb: Pixels) -> list[TextLine]:
    """One OCR engine a process (its models take a while to load), one frame at a time."""
    with _engine_lock:
        return _shared_engine()(rgb)


def _scaled(box: Box | None, scale: float) -> Box:
    if box is None:
        return (0, 0, 0, 0)
    return (
        round(box[0] / scale),
        round(box[1] / scale),
        round(box[2] / scale),
        round(box[3] / scale),
    )


def _union(boxes: list[Box | None]) -> Box | None:
    real = [b for b in boxes if b is not None]
    if not real:
        return None
    x0 = min(b[0] for b in real)
    y0 = min(b[1] for b in real)
    x1 = max(b[0] + b[2] for b in real)
    y1 = max(b[1] + b[3] for b in real)
    return (x0, y0, x1 - x0, y1 - y0)


def _thumb(rgb: Pixels) -> npt.NDArray[np.int16]:
    grey = Image.fromarray(rgb).convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.int16)


def _nearly_same(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> bool:
    return float(np.abs(a - b).mean()) < _SAME_FRAME_MEAN_DIFF


def _first_sightings(hits: list[ScreenHit], period: float) -> list[ScreenHit]:
    """Each (organisation, alias) from the first frame it is read in, then each later frame where
    it reappears after having gone: a title held for ten seconds is one hit, not ten."""
    out: list[ScreenHit] = []
    previous: dict[tuple[str, str], float] = {}
    for hit in sorted(hits, key=lambda h: h.time_s):
        key = (hit.org, hit.alias)
        seen = previous.get(key)
        previous[key] = hit.time_s
        if seen is not None and hit.time_s - seen <= period * 1.5:
            continue
        out.append(hit)
    return out
