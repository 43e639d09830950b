"""What every signal type says about itself: its names, how two hashes compare, its threshold."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from firebreak.settings import Settings

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FrameHash:
    """A 256-bit perceptual hash of one picture, with PDQ's quality and the picture's time."""

    code: bytes
    quality: int
    timestamp: float = 0.0

    @property
    def hex(self) -> str:
        return self.code.hex()

    @classmethod
    def from_hex(cls, value: str, quality: int, timestamp: float = 0.0) -> FrameHash:
        return cls(hex256_code(value), quality, timestamp)


def normalise_hex256(value: str) -> str:
    """A 256-bit hash as 64 lower-case hex digits, or ValueError."""
    normalised = value.strip().lower()
    if not _HEX64.match(normalised):
        raise ValueError(f"not a 256-bit hex hash: {value[:80]!r}")
    return normalised


def hex256_code(value: str) -> bytes:
    """The 32 bytes of a 256-bit hex hash, or ValueError. Plain 64-digit hex (what stores and
    hash lists hold, millions of times in a sweep) skips the regular expression."""
    if len(value) == 2 * HASH_BYTES:
        try:
            code = bytes.fromhex(value)
        except ValueError:
            code = b""
        if len(code) == HASH_BYTES:
            return code
    return bytes.fromhex(normalise_hex256(value))


def codes_matrix(hashes: list[FrameHash]) -> npt.NDArray[np.uint8]:
    """Hashes as an N×32 uint8 matrix, the layout faiss binary indices take."""
    if not hashes:
        return np.zeros((0, HASH_BYTES), dtype=np.uint8)
    return np.frombuffer(b"".join(h.code for h in hashes), dtype=np.uint8).reshape(-1, HASH_BYTES)


def hamming_distance(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


class SignalType(ABC):
    """A signal type: a name of ours, the name hash lists use, and how its values compare.

    Each subclass is one module under `firebreak/signals/` and is registered by name in
    `firebreak.signals.registry`.
    """

    name: ClassVar[str]
    """Our name, as stored in banks and given on the command line."""
    exchange_name: ClassVar[str]
    """The name ThreatExchange hash lists and HMA use for this type."""
    default_threshold: ClassVar[int]
    """Largest distance that still counts as a match, unless settings override it."""
    industry: ClassVar[bool] = True
    """Whether industry hash lists carry this type (Firebreak-only types stay in our formats)."""

    @classmethod
    def threshold(cls, settings: Settings) -> int:
        return settings.thresholds.get(cls.name, cls.default_threshold)

    @classmethod
    @abstractmethod
    def validate(cls, value: str) -> str:
        """The canonical form of a serialised hash of this type, or ValueError."""

    @classmethod
    @abstractmethod
    def distance(cls, a: str, b: str) -> int:
        """Distance between two canonical values; 0 means identical."""

    @classmethod
    def matches(cls, a: str, b: str, settings: Settings) -> bool:
        """The brute-force rule every fast path is tested against."""
        return cls.distance(a, b) <= cls.threshold(settings)


class ExactFileSignal(SignalType):
    """A cryptographic digest of a file's bytes: equal or not."""

    hex_length: ClassVar[int]
    default_threshold = 0

    @classmethod
    def validate(cls, value: str) -> str:
        normalised = value.strip().lower()
        if len(normalised) != cls.hex_length or not re.fullmatch(r"[0-9a-f]+", normalised):
            raise ValueError(f"not a valid {cls.name} digest: {value[:80]!r}")
        return normalised

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return 0 if cls.validate(a) == cls.validate(b) else 1
