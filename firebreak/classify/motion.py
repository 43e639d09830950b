"""Camera-motion features: how much the picture changes and how the camera shakes.

First-person footage of an attack is filmed on the move by a body- or hand-held camera: the whole
picture shifts and jolts from frame to frame in a way a tripod or a screen capture does not. This
scorer measures that (global shift between frames by phase correlation, its jitter, the change that
is left once the shift is undone, brightness) as features for a trained head; on its own it never
escalates (its risk is 0), since sport, games and hiking look the same.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.classify.base import RiskScore, ScoringWindow

_SIDE = 64  # frames are compared at this size: motion, not detail


@dataclass(frozen=True)
class MotionScorer:
    name: str = "motion"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return ("shift_mean", "shift_jitter", "residual_change", "brightness")

    def score(self, window: ScoringWindow) -> RiskScore:
        lumas = [_small_luma(pixels) for _, pixels in window.frames]
        if len(lumas) < 2:
            brightness = float(lumas[0].mean() / 255) if lumas else 0.0
            return RiskScore(self.name, 0.0, (0.0, 0.0, 0.0, brightness))
        shifts = []
        residuals = []
        for before, after in itertools.pairwise(lumas):
            dy, dx = _global_shift(before, after)
            shifts.append(np.hypot(dy, dx) / _SIDE)
            aligned = np.roll(before, (round(dy), round(dx)), axis=(0, 1))
            residuals.append(float(np.abs(after - aligned).mean() / 255))
        features = (
            float(np.mean(shifts)),
            float(np.std(shifts)),
            float(np.mean(residuals)),
            float(np.mean([luma.mean() for luma in lumas]) / 255),
        )
        return RiskScore(self.name, 0.0, features, {})


def _small_luma(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    image = Image.fromarray(pixels).convert("L").resize((_SIDE, _SIDE), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float64)


def _global_shift(
    before: npt.NDArray[np.float64], after: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """The (rows, columns) shift that best carries `before` onto `after` (phase correlation)."""
    window = np.outer(np.hanning(_SIDE), np.hanning(_SIDE))
    a = np.fft.fft2((before - before.mean()) * window)
    b = np.fft.fft2((after - after.mean()) * window)
    cross = b * np.conj(a)
    correlation = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    peak_y, peak_x = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    dy = peak_y - _SIDE if peak_y > _SIDE // 2 else peak_y
    dx = peak_x - _SIDE if peak_x > _SIDE // 2 else peak_x
    return float(dy), float(dx)
