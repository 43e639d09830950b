"""Frame thumbnails: an 8×8 grey picture as a unit vector, Firebreak's crop-tolerant frame signal.

PDQ loses a frame once ~5 % of it is cropped away or it is turned by a few degrees; an 8×8 grey
thumbnail, centred and normalised, still correlates above 0.9 with its original after a 10 % crop
or a 3° rotation, and is blind to brightness and contrast. It is much less specific than PDQ, so it
only counts as evidence when several frames align in time (see `firebreak.match`). Banks hold two
thumbnails per sampled frame, of the whole frame and of its centre, so that heavier crops meet the
centre one. Firebreak-only: hash lists in industry formats leave it out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.signals.base import SignalType

THUMB_SIDE = 8
THUMB_DIMENSION = THUMB_SIDE * THUMB_SIDE
BANK_CROPS = (1.0, 0.8)  # whole frame, centre 80 %
_HEX_LENGTH = THUMB_DIMENSION * 2
_HEX = re.compile(r"[0-9a-f]+")


class ThumbSignal(SignalType):
    """A frame thumbnail; distance is `round((1 - cosine) × 1000)`."""

    name = "thumb"
    exchange_name = "firebreak_thumb"
    industry = False
    default_threshold = 120  # cosine ≥ 0.88

    @classmethod
    def validate(cls, value: str) -> str:
        normalised = value.strip().lower()
        if len(normalised) != _HEX_LENGTH:
            raise ValueError(f"a thumbnail is {_HEX_LENGTH} hex digits, got {len(normalised)}")
        if not _HEX.fullmatch(normalised):  # bytes.fromhex would take spaces between digits
            raise ValueError(f"a thumbnail is hex digits only: {value[:80]!r}")
        return normalised

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        va, vb = decode_thumbs([cls.validate(a), cls.validate(b)])
        return max(0, round((1.0 - float(va @ vb)) * 1000))


def thumb_vector(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The unit thumbnail vector of an RGB (H×W×3) or grey (H×W) picture; zeros when flat."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    grey = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    return _unit(np.asarray(grey, dtype=np.float32).reshape(-1))


def thumb_vectors(pictures: Sequence[npt.NDArray[np.uint8]]) -> list[npt.NDArray[np.float32]]:
    """`thumb_vector` of each of `pictures`, the same to the bit, scaled in one go where they are
    all one size."""
    thumbs = box_scaled_lumas(pictures, THUMB_SIDE, _thumb_luma)
    return [_unit(row) for row in thumbs.astype(np.float32).reshape(-1, THUMB_DIMENSION)]


def _thumb_luma(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    image = Image.fromarray(np.ascontiguousarray(pixels))
    grey = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.uint8)


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    vector -= vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-3 * THUMB_DIMENSION else np.zeros_like(vector)


def box_scaled_lumas(
    pictures: Sequence[npt.NDArray[np.uint8]],
    side: int,
    one: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]],
) -> npt.NDArray[np.uint8]:
    """Each of `pictures` as luma box-scaled to `side`×`side` (pictures × side × side): what `one`
    (Pillow's BOX resize of one picture) makes of each, bit for bit, at a fraction of the calls.

    Pictures of one size are stacked into one tall picture and scaled in two single-axis passes.
    Across, each row is scaled on its own; down, a box filter scaling n·h rows to n·side weighs
    each output row by the same input rows, at the same weights, as scaling h to side does (h /
    side is a binary fraction, so every weight is computed exactly). Pillow scales a picture
    across then down or down then across, depending on its size, rounding in between: the stack
    takes the order Pillow takes for one picture (`_pass_order`). Pictures of mixed sizes are
    scaled one by one."""
    if not pictures:
        return np.zeros((0, side, side), dtype=np.uint8)
    shape = pictures[0].shape
    order = _pass_order(shape[0], shape[1], side) if min(shape[:2]) > 0 else None
    if order is None or len(pictures) == 1 or any(p.shape != shape for p in pictures):
        return np.stack([one(p) for p in pictures])
    height, width = shape[:2]
    count = len(pictures)
    image = Image.fromarray(np.stack(pictures).reshape(count * height, width, *shape[2:]))
    if image.mode != "L":
        image = image.convert("L")
    middle = (side, count * height) if order == "across" else (width, count * side)
    scaled = image.resize(middle, Image.Resampling.BOX)
    scaled = scaled.resize((side, count * side), Image.Resampling.BOX)
    return np.asarray(scaled, dtype=np.uint8).reshape(count, side, side)


@functools.lru_cache(maxsize=256)
def _pass_order(height: int, width: int, side: int) -> str | None:
    """Which pass Pillow's BOX resize of a height × width grey picture to side × side makes first,
    "across" or "down", found by trying it on noise; None if neither reproduces it."""
    noise = np.random.default_rng(height * 65_537 + width).integers(0, 256, (height, width))
    image = Image.fromarray(noise.astype(np.uint8))
    box = Image.Resampling.BOX
    direct = np.asarray(image.resize((side, side), box))
    across = np.asarray(image.resize((side, height), box).resize((side, side), box))
    if np.array_equal(direct, across):
        return "across"
    down = np.asarray(image.resize((width, side), box).resize((side, side), box))
    return "down" if np.array_equal(direct, down) else None


def centre_crop(pixels: npt.NDArray[np.uint8], share: float) -> npt.NDArray[np.uint8]:
    if share >= 1.0:
        return pixels
    height, width = pixels.shape[:2]
    dy, dx = round(height * (1 - share) / 2), round(width * (1 - share) / 2)
    return pixels[dy : height - dy, dx : width - dx]


def bank_thumbs(pixels: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
    """The thumbnails a bank keeps for one frame (whole frame, centre crop); none when flat."""
    vectors = [thumb_vector(centre_crop(pixels, share)) for share in BANK_CROPS]
    return [v for v in vectors if v.any()]


def encode_thumb(vector: npt.NDArray[np.float32]) -> str:
    """A thumbnail as 128 hex digits: each component as a signed byte."""
    quantised = np.clip(np.round(vector * 127 / max(float(np.abs(vector).max()), 1e-6)), -127, 127)
    return quantised.astype(np.int8).tobytes().hex()


def decode_thumbs(values: list[str]) -> npt.NDArray[np.float32]:
    """N×64 unit vectors from their hex forms."""
    if not values:
        return np.zeros((0, THUMB_DIMENSION), dtype=np.float32)
    raw = np.frombuffer(bytes.fromhex("".join(values)), dtype=np.int8).reshape(-1, THUMB_DIMENSION)
    vectors = raw.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-6), dtype=np.float32)
