"""Hashing cost against ffmpeg's decode-only time on the same file, measured side by side.

Each measurement runs in a child process so that its peak memory (RSS) is its own. ffmpeg decodes
with its default threading, as Firebreak's decoder does; both are timed on the same file, one after
the other, best of `repeats`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from firebreak.bench.variants import run_ffmpeg

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from firebreak.settings import Settings
from firebreak.signals import hash_media_file, hash_query_file
settings = Settings()
path = Path(sys.argv[2])
started = time.perf_counter()
if sys.argv[1] == "query":
    hash_query_file(path, settings)
else:
    hash_media_file(path, settings, settings.bank_fps, settings.bank_frame_size)
elapsed = time.perf_counter() - started
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "peak_rss_mb": rss_mb}))
"""


@dataclass(frozen=True)
class SpeedResult:
    """One file's hashing cost: seconds for each path and their ratio to ffmpeg's decode."""

    file: str
    duration_s: float
    ffmpeg_decode_s: float
    query_hash_s: float
    bank_hash_s: float
    query_peak_rss_mb: float
    bank_peak_rss_mb: float

    @property
    def query_ratio(self) -> float:
        return self.query_hash_s / self.ffmpeg_decode_s

    @property
    def bank_ratio(self) -> float:
        return self.bank_hash_s / self.ffmpeg_decode_s


def make_long_clip(dest: Path, minutes: float = 10.0) -> Path:
    """A 720p 30 fps H.264 clip of moving synthetic footage, made once."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".part.mp4")
    run_ffmpeg(
        [
            *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"),
            *("-t", f"{minutes * 60:.0f}", "-vf", "noise=alls=8:allf=t"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-b:a", "96k", str(partial)),
        ],
        timeout_s=3600,
    )
    partial.replace(dest)
    return dest


def ffmpeg_decode_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "null", "-"],
        check=True,
    )
    return time.perf_counter() - started


def _hash_in_child(mode: str, path: Path) -> tuple[float, float]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return float(measured["seconds"]), float(measured["peak_rss_mb"])


def measure_hashing_speed(path: Path, duration_s: float, repeats: int = 2) -> SpeedResult:
    """Best-of-`repeats` seconds for ffmpeg decode-only, query hashing and bank hashing."""
    decode = min(ffmpeg_decode_seconds(path) for _ in range(repeats))
    query = min((_hash_in_child("query", path) for _ in range(repeats)), key=lambda r: r[0])
    bank = min((_hash_in_child("bank", path) for _ in range(repeats)), key=lambda r: r[0])
    return SpeedResult(str(path), duration_s, decode, query[0], bank[0], query[1], bank[1])
