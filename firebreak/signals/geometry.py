"""Pictures inside a frame that are not lined up with it: insets and filmed screens.

An inset (picture-in-picture) is a rectangle whose sides are straight edges at the same place in
every frame, whatever moves inside or around it. A filmed screen is a bright quadrilateral on a
darker surround: perspective turns the picture's rectangle into a quadrilateral, which a homography
maps back before hashing. Both work on the grey frames (frames × rows × columns) of a stretch of
video at query size; positions are returned as fractions of the frame.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]
"""top, bottom, left, right, as fractions of the frame's height and width."""
Corners = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
"""(x, y) of the top-left, top-right, bottom-right and bottom-left corners, as fractions."""

_EDGE_STEP = 4.0  # grey levels: a smaller step between neighbouring pixels is no edge
_SIDE_SHARE = 0.5  # an inset's side is an edge in at least this share of frames and rows...
_SIDE_CONTRAST = 0.2  # ...and in this much more of them than the lines two pixels away
_MIN_INSET = 0.12  # an inset narrower or lower than this share of the frame is not hashed
_MAX_INSET_AREA = 0.7  # larger "insets" are the picture itself, in its borders
_CANDIDATE_LINES = 8
_EDGE_FRAMES = 16  # frames enough to tell a persistent edge from a passing one
_TOGETHER = 0.4  # correlation of frame-to-frame changes across a line: one picture runs across
_STILL = 1.0  # mean square change (grey levels²) below which a side of a line is still

_MIN_SCREEN_CONTRAST = 20.0  # grey levels between a lit screen and its surround
_SCREEN_EDGE = 0.2  # the screen's edge is where the grey rises this far from surround to screen
_MAX_SLOPE = 0.4  # a screen's side leans at most this much (perspective, tilt)
_SIDE_INLIERS = 0.5  # share of the scanned rows (columns) whose edge lies on the fitted side
_MIN_SCREEN_AREA = 0.3
_SKEW = 0.015  # corners this close to an upright rectangle's are a box, not a quadrilateral


