"""Query-side views of a frame: what a re-uploader's edits hid, undone before hashing.

Banks hold plain PDQ of whole frames (industry-compatible). A copy may be mirrored, or sit inside
bars, padding or a blurred fill; so the query hashes, besides the whole frame, its mirror image and
the content box found inside such borders (and that box's mirror). A view that matches nothing costs
one index lookup; the temporal alignment downstream keeps coincidental view hits from adding up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.signals.base import FrameHash
from firebreak.signals.pdq import pdq_hash_pixels
from firebreak.signals.thumb import thumb_vector

PDQ_SIZE = 64
_MAX_BOX_FRAMES = 64
_MIN_BORDER = 0.03  # borders thinner than this share of the frame are not worth a view


@dataclass(frozen=True)
class ContentBox:
    """The picture's box inside a frame, as fractions of the frame's height and width."""

    top: float = 0.0
    bottom: float = 1.0
    left: float = 0.0
    right: float = 1.0

    @property
    def is_whole_frame(self) -> bool:
        return (
            self.top < _MIN_BORDER
            and self.left < _MIN_BORDER
            and self.bottom > 1 - _MIN_BORDER
            and self.right > 1 - _MIN_BORDER
        )

    def crop(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        height, width = pixels.shape[:2]
        top, bottom = round(self.top * height), round(self.bottom * height)
        left, right = round(self.left * width), round(self.right * width)
        return pixels[top:bottom, left:right]


@dataclass(frozen=True)
class ViewHash:
    """A hash of one view of one query frame."""

    view: str
    frame: FrameHash


@dataclass(frozen=True)
class ThumbView:
    """The thumbnail of one view of one query frame."""

    view: str
    timestamp: float
    vector: npt.NDArray[np.float32]


def detect_content_box(frames: Sequence[npt.NDArray[np.uint8]]) -> ContentBox:
    """The box holding the moving, detailed picture across `frames`.

    A row (column) is border when its detail (mean horizontal or vertical gradient) is far below
    the frame centre's — solid bars, blurred fills — or, over several frames, when it hardly changes
    while the centre does — static caption and meme bars.
    """
    if not frames:
        return ContentBox()
    step = max(1, len(frames) // _MAX_BOX_FRAMES)
    luma = np.stack([_luma(f) for f in frames[::step]])
    live_rows = _live_lines(luma, axis=1)
    live_cols = _live_lines(luma, axis=2)
    top, bottom = _longest_run(live_rows)
    left, right = _longest_run(live_cols)
    height, width = luma.shape[1:]
    box = ContentBox(top / height, bottom / height, left / width, right / width)
    if box.bottom - box.top < 0.2 or box.right - box.left < 0.2:
        return ContentBox()  # too small to be the picture: a mostly flat frame
    return box


def _luma(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    as_float = pixels.astype(np.float32)
    return as_float if as_float.ndim == 2 else as_float.mean(axis=2)


def _live_lines(luma: npt.NDArray[np.float32], axis: int) -> npt.NDArray[np.bool_]:
    """Per row (axis=1) or column (axis=2): does it carry picture?"""
    across = 2 if axis == 1 else 1
    detail = np.abs(np.diff(luma, axis=across)).mean(axis=(0, across))
    n = detail.shape[0]
    centre = slice(int(n * 0.4), max(int(n * 0.6), int(n * 0.4) + 1))
    live: npt.NDArray[np.bool_] = detail > 0.25 * max(float(np.median(detail[centre])), 1e-3)
    if luma.shape[0] >= 3:
        change = luma.std(axis=0).mean(axis=across - 1)
        reference = float(np.median(change[centre]))
        if reference > 2.0:  # the centre moves: static lines are overlays
            live &= change > 0.2 * reference
    return live


def _longest_run(live: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """[start, end) of the longest run of live lines, bridging gaps of a few lines."""
    n = len(live)
    gap = max(1, n // 50)
    best = (0, n)
    best_len = -1
    start = None
    last_live = -gap - 1
    for i, is_live in enumerate(live):
        if not is_live:
            continue
        if start is None or i - last_live > gap:
            start = i
        last_live = i
        if last_live + 1 - start > best_len:
            best, best_len = (start, last_live + 1), last_live + 1 - start
    return best if best_len > 0 else (0, n)


def _pdq_of_view(pixels: npt.NDArray[np.uint8], timestamp: float) -> tuple[FrameHash, FrameHash]:
    """PDQ of `pixels` scaled to PDQ's working size, and of its mirror image."""
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(pixels)).resize(
            (PDQ_SIZE, PDQ_SIZE), Image.Resampling.BOX
        ),
        dtype=np.uint8,
    )
    if small.ndim == 2:  # luma only: PDQ takes RGB, and grey RGB has that luma
        small = np.repeat(small[:, :, None], 3, axis=2)
    return pdq_hash_pixels(small, timestamp), pdq_hash_pixels(small[:, ::-1], timestamp)


def query_view_hashes(
    frames: Sequence[tuple[float, npt.NDArray[np.uint8]]], box: ContentBox
) -> list[ViewHash]:
    """Hashes of every view of every (timestamp, pixels) frame."""
    views: list[ViewHash] = []
    for timestamp, pixels in frames:
        whole, mirrored = _pdq_of_view(pixels, timestamp)
        views += [ViewHash("frame", whole), ViewHash("mirror", mirrored)]
        if not box.is_whole_frame:
            inside, inside_mirrored = _pdq_of_view(box.crop(pixels), timestamp)
            views += [ViewHash("box", inside), ViewHash("box_mirror", inside_mirrored)]
    return views


def query_thumb_views(
    frames: Sequence[tuple[float, npt.NDArray[np.uint8]]], box: ContentBox, every: int
) -> list[ThumbView]:
    """Thumbnails of the views of every `every`-th frame (thumbnails change slowly in time)."""
    views: list[ThumbView] = []
    for timestamp, pixels in frames[:: max(1, every)]:
        crops = [("frame", pixels)]
        if not box.is_whole_frame:
            crops.append(("box", box.crop(pixels)))
        for name, crop in crops:
            vector = thumb_vector(crop)
            if vector.any():
                mirrored = thumb_vector(np.ascontiguousarray(crop[:, ::-1]))
                views += [
                    ThumbView(name, timestamp, vector),
                    ThumbView(f"{name}_mirror", timestamp, mirrored),
                ]
    return views
