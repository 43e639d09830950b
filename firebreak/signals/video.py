"""Video as a sequence of per-frame PDQ hashes, interchangeable with vPDQ.

Serialised two ways: one `hex,quality,timestamp` line per sampled frame (vPDQ's feature string), or
python-threatexchange's `vpdq` signal string, a JSON list of those feature strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from firebreak.signals.base import FrameHash, SignalType, hamming_distance, normalise_hex256


class VideoSignal(SignalType):
    """Per-frame PDQ hashes of a video; distance and threshold apply frame to frame."""

    name = "video"
    exchange_name = "vpdq"
    default_threshold = 31  # vPDQ's per-frame distance threshold

    @classmethod
    def validate(cls, value: str) -> str:
        return format_vpdq_json(parse_vpdq(value))

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """Frame distance between two single-frame features (the unit the index works in)."""
        return hamming_distance(
            bytes.fromhex(normalise_hex256(a.split(",")[0])),
            bytes.fromhex(normalise_hex256(b.split(",")[0])),
        )


def format_feature(frame: FrameHash) -> str:
    """One vPDQ feature string: `hex,quality,timestamp`."""
    return f"{frame.hex},{frame.quality},{frame.timestamp:.3f}"


def parse_feature(value: str) -> FrameHash:
    parts = value.strip().split(",")
    if len(parts) != 3:
        raise ValueError(f"a vPDQ feature is hex,quality,timestamp, got {value[:80]!r}")
    hex_part, quality_part, time_part = parts
    quality = int(quality_part)
    timestamp = float(time_part)
    if not 0 <= quality <= 100:
        raise ValueError(f"vPDQ quality out of range: {quality}")
    if not math.isfinite(timestamp) or timestamp < 0:
        raise ValueError(f"vPDQ timestamp out of range: {time_part[:80]!r}")
    return FrameHash.from_hex(hex_part, quality, timestamp)


def format_vpdq_json(frames: Sequence[FrameHash]) -> str:
    """python-threatexchange's `vpdq` signal string."""
    return json.dumps([format_feature(f) for f in frames])


def parse_vpdq(value: str) -> list[FrameHash]:
    """Frames from either a `vpdq` JSON signal string or newline-separated feature strings."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid vPDQ JSON: {exc}") from None
        except RecursionError:
            raise ValueError("invalid vPDQ JSON: nested too deeply") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError("vPDQ JSON must be a list of feature strings")
        lines = items
    else:
        lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty vPDQ hash")
    return [parse_feature(line) for line in lines]
