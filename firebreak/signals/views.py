"""Query-side views of a frame: what a re-uploader's edits hid, undone before hashing.

Banks hold plain PDQ of whole frames (industry-compatible). A copy may be mirrored, or sit inside
bars, padding or a blurred fill; so the query hashes, besides the whole frame, its mirror image and
the content box found inside such borders (and that box's mirror). A copy may also be one panel of
a composed frame, a small inset over other footage, or a screen filmed at an angle: those regions
are found per stretch of video (`detect_layout_regions`) and hashed as pictures of their own, a
filmed screen after its perspective is undone. A view that matches nothing costs one index lookup;
the temporal alignment downstream keeps coincidental view hits from adding up.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.signals.base import FrameHash
from firebreak.signals.geometry import Corners, find_insets, find_screen, unwarp
from firebreak.signals.pdq import PDQ_SIZE, pdq_hash_luma64
from firebreak.signals.thumb import box_scaled_lumas, thumb_vectors

_MAX_BOX_FRAMES = 32
_MIN_BORDER = 0.03  # borders thinner than this share of the frame are not worth a view
_SEAM_CONTRAST = 0.4  # a seam's decorrelation above its neighbourhood's
_SEAM_BACKGROUND = 0.5  # neighbourhoods busier than this (noise, texture) hold no seams
_MAX_SEAMS = 3
_MAX_LAYOUT_CELLS = 6


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

    def close_to(self, other: ContentBox, tolerance: float = _MIN_BORDER) -> bool:
        """Whether every side lies within `tolerance` (of the frame) of `other`'s."""
        return (
            abs(self.top - other.top) <= tolerance
            and abs(self.bottom - other.bottom) <= tolerance
            and abs(self.left - other.left) <= tolerance
            and abs(self.right - other.right) <= tolerance
        )

    def crop(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        height, width = pixels.shape[:2]
        top, bottom = round(self.top * height), round(self.bottom * height)
        left, right = round(self.left * width), round(self.right * width)
        return pixels[top:bottom, left:right]


@dataclass(frozen=True)
class ScreenBox(ContentBox):
    """A picture seen at an angle (a filmed screen): the box bounds it, `corners` (x, y fractions:
    top-left, top-right, bottom-right, bottom-left) outline it, and `crop` straightens it."""

    corners: Corners = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))

    @classmethod
    def around(cls, corners: Corners) -> ScreenBox:
        xs = [min(max(x, 0.0), 1.0) for x, _ in corners]
        ys = [min(max(y, 0.0), 1.0) for _, y in corners]
        return cls(min(ys), max(ys), min(xs), max(xs), corners)

    def crop(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return unwarp(pixels, self.corners, PDQ_SIZE)


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


def detect_layout_regions(frames: Sequence[npt.NDArray[np.uint8]]) -> list[ContentBox]:
    """Regions of a composed or filmed frame that may each hold a whole picture: the panels
    between persistent straight seams, an inset, and a screen filmed at an angle.

    Side-by-side and stacked "reaction" layouts and picture-in-picture insets put a straight edge
    at a fixed place in every frame, where two unrelated pictures meet. Inside one picture,
    neighbouring lines change together from frame to frame; across a seam they change
    independently. A seam is a line whose frame-to-frame changes decorrelate from its neighbour's
    while the lines around it stay correlated; the cells of the grid the seams draw are looked at
    as pictures of their own. An inset's sides need not change at all, nor span the frame: an inset
    is a rectangle whose sides are edges in most frames (`find_insets`). A filmed screen is a lit
    quadrilateral (`find_screen`).
    """
    if len(frames) < 3:
        return []
    step = max(1, len(frames) // _MAX_BOX_FRAMES)
    luma = np.stack([_luma(f) for f in frames[::step]])
    height, width = luma.shape[1:]
    columns = _seams(luma, width)
    rows = _seams(luma.transpose(0, 2, 1), height)
    regions: list[ContentBox] = []
    if columns or rows:
        xs = [0, *columns, width]
        ys = [0, *rows, height]
        for top, bottom in itertools.pairwise(ys):
            for left, right in itertools.pairwise(xs):
                if (bottom - top) >= 0.15 * height and (right - left) >= 0.15 * width:
                    box = ContentBox(top / height, bottom / height, left / width, right / width)
                    regions.append(box)
        regions = regions[:_MAX_LAYOUT_CELLS]
    for inset in find_insets(luma):
        # An inset's sides are placed along the inset itself, a seam's across the whole frame:
        # the inset's box replaces a cell that is (nearly) the same.
        box = ContentBox(*inset)
        same = [i for i, cell in enumerate(regions) if box.close_to(cell)]
        if same:
            regions[same[0]] = box
        else:
            regions.append(box)
    corners = find_screen(luma)
    if corners is not None:
        regions.append(ScreenBox.around(corners))
    return regions


def _seams(luma: npt.NDArray[np.float32], length: int) -> list[int]:
    """Positions of seams between columns of `luma` (frames × rows × columns); a seam between
    columns i and i+1 is reported as i+1. A seam may span only part of the frame (an inset's side),
    so each is judged on the best of four bands of rows."""
    change = np.diff(luma, axis=0)
    left, right = change[:, :, :-1], change[:, :, 1:]
    decorrelation = np.zeros(left.shape[2], dtype=np.float32)
    for rows in np.array_split(np.arange(luma.shape[1]), 4):
        a, b = left[:, rows, :], right[:, rows, :]
        energy = np.sqrt((a * a).sum(axis=(0, 1)) * (b * b).sum(axis=(0, 1)))
        together = (a * b).sum(axis=(0, 1)) / (energy + 1e-6)
        moving = energy / max(1, a.shape[0] * a.shape[1]) > 1.0  # still lines prove nothing
        decorrelation = np.maximum(decorrelation, np.where(moving, 1.0 - together, 0.0))
    n = decorrelation.shape[0]
    radius = max(3, n // 40)
    padded = np.pad(decorrelation, radius, mode="edge")
    background = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1), axis=1)
    margin = max(2, int(0.02 * length))
    found: list[int] = []
    for position in np.argsort(-(decorrelation - background)):
        score, around = float(decorrelation[position]), float(background[position])
        if score - around < _SEAM_CONTRAST or len(found) == _MAX_SEAMS:
            break
        if around > _SEAM_BACKGROUND or not margin <= position < n - margin:
            continue
        if all(abs(int(position) - f) > 0.1 * length for f in found):
            found.append(int(position))
    return sorted(p + 1 for p in found)


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


def _pdq_size_luma(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """`pixels` as luma box-scaled to PDQ's working size."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if image.mode != "L":
        image = image.convert("L")
    small = image.resize((PDQ_SIZE, PDQ_SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def _pdq_size_lumas(crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.uint8]:
    """`_pdq_size_luma` of each of `crops`, as one array (crops × 64 × 64)."""
    return box_scaled_lumas(crops, PDQ_SIZE, _pdq_size_luma)


def named_regions(box: ContentBox, panels: Sequence[ContentBox]) -> list[tuple[str, ContentBox]]:
    """The regions a query frame is looked at in: the whole frame, its content box, its panels
    (a filmed screen among them is named so)."""
    regions = [("frame", ContentBox())]
    if not box.is_whole_frame:
        regions.append(("box", box))
    regions += [
        (f"screen{i}" if isinstance(panel, ScreenBox) else f"panel{i}", panel)
        for i, panel in enumerate(panels)
    ]
    return regions


def query_view_hashes(
    frames: Sequence[tuple[float, npt.NDArray[np.uint8]]],
    regions: Sequence[tuple[str, ContentBox]],
) -> list[ViewHash]:
    """PDQ of every region of every (timestamp, pixels) frame, as it is and mirrored."""
    names = [name for name, _ in regions] * len(frames)
    timestamps = [timestamp for timestamp, _ in frames for _ in regions]
    if not names:
        return []
    # Each region of every frame at once (frames × regions, in that order).
    per_region = [
        _pdq_size_lumas([region.crop(pixels) for _, pixels in frames]) for _, region in regions
    ]
    lumas = np.stack(per_region, axis=1).reshape(-1, PDQ_SIZE, PDQ_SIZE)
    straight, mirrored = pdq_hash_luma64(lumas, timestamps)
    views: list[ViewHash] = []
    for name, plain, flipped in zip(names, straight, mirrored, strict=True):
        views += [ViewHash(name, plain), ViewHash(f"{name}_mirror", flipped)]
    return views


def query_thumb_views(
    frames: Sequence[tuple[float, npt.NDArray[np.uint8]]],
    regions: Sequence[tuple[str, ContentBox]],
    fps: float,
) -> list[ThumbView]:
    """Thumbnails of the regions of about `fps` frames a second (thumbnails change slowly).

    Frames are picked by time, not by count, since the decoder may hand over frames unevenly."""
    views: list[ThumbView] = []
    picked = [
        (timestamp, pixels)
        for i, (timestamp, pixels) in enumerate(frames)
        if i == 0 or math.floor(timestamp * fps) != math.floor(frames[i - 1][0] * fps)
    ]
    if not picked:
        return views
    straight: list[list[npt.NDArray[np.float32]]] = []
    flipped: list[list[npt.NDArray[np.float32]]] = []
    for _, region in regions:
        crops = [region.crop(pixels) for _, pixels in picked]
        straight.append(thumb_vectors(crops))
        flipped.append(thumb_vectors([crop[:, ::-1] for crop in crops]))
    for i, (timestamp, _) in enumerate(picked):
        for r, (name, _) in enumerate(regions):
            vector = straight[r][i]
            if vector.any():
                views += [
                    ThumbView(name, timestamp, vector),
                    ThumbView(f"{name}_mirror", timestamp, flipped[r][i]),
                ]
    return views
