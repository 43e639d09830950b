"""Training and evaluating a detector head on folders of labelled clips.

A labelled set is a folder with `attack/` (simulated attacks: first-person footage with the event
in it) and `benign/` (footage that looks alike: games, paintball, hunting, sport) subfolders of
video files. An attack clip may say when its event starts in a sidecar `CLIP.json`
(`{"event_start_s": 12.5}`); windows before that are benign footage. Each clip is read as a
stream would be, cut into the scoring windows a live session uses, and every window's features
are measured by the scorers.

Evaluation reports what matters on a live stream: ROC AUC over windows, time to detect (from the
event's start to the first alert, with the live smoothing and escalation policy) and false alerts
per stream-hour on benign clips.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from firebreak.classify.base import Scorer, WindowBuffer, smooth_risk
from firebreak.classify.head import DetectorHead, ScorerSpec, fit_logistic_head, window_features
from firebreak.errors import FirebreakError
from firebreak.media.stream import StreamColour, StreamSound, read_stream
from firebreak.settings import Settings

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".webm", ".ts", ".flv", ".avi"})
LABELS = {"attack": True, "benign": False}


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    attack: bool
    event_start_s: float = 0.0


@dataclass(frozen=True)
class ClipWindows:
    """A clip's scoring windows: the end time of each, its features, and its label."""

    clip: LabelledClip
    ends: tuple[float, ...]
    features: npt.NDArray[np.float64]

    @property
    def labels(self) -> npt.NDArray[np.bool_]:
        ends = np.asarray(self.ends)
        return np.asarray(self.clip.attack & (ends > self.clip.event_start_s), dtype=np.bool_)

    @property
    def duration_s(self) -> float:
        return self.ends[-1] if self.ends else 0.0


@dataclass(frozen=True)
class Evaluation:
    roc_auc: float
    detect_times_s: tuple[float, ...]
    missed: int
    attack_clips: int
    false_alerts: int
    benign_hours: float

    @property
    def false_alerts_per_hour(self) -> float:
        return self.false_alerts / self.benign_hours if self.benign_hours else 0.0

    def as_metrics(self) -> dict[str, float]:
        times = np.asarray(self.detect_times_s) if self.detect_times_s else np.zeros(0)
        return {
            "roc_auc": round(self.roc_auc, 4),
            "detect_p50_s": round(float(np.median(times)), 2) if len(times) else -1.0,
            "detect_max_s": round(float(times.max()), 2) if len(times) else -1.0,
            "missed": float(self.missed),
            "attack_clips": float(self.attack_clips),
            "false_alerts_per_hour": round(self.false_alerts_per_hour, 2),
            "benign_hours": round(self.benign_hours, 4),
        }


def find_labelled_clips(root: Path) -> list[LabelledClip]:
    """The clips under `root/attack` and `root/benign`, with their event starts."""
    clips = []
    for folder, attack in LABELS.items():
        for path in sorted((root / folder).glob("*")):
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            start = 0.0
            sidecar = path.with_suffix(".json")
            if attack and sidecar.is_file():
                try:
                    start = float(json.loads(sidecar.read_text()).get("event_start_s", 0.0))
                except (ValueError, AttributeError) as exc:
                    raise FirebreakError(f"{sidecar}: not a clip description ({exc})") from None
            clips.append(LabelledClip(path, attack, start))
    if not any(c.attack for c in clips) or all(c.attack for c in clips):
        raise FirebreakError(f"{root}: needs video files in both attack/ and benign/")
    return clips


def clip_windows(clip: LabelledClip, scorers: Sequence[Scorer], settings: Settings) -> ClipWindows:
    """Read `clip` as a stream and measure the features of every scoring window."""
    buffer = WindowBuffer(settings.live_scorer_window_s)
    ends: list[float] = []
    rows: list[npt.NDArray[np.float64]] = []
    next_end = settings.live_scorer_step_s
    now = 0.0
    for part in read_stream(
        str(clip.path),
        settings,
        0.5,  # the luma pictures matching needs are not used here
        settings.query_decode_size,
        realtime=False,
        colour_fps=settings.live_scorer_fps,
        colour_size=settings.live_scorer_size,
    ):
        if isinstance(part, StreamSound):
            buffer.add_sound(part.stream_time, part.samples)
            continue
        if not isinstance(part, StreamColour):
            continue
        now = part.stream_time
        buffer.add_frame(now, part.pixels)
        if now >= next_end:
            rows.append(window_features(scorers, buffer.window(now)))
            ends.append(now)
            next_end = now + settings.live_scorer_step_s
    width = sum(len(s.feature_names) for s in scorers)
    features = np.vstack(rows) if rows else np.zeros((0, width))
    return ClipWindows(clip, tuple(ends), features)


