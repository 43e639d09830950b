"""Integer box reduction of a grey plane, bit for bit what Pillow's `Image.reduce` makes of it.

Every decoded query frame is shrunk from its luma plane before anything else looks at it, so this
runs once a frame at full decoded size: Pillow's general N×M reduction spends about a nanosecond a
pixel there, several times what summing rows first (contiguous, vectorised) and then columns costs.
The kernel reads the decoder's plane in place (rows may be padded), releases the GIL, and rounds
as Pillow does, partial blocks at the right and bottom edges included.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt


@functools.lru_cache(maxsize=64)
def _multipliers(block: int) -> npt.NDArray[np.uint32]:
    """Pillow's fixed-point reciprocals of 1..block pixels: 2³² / (256·n) in single precision,
    truncated, so that (sum + n/2) × m >> 24 is the rounded mean."""
    counts = np.arange(1, block + 1, dtype=np.float32)
    reciprocals = np.float32(4294967296.0) / (np.float32(256.0) * counts)
    return np.concatenate(([0], reciprocals.astype(np.uint32))).astype(np.uint32)


def _reduce_kernel(
    src: Any, factor_x: int, factor_y: int, multipliers: Any, rows: Any, out: Any
) -> None:  # pragma: no cover - compiled by numba
    height, width = src.shape
    out_height, out_width = out.shape
    whole = width // factor_x
    sums = np.empty(whole, dtype=np.uint32)
    for oy in range(out_height):
        top = oy * factor_y
        bottom = min(top + factor_y, height)
        line = src[top]
        for x in range(width):
            rows[x] = line[x]
        for y in range(top + 1, bottom):
            line = src[y]
            for x in range(width):
                rows[x] += line[x]
        tall = bottom - top
        block = tall * factor_x
        multiplier = multipliers[block]
        for ox in range(whole):
            sums[ox] = block // 2
        for k in range(factor_x):
            for ox in range(whole):
                sums[ox] += rows[ox * factor_x + k]
        for ox in range(whole):
            out[oy, ox] = (sums[ox] * multiplier) >> 24
        if whole < out_width:  # the partial block at the right edge
            total = np.uint32(0)
            for x in range(whole * factor_x, width):
                total += rows[x]
            block = tall * (width - whole * factor_x)
            out[oy, whole] = ((total + block // 2) * multipliers[block]) >> 24


_compiled = cast(Any, numba.njit(cache=True, nogil=True)(_reduce_kernel))


def box_reduce(plane: npt.NDArray[np.uint8], factor_x: int, factor_y: int) -> npt.NDArray[np.uint8]:
    """`plane` (rows × columns, uint8; rows may be strided) reduced by whole factors: each output
    pixel the rounded mean of a factor_x × factor_y block, the last column and row over what is
    left. Equal to `np.asarray(Image.fromarray(plane).reduce((factor_x, factor_y)))`."""
    if plane.ndim != 2 or plane.dtype != np.uint8:
        raise ValueError("box_reduce takes a 2-D uint8 plane")
    if factor_x < 1 or factor_y < 1:
        raise ValueError("reduction factors are whole numbers from 1")
    height, width = plane.shape
    if plane.strides[1] != 1:
        plane = np.ascontiguousarray(plane)
    out = np.empty((-(-height // factor_y), -(-width // factor_x)), dtype=np.uint8)
    # Sums of a column's rows: 16 bits (faster) hold up to 257 rows of 255.
    rows = np.empty(width, dtype=np.uint16 if factor_y <= 257 else np.uint32)
    if out.size:
        _compiled(plane, factor_x, factor_y, _multipliers(factor_x * factor_y), rows, out)
    return out
