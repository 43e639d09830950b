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


PDQ_SIZE = 64
"""PDQ's working size: a picture already this size is hashed as it is, without PDQ's blur."""

# PDQ's 16×64 DCT basis (frequencies 1..16, the DC term left out), float32 as the reference has it.
_DCT = (
    np.float32(np.sqrt(2.0 / PDQ_SIZE))
    * np.cos(
        (np.pi / 2.0 / PDQ_SIZE)
        * np.arange(1, 17, dtype=np.float64)[:, None]
        * (2 * np.arange(PDQ_SIZE, dtype=np.float64)[None, :] + 1)
    )
).astype(np.float32)
# Mirroring a picture left-right flips the sign of its odd horizontal frequencies (even j here).
_MIRROR_SIGNS = np.where(np.arange(16) % 2 == 0, -1.0, 1.0).astype(np.float32)[None, :]


def pdq_hash_luma64(
    lumas: npt.NDArray[np.uint8], timestamps: npt.NDArray[np.float64] | list[float]
) -> tuple[list[FrameHash], list[FrameHash]]:
    """PDQ of many 64×64 luma pictures at once, and of their mirror images.

    The same arithmetic as `pdqhash.compute` on a 64×64 picture (whose blur and decimation are then
    the identity), done for all of them in one matrix product; the mirror images' hashes come from
    the same DCT by a change of sign. Bits may differ from the reference's only where a
    coefficient ties the median to float rounding.
    """
    if len(lumas) == 0:
        return [], []
    pictures = np.asarray(lumas, dtype=np.float32).reshape(-1, PDQ_SIZE, PDQ_SIZE)
    coefficients = np.asarray(_DCT @ pictures @ _DCT.T, dtype=np.float32)
    qualities = _quality(np.asarray(lumas, dtype=np.int16).reshape(-1, PDQ_SIZE, PDQ_SIZE))
    straight = _bits_to_hashes(coefficients, qualities, timestamps)
    mirrored = _bits_to_hashes(
        np.asarray(coefficients * _MIRROR_SIGNS, dtype=np.float32), qualities, timestamps
    )
    return straight, mirrored


def _quality(pictures: npt.NDArray[np.int16]) -> npt.NDArray[np.int64]:
    """PDQ's image-domain quality: quantised gradient magnitudes summed, scaled to 0..100.

    The reference truncates `|a - b| * 100 / 255` computed in float; for whole grey levels that is
    the integer quotient, done here in int16 (at most 25,500) at a fraction of the cost."""
    hundred, full = np.int16(100), np.int16(255)
    down = np.abs(pictures[:, :-1, :] - pictures[:, 1:, :]) * hundred // full
    across = np.abs(pictures[:, :, :-1] - pictures[:, :, 1:]) * hundred // full
    total = down.sum(axis=(1, 2), dtype=np.int64) + across.sum(axis=(1, 2), dtype=np.int64)
    return np.asarray(np.minimum(total // 90, 100), dtype=np.int64)


def _bits_to_hashes(
    coefficients: npt.NDArray[np.float32],
    qualities: npt.NDArray[np.int64],
    timestamps: npt.NDArray[np.float64] | list[float],
) -> list[FrameHash]:
    flat = coefficients.reshape(len(coefficients), 256)
    median = np.partition(flat, 127, axis=1)[:, 127:128]  # the reference's (lower) median
    # Bit i*16+j is set when coefficient (i, j) exceeds the median; the hex string lists bit 255
    # first, so the bits are packed in reverse.
    codes = np.packbits(flat[:, ::-1] > median, axis=1)
    return [
        FrameHash(code.tobytes(), int(quality), float(t))
        for code, quality, t in zip(codes, qualities, timestamps, strict=True)
    ]
