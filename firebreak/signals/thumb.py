"""Frame thumbnails: an 8×8 grey picture as a unit vector, Firebreak's crop-tolerant frame signal.

PDQ loses a frame once ~5 % of it is cropped away or it is turned by a few degrees; an 8×8 grey
thumbnail, centred and normalised, still correlates above 0.9 with its original after a 10 % crop
or a 3° rotation, and is blind to brightness and contrast. It is much less specific than PDQ, so it
only counts as evidence when several frames align in time (see `firebreak.match`). Banks hold two
thumbnails per sampled frame, of the whole frame and of its centre, so that heavier crops meet the
centre one. Firebreak-only: hash lists in industry formats leave it out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.signals.base import SignalType

THUMB_SIDE = 8
THUMB_DIMENSION = THUMB_SIDE * THUMB_SIDE
BANK_CROPS = (1.0, 0.8)  # whole frame, centre 80 %
_HEX_LENGTH = THUMB_DIMENSION * 2


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
        bytes.fromhex(normalised)
        return normalised

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        va, vb = decode_thumbs([cls.validate(a), cls.validate(b)])
        return max(0, round((1.0 - float(va @ vb)) * 1000))


def thumb_vector(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The unit thumbnail vector of an RGB (H×W×3) or grey (H×W) picture; zeros when flat."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    grey = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    vector = np.asarray(grey, dtype=np.float32).reshape(-1)
    vector -= vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-3 * THUMB_DIMENSION else np.zeros_like(vector)


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
