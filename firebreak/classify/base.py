"""What every scorer takes and gives: a window of a stream in, a risk score and its evidence out.

A scorer recognises signs of an attack that is in no bank: a model's verdict on the pictures, a
burst of gunfire-like impulses in the soundtrack, watch-listed words on screen. Scorers are
pluggable: anything with a `name` and a `score(window)` method is one. Each also says what it saw
as a few numbers (`features`), which a trained head (`firebreak train`) combines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

AUDIO_RATE = 16_000


@dataclass(frozen=True)
class ScoringWindow:
    """A stretch of a stream or file: a few colour frames a second, and its soundtrack."""

    start_s: float
    """Stream time of the window's start."""
    end_s: float
    frames: tuple[tuple[float, npt.NDArray[np.uint8]], ...] = ()
    """(stream time, H×W×3 RGB) pairs, at most a few a second, the longer side at most ~640 px."""
    audio: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    """Mono PCM at `audio_rate`, from `start_s` on (empty when the stream has no sound)."""
    audio_rate: int = AUDIO_RATE

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class RiskScore:
    """A scorer's reading of one window."""

    scorer: str
    risk: float
    """0 (nothing of concern) to 1 (the scorer is sure)."""
    features: tuple[float, ...] = ()
    """What the scorer measured, as numbers a trained head can weigh; same length every time."""
    evidence: Mapping[str, object] = field(default_factory=dict)
    """What a reviewer should look at: times, matched text, model outputs."""


class Scorer(Protocol):
    """Anything that reads a window and says how much it looks like an attack."""

    @property
    def name(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the numbers in `RiskScore.features`, in order."""
        ...

    def score(self, window: ScoringWindow) -> RiskScore: ...


def smooth_risk(previous: float | None, risk: float, alpha: float) -> float:
    """The moving average of a scorer's risk after one more reading (`previous` None before the
    first): live sessions escalate on it, and evaluation replays it."""
    return risk if previous is None else alpha * risk + (1 - alpha) * previous


class WindowBuffer:
    """The recent colour frames and sound of a stream, cut into scoring windows on demand."""

    def __init__(self, window_s: float, audio_rate: int = AUDIO_RATE) -> None:
        self.window_s = window_s
        self.audio_rate = audio_rate
        self._frames: deque[tuple[float, npt.NDArray[np.uint8]]] = deque()
        self._sound: deque[tuple[float, npt.NDArray[np.float32]]] = deque()

    def add_frame(self, t: float, pixels: npt.NDArray[np.uint8]) -> None:
        self._frames.append((t, pixels))

    def add_sound(self, t: float, samples: npt.NDArray[np.float32]) -> None:
        self._sound.append((t, samples))

    def window(self, now: float) -> ScoringWindow:
        """The last `window_s` up to `now`; what is older is let go."""
        start = now - self.window_s
        while self._frames and self._frames[0][0] < start:
            self._frames.popleft()
        while self._sound and self._sound[0][0] < start:
            self._sound.popleft()
        if not self._sound:
            return ScoringWindow(start, now, tuple(self._frames), audio_rate=self.audio_rate)
        audio = np.concatenate([samples for _, samples in self._sound])
        # The sound starts with its first kept chunk, a fraction of a second after `start`.
        return ScoringWindow(self._sound[0][0], now, tuple(self._frames), audio, self.audio_rate)
