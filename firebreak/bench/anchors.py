"""The systems Firebreak is measured against, run on the same files: vPDQ and TMK+PDQF.

- vPDQ (the `vpdq` package): one PDQ hash a second; python-threatexchange's brute-force rule
  (`match_VPDQ_hash_brute`: frames of quality ≥ 50, within 31 bits) gives the share of query frames
  found in the item. It matches at ≥ 80 %; the score is that share in [0, 1].
- TMK+PDQF (`tmkpy`, TMK's own code): one whole-video feature. TMK's documented rule is level-1
  (cosine of the average frame features) ≥ 0.7, then level-2 (the temporal match kernel) ≥ 0.7, so
  the score is the smaller of the two.

vPDQ hashes and TMK scores are cached on disk by content digest, with the seconds they took.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tmkpy
import vpdq
from threatexchange.extensions.vpdq.vpdq_brute_matcher import match_VPDQ_hash_brute
from threatexchange.extensions.vpdq.vpdq_util import VpdqCompactFeature

VPDQ = "vPDQ"
TMK = "TMK+PDQF"

VPDQ_QUALITY = 50
VPDQ_DISTANCE = 31
VPDQ_MATCH_SHARE = 0.8
TMK_MATCH_SCORE = 0.7
FFMPEG = "/usr/bin/ffmpeg"


@dataclass(frozen=True)
class VpdqFrame:
    hex: str
    quality: int
    timestamp: float


@dataclass(frozen=True)
class VpdqHash:
    frames: tuple[VpdqFrame, ...]
    seconds: float


@dataclass(frozen=True)
class AnchorScores:
    """One anchor's scores for one query against every banked item (by name), and the seconds
    hashing and matching the query took (as measured when it was first done, if cached)."""

    scores: dict[str, float]
    seconds: float


def vpdq_hash(video: Path, digest: str, cache_dir: Path) -> VpdqHash:
    """vPDQ at one hash a second, single-threaded (the benchmark runs files in parallel)."""
    cached = cache_dir / f"{digest}.vpdq.json"
    if cached.exists():
        data = json.loads(cached.read_text())
        return VpdqHash(tuple(VpdqFrame(*f) for f in data["frames"]), data["seconds"])
    started = time.monotonic()
    try:
        features = vpdq.computeHash(str(video), seconds_per_hash=1.0, thread_count=1)
    except Exception:  # vpdq's only error: it could not decode the file; it then matches nothing
        features = []
    result = VpdqHash(
        tuple(VpdqFrame(f.hex, int(f.quality), float(f.timestamp)) for f in features),
        time.monotonic() - started,
    )
    frames = [[f.hex, f.quality, f.timestamp] for f in result.frames]
    _write_atomically(cached, json.dumps({"frames": frames, "seconds": result.seconds}))
    return result


def vpdq_score(query: VpdqHash, item: VpdqHash) -> float:
    """Share of the query's frames found in the item (python-threatexchange's brute rule)."""
    try:
        result = match_VPDQ_hash_brute(_compact(query), _compact(item), VPDQ_QUALITY, VPDQ_DISTANCE)
    except ZeroDivisionError:  # no frame of good enough quality on one side
        return 0.0
    return float(result.query_match_percent) / 100.0


def vpdq_matches(score: float) -> bool:
    return score >= VPDQ_MATCH_SHARE


def vpdq_scores(
    video: Path, digest: str, items: dict[str, VpdqHash], cache_dir: Path
) -> AnchorScores:
    """vPDQ scores of `video` against each item."""
    query = vpdq_hash(video, digest, cache_dir)
    started = time.monotonic()
    scores = {name: vpdq_score(query, item) for name, item in items.items()}
    return AnchorScores(scores, query.seconds + time.monotonic() - started)


def _compact(h: VpdqHash) -> list[VpdqCompactFeature]:
    return [VpdqCompactFeature(f.hex, f.quality, f.timestamp) for f in h.frames]


def tmk_hash(video: Path) -> Any | None:
    """TMK+PDQF features of `video` (a `tmkpy.TMKFeatureVectors`), None when TMK cannot hash it."""
    with _quiet_stderr():  # TMK and the ffmpeg it runs write progress to stderr
        try:
            features = tmkpy.hashVideo(str(video), FFMPEG)
        except RuntimeError:
            return None
    if features is None or features.getFrameFeatureCount() == 0:
        return None
    return features


def save_tmk(features: Any, path: Path) -> None:
    """TMK features as arrays (tmkpy's own file reader returns an object its functions refuse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.part.npz")
    np.savez(
        partial,
        meta=np.array([features.getFramesPerSecond(), features.getFrameFeatureCount()]),
        periods=np.array(features.getPeriods()),
        coefficients=np.array(features.getFourierCoefficients()),
        average=np.array(features.getPureAverageFeature()),
        cos=np.array(features.getCosFeatures()),
        sin=np.array(features.getSinFeatures()),
    )
    partial.replace(path)


def load_tmk(path: Path) -> Any:
    with np.load(path) as data:
        fps, count = (int(v) for v in data["meta"])
        return tmkpy.createTMKFeatureVectors(
            fps,
            count,
            data["periods"].tolist(),
            data["coefficients"].tolist(),
            data["average"].tolist(),
            data["cos"].tolist(),
            data["sin"].tolist(),
        )


def tmk_score(query: Any, item: Any) -> float:
    """min(level-1, level-2): TMK matches when both reach 0.7."""
    if not tmkpy.TMKFeatureVectors.areCompatible(query, item):
        return 0.0
    level1 = float(tmkpy.TMKFeatureVectors.computeLevel1Score(query, item))
    level2 = float(tmkpy.TMKFeatureVectors.computeLevel2Score(query, item))
    return max(0.0, min(level1, level2))


def tmk_matches(score: float) -> bool:
    return score >= TMK_MATCH_SCORE


def tmk_scores(
    video: Path, digest: str, items: dict[str, tuple[str, Any]], cache_dir: Path
) -> AnchorScores:
    """TMK scores of `video` against each item (name: (item digest, features)). Scores are cached
    by query and item digest; a query's features are not kept (a quarter MB each)."""
    cached = cache_dir / f"{digest}.tmk-scores.json"
    known: dict[str, Any] = json.loads(cached.read_text()) if cached.exists() else {}
    by_digest: dict[str, float] = known.get("scores", {})
    if known and all(d in by_digest for d, _ in items.values()):
        scores = {name: float(by_digest[d]) for name, (d, _) in items.items()}
        return AnchorScores(scores, float(known["seconds"]))
    started = time.monotonic()
    query = tmk_hash(video)
    scores = {
        name: 0.0 if query is None else tmk_score(query, features)
        for name, (_, features) in items.items()
    }
    seconds = time.monotonic() - started
    by_digest.update({d: scores[name] for name, (d, _) in items.items()})
    _write_atomically(cached, json.dumps({"scores": by_digest, "seconds": seconds}))
    return AnchorScores(scores, seconds)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 (this process's and its children's stderr) to /dev/null."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text(text)
    partial.replace(path)