def find_insets(luma: npt.NDArray[np.float32]) -> list[Box]:
    """The best-evidenced inset rectangle in `luma` (frames × rows × columns), if any.

    Per frame, a pixel is on a vertical (horizontal) edge when the step to its right (below)
    neighbour is a local maximum along the row (column); a side of an inset is a straight run of
    such pixels in most frames, standing out from the lines beside it, across which the picture
    does not change alike (two unrelated pictures meet there). Candidate lines are the columns and
    rows holding long such runs; a rectangle between them (or the frame's border) with at least
    three inner sides, each evidenced along its whole length, is an inset. Neither picture needs
    to move: a still inset over moving footage, or moving footage over a still, is found too."""
    frames, height, width = luma.shape
    if frames < 2 or min(height, width) < 16:
        return []
    luma = luma[:: max(1, frames // _EDGE_FRAMES)]
    vertical = _SideEvidence(luma)
    horizontal = _SideEvidence(luma.transpose(0, 2, 1))
    xs = sorted({0, width, *(x + 1 for x in vertical.candidates())})
    ys = sorted({0, height, *(y + 1 for y in horizontal.candidates())})
    best: tuple[int, float, Box] | None = None
    for (left, right), (top, bottom) in itertools.product(
        itertools.combinations(xs, 2), itertools.combinations(ys, 2)
    ):
        if right - left < _MIN_INSET * width or bottom - top < _MIN_INSET * height:
            continue
        if (right - left) * (bottom - top) > _MAX_INSET_AREA * width * height:
            continue
        inner = [(vertical, x, top, bottom) for x in (left, right) if 0 < x < width]
        inner += [(horizontal, y, left, right) for y in (top, bottom) if 0 < y < height]
        if len(inner) < 3:
            continue  # two sides may be bars, or any two edges that happen to meet
        evidenced = [evidence.inset_side(*side) for evidence, *side in inner]
        sides = [side for side in evidenced if side is not None]
        # An inset's sides end at its corners; lines running through are edges of bars or
        # panels. One of four may run on by coincidence with the footage around the inset.
        ending = sum(1 for _, runs_on in sides if not runs_on)
        if len(sides) < len(inner) or ending < 3:
            continue
        key = (ending, min(contrast for contrast, _ in sides))
        if best is None or key > best[:2]:
            best = (*key, (top / height, bottom / height, left / width, right / width))
    return [] if best is None else [best[2]]


def _past(start: int, end: int, length: int) -> list[tuple[int, int]]:
    """The stretches just past either end of the segment [start, end) of a line `length` long,
    half the segment's length each where there is room (none shorter than a few pixels)."""
    reach = max(3, (end - start) // 2)
    stretches = [(max(0, start - reach), start), (end, min(length, end + reach))]
    return [(a, b) for a, b in stretches if b - a >= 3]


def _edge_persistence(luma: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows × (columns - 1): the share of frames in which the step between a pixel and its right
    neighbour is an edge, and the largest among its own and the steps either side of it."""
    step = np.abs(np.diff(luma, axis=2))
    inner = step[:, :, 1:-1]
    edge = (inner >= step[:, :, :-2]) & (inner >= step[:, :, 2:]) & (inner >= _EDGE_STEP)
    persistence = np.zeros(step.shape[1:], dtype=np.float32)
    persistence[:, 1:-1] = edge.mean(axis=0, dtype=np.float32)  # the outermost steps: no sides
    return persistence


class _SideEvidence:
    """What speaks for an inset's side on each column of `luma` (frames × rows × columns): running
    sums down each column of its edge persistence and of its neighbours' two columns away, so that
    the evidence for any vertical segment costs O(1); and the frames' changes either side of it."""

    def __init__(self, luma: npt.NDArray[np.float32]) -> None:
        self._luma = luma
        persistence = _edge_persistence(luma)
        beside = 0.5 * (
            np.pad(persistence, ((0, 0), (2, 0)), mode="edge")[:, :-2]
            + np.pad(persistence, ((0, 0), (0, 2)), mode="edge")[:, 2:]
        )
        self._on = np.pad(np.cumsum(persistence, axis=0, dtype=np.float64), ((1, 0), (0, 0)))
        self._beside = np.pad(np.cumsum(beside, axis=0, dtype=np.float64), ((1, 0), (0, 0)))
        self._rows = persistence.shape[0]
        self._sides: dict[tuple[int, int, int], tuple[float, bool] | None] = {}
        self._change_sums: dict[int, npt.NDArray[np.float64]] = {}

    def side(self, column: int, start: int, end: int) -> tuple[float, float]:
        """(share of edge pixels, excess over the lines beside) along rows [start, end)."""
        n = max(1, end - start)
        share = float(self._on[end, column] - self._on[start, column]) / n
        beside = float(self._beside[end, column] - self._beside[start, column]) / n
        return share, share - beside

    def inset_side(self, boundary: int, start: int, end: int) -> tuple[float, bool] | None:
        """For a side on the line before pixel `boundary`, along [start, end): its contrast and
        whether the line runs on past both of its ends; None when the line is no edge there."""
        key = (boundary, start, end)
        if key not in self._sides:
            share, contrast = self.side(boundary - 1, start, end)
            if (
                share < _SIDE_SHARE
                or contrast < _SIDE_CONTRAST
                or self._changes_together(boundary, start, end)
            ):
                self._sides[key] = None
            else:
                past = _past(start, end, self._rows)
                runs_on = bool(past) and all(
                    self.side(boundary - 1, a, b)[1] >= _SIDE_CONTRAST for a, b in past
                )
                self._sides[key] = (contrast, runs_on)
        return self._sides[key]

    def _changes_together(self, boundary: int, start: int, end: int) -> bool:
        """Whether the picture changes alike on both sides of the line before `boundary` along
        [start, end): one picture runs across it (pixelation's or a codec's blocks, a
        see-through logo), where an inset's side is where two unrelated pictures meet."""
        if boundary not in self._change_sums:
            columns = self._luma.shape[2]
            outside = np.diff(self._luma[:, :, max(0, boundary - 2)], axis=0)
            inside = np.diff(self._luma[:, :, min(columns - 1, boundary + 1)], axis=0)
            products = np.stack([outside * outside, inside * inside, outside * inside])
            running = np.cumsum(products.sum(axis=1), axis=1, dtype=np.float64)
            self._change_sums[boundary] = np.pad(running, ((0, 0), (1, 0)))
        sums = self._change_sums[boundary]
        outside_energy, inside_energy, both = sums[:, end] - sums[:, start]
        count = max(1, (self._luma.shape[0] - 1) * (end - start))
        if min(outside_energy, inside_energy) < _STILL * count:
            return False  # a still side tells nothing
        return float(both / math.sqrt(outside_energy * inside_energy)) >= _TOGETHER

    def candidates(self) -> list[int]:
        """Columns holding a run of a minimal side's length that is evidenced as a side."""
        run = max(2, int(_MIN_INSET * self._rows))
        share = (self._on[run:] - self._on[:-run]) / run
        contrast = share - (self._beside[run:] - self._beside[:-run]) / run
        score = np.where(share >= _SIDE_SHARE, contrast, 0.0).max(axis=0)
        found: list[int] = []
        for column in np.argsort(-score):
            if score[column] < _SIDE_CONTRAST or len(found) == _CANDIDATE_LINES:
                break
            if all(abs(int(column) - f) > 2 for f in found):
                found.append(int(column))
        return found


def find_screen(luma: npt.NDArray[np.float32]) -> Corners | None:
    """The corners of a lit screen filmed at an angle, when `luma` shows one.

    The screen is brighter than its surround; along each row (column) its edge is the first
    crossing of a level between the surround's grey and the screen's. Each side is the straight
    line most of those crossings agree on (so dark picture at the edge, glare or a bezel's shadow
    do not bend it); the corners are where the sides meet."""
    frames, height, width = luma.shape
    if frames < 2 or min(height, width) < 16:
        return None
    # What each pixel shows when lit: the brightest of a few stretches' means (dark moments and
    # noise aside).
    stretches = np.array_split(np.arange(frames), min(4, frames))
    lit = np.max([luma[s].mean(axis=0) for s in stretches], axis=0).astype(np.float32)
    rim = max(1, min(height, width) // 30)
    surround = float(
        np.median(
            np.concatenate(
                [lit[:rim].ravel(), lit[-rim:].ravel(), lit[:, :rim].ravel(), lit[:, -rim:].ravel()]
            )
        )
    )
    screen = float(np.median(lit[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]))
    if screen - surround < _MIN_SCREEN_CONTRAST:
        return None
    level = surround + _SCREEN_EDGE * (screen - surround)
    rows, lefts, rights = _crossings(lit, level)
    columns, tops, bottoms = _crossings(lit.T, level)
    sides = [_straight_side(rows, lefts), _straight_side(rows, rights)]
    sides += [_straight_side(columns, tops), _straight_side(columns, bottoms)]
    if any(s is None for s in sides):
        return None
    (left, right, top, bottom) = (s for s in sides if s is not None)
    corners = (
        _meet(left, top, width, height),
        _meet(right, top, width, height),
        _meet(right, bottom, width, height),
        _meet(left, bottom, width, height),
    )
    if not _plausible_screen(corners):
        return None
    return corners


def _crossings(
    lit: npt.NDArray[np.float32], level: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per row of the middle 80 %: the first rise above `level` from the left and the last fall
    below it on the right, to a fraction of a pixel (positions in pixel units, NaN when none)."""
    height, width = lit.shape
    rows = np.arange(int(0.1 * height), int(0.9 * height))
    above = lit[rows] >= level
    counts = above.sum(axis=1)
    first = np.argmax(above, axis=1)
    last = width - 1 - np.argmax(above[:, ::-1], axis=1)
    usable = counts >= 0.2 * width
    lefts = np.full(len(rows), np.nan)
    rights = np.full(len(rows), np.nan)
    inner = usable & (first > 0)
    r, i = rows[inner], first[inner]
    before, at = lit[r, i - 1], lit[r, i]
    lefts[inner] = i - 0.5 + (level - before) / np.maximum(at - before, 1e-3)
    inner = usable & (last < width - 1)
    r, j = rows[inner], last[inner]
    at, after = lit[r, j], lit[r, j + 1]
    rights[inner] = j + 0.5 + (at - level) / np.maximum(at - after, 1e-3)
    return rows.astype(np.float64) + 0.5, lefts, rights


def _straight_side(
    along: npt.NDArray[np.float64], across: npt.NDArray[np.float64]
) -> tuple[float, float] | None:
    """(slope, intercept) of the line `across = slope × along + intercept` most points lie on
    (within a pixel and a half), when enough of them do."""
    known = ~np.isnan(across)
    t, s = along[known], across[known]
    if len(t) < max(10, _SIDE_INLIERS * len(along)):
        return None
    # Vote: every point, for every candidate slope, for the intercept its line would have;
    # each candidate's votes fill one row of bins (one empty bin at either end).
    slopes = np.linspace(-_MAX_SLOPE, _MAX_SLOPE, 161)
    offsets = s[None, :] - slopes[:, None] * t[None, :]
    low = offsets.min(axis=1)
    bins = np.round(offsets - low[:, None]).astype(np.int64) + 1
    row = int(bins.max()) + 2
    votes = np.bincount((bins + row * np.arange(len(slopes))[:, None]).ravel(), minlength=row)
    votes = np.pad(votes, (0, len(slopes) * row - len(votes))).reshape(len(slopes), row)
    window = votes[:, :-2] + votes[:, 1:-1] + votes[:, 2:]  # three bins, centred one to the right
    best, centre = np.unravel_index(int(np.argmax(window)), window.shape)
    slope, intercept = float(slopes[best]), float(centre + low[best])
    inliers = np.abs(s - slope * t - intercept) <= 1.5
    if inliers.sum() < _SIDE_INLIERS * len(along):
        return None
    fitted = np.polyfit(t[inliers], s[inliers], 1)
    return float(fitted[0]), float(fitted[1])


def _meet(
    upright: tuple[float, float], level: tuple[float, float], width: int, height: int
) -> tuple[float, float]:
    """Where `x = a·y + b` (a left or right side) meets `y = c·x + d` (a top or bottom), as
    fractions of the frame."""
    a, b = upright
    c, d = level
    y = (c * b + d) / (1.0 - c * a)
    return (a * y + b) / width, y / height


def _plausible_screen(corners: Corners) -> bool:
    """A convex quadrilateral inside the frame, large, and not an upright rectangle (borders
    around an upright picture are the content box's business)."""
    xs = np.array([x for x, _ in corners])
    ys = np.array([y for _, y in corners])
    if xs.min() < -0.02 or ys.min() < -0.02 or xs.max() > 1.02 or ys.max() > 1.02:
        return False
    edges = np.roll(np.stack([xs, ys], axis=1), -1, axis=0) - np.stack([xs, ys], axis=1)
    turns = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    if not (turns > 0).all():
        return False
    area = 0.5 * float(np.sum(xs * np.roll(ys, -1) - np.roll(xs, -1) * ys))
    if area < _MIN_SCREEN_AREA:
        return False
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners
    skew = max(abs(x0 - x3), abs(x1 - x2), abs(y0 - y1), abs(y3 - y2))
    return skew > _SKEW


@dataclass(frozen=True)
class _Sampler:
    """Where to read each output pixel of a warp: four source indices and weights apiece."""

    indices: npt.NDArray[np.intp]
    weights: npt.NDArray[np.float32]


@functools.lru_cache(maxsize=32)
def _sampler(corners: Corners, height: int, width: int, size: int) -> _Sampler:
    """Bilinear sampling of the quadrilateral `corners` of a height × width frame onto a
    (2·size)² grid, for a 2×2 box reduction to size² afterwards."""
    grid = 2 * size
    h = homography(((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), corners)
    centres = (np.arange(grid) + 0.5) / grid
    u, v = np.meshgrid(centres, centres)
    points = np.stack([u.ravel(), v.ravel(), np.ones(grid * grid)])
    mapped = h @ points
    x = np.clip(mapped[0] / mapped[2] * width - 0.5, 0.0, width - 1.001)
    y = np.clip(mapped[1] / mapped[2] * height - 0.5, 0.0, height - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    fx, fy = x - x0, y - y0
    base = y0 * width + x0
    indices = np.stack([base, base + 1, base + width, base + width + 1])
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    return _Sampler(indices, weights.astype(np.float32))


def homography(source: Corners, target: Corners) -> npt.NDArray[np.float64]:
    """The 3×3 projective map taking each of four `source` points to its `target` point."""
    rows = []
    values = []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        values += [u, v]
    solved = np.linalg.solve(np.array(rows), np.array(values))
    return np.append(solved, 1.0).reshape(3, 3)


def unwarp(pixels: npt.NDArray[np.uint8], corners: Corners, size: int) -> npt.NDArray[np.uint8]:
    """The quadrilateral `corners` of `pixels` (grey or RGB) as an upright size × size picture."""
    height, width = pixels.shape[:2]
    sampler = _sampler(corners, height, width, size)
    flat = pixels.reshape(height * width, -1)
    picked = np.einsum("kn,knc->nc", sampler.weights, flat[sampler.indices].astype(np.float32))
    reduced = picked.reshape(size, 2, size, 2, -1).mean(axis=(1, 3))
    out: npt.NDArray[np.uint8] = np.clip(reduced + 0.5, 0, 255).astype(np.uint8)
    return out[:, :, 0] if pixels.ndim == 2 else out