def train_head(
    root: Path,
    scorers: Sequence[Scorer],
    spec: ScorerSpec,
    settings: Settings,
    holdout_share: float = 0.3,
    progress: Callable[[LabelledClip], None] | None = None,
) -> DetectorHead:
    """Fit a head on the clips under `root`, holding out a share of each label's clips (chosen
    by name, so the split is the same every run) to measure it on."""
    clips = find_labelled_clips(root)
    measured = []
    for clip in clips:
        measured.append(clip_windows(clip, scorers, settings))
        if progress:
            progress(clip)
    held_out = [m for m in measured if _held_out(m.clip, holdout_share)]
    training = [m for m in measured if m not in held_out] or measured
    features = np.vstack([m.features for m in training])
    labels = np.concatenate([m.labels for m in training])
    names = [n for scorer in scorers for n in scorer.feature_names]
    head = fit_logistic_head(features, labels, names, spec)
    evaluation = evaluate_windows(head, held_out or measured, settings)
    trained_on = {
        "attack_clips": sum(m.clip.attack for m in training),
        "benign_clips": sum(not m.clip.attack for m in training),
        "windows": len(labels),
        "held_out_clips": len(held_out),
    }
    return replace(head, metrics=evaluation.as_metrics(), trained_on=trained_on)


def evaluate_head(
    head: DetectorHead,
    root: Path,
    scorers: Sequence[Scorer],
    settings: Settings,
    progress: Callable[[LabelledClip], None] | None = None,
) -> Evaluation:
    measured = []
    for clip in find_labelled_clips(root):
        measured.append(clip_windows(clip, scorers, settings))
        if progress:
            progress(clip)
    return evaluate_windows(head, measured, settings)


def evaluate_windows(
    head: DetectorHead, measured: Sequence[ClipWindows], settings: Settings
) -> Evaluation:
    """Window ROC AUC, and per clip what a live session with this head would have done."""
    probabilities = [
        head.probability(m.features) if len(m.features) else np.zeros(0) for m in measured
    ]
    labels = np.concatenate([m.labels for m in measured]) if measured else np.zeros(0, bool)
    scores = np.concatenate(probabilities) if probabilities else np.zeros(0)
    alert_at = settings.live_escalation.get("alert", 0.8)
    detect_times: list[float] = []
    missed = false_alerts = 0
    benign_s = 0.0
    for clip_windows_, p in zip(measured, probabilities, strict=True):
        first = _first_alert(p, clip_windows_.ends, settings.live_risk_smoothing, alert_at)
        clip = clip_windows_.clip
        if clip.attack:
            if first is not None and first > clip.event_start_s:
                detect_times.append(first - clip.event_start_s)
            else:
                missed += 1
                if first is not None:
                    false_alerts += 1  # raised before the event had begun
        else:
            benign_s += clip_windows_.duration_s
            false_alerts += first is not None
    return Evaluation(
        roc_auc(scores, labels),
        tuple(detect_times),
        missed,
        sum(m.clip.attack for m in measured),
        false_alerts,
        benign_s / 3600,
    )


def roc_auc(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> float:
    """Area under the ROC curve: the chance a random positive outranks a random negative."""
    positives, negatives = scores[labels], scores[~labels]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([positives, negatives]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    combined = np.concatenate([positives, negatives])
    for value in np.unique(combined):  # ties share their mean rank
        tied = combined == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(u / (len(positives) * len(negatives)))


def _first_alert(
    probabilities: npt.NDArray[np.float64], ends: Sequence[float], alpha: float, level: float
) -> float | None:
    """When the smoothed probability first reaches the alert level, as a live session smooths."""
    smoothed: float | None = None
    for p, end in zip(probabilities, ends, strict=True):
        smoothed = smooth_risk(smoothed, float(p), alpha)
        if smoothed >= level:
            return end
    return None


def _held_out(clip: LabelledClip, share: float) -> bool:
    return zlib.crc32(clip.path.name.encode()) % 1000 < share * 1000
