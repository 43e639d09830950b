"""PDQ: Meta's 256-bit perceptual image hash, computed by the reference `pdqhash` package."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pdqhash

from firebreak.signals.base import FrameHash, SignalType, hamming_distance, normalise_hex256


class PdqSignal(SignalType):
    """A photo's PDQ hash; serialised as 64 hex digits (quality travels beside it)."""

    name = "pdq"
    exchange_name = "pdq"
    default_threshold = 31  # the PDQ paper's and HMA's operating point

    @classmethod
    def validate(cls, value: str) -> str:
        return normalise_hex256(value)

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return hamming_distance(bytes.fromhex(cls.validate(a)), bytes.fromhex(cls.validate(b)))


def pdq_hash_pixels(pixels: npt.NDArray[np.uint8], timestamp: float = 0.0) -> FrameHash:
    """PDQ of an H×W×3 RGB array, bit-exact with `pdqhash.compute` on the same pixels."""
    bits, quality = pdqhash.compute(np.ascontiguousarray(pixels))
    code = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    return FrameHash(code, int(quality), timestamp)
