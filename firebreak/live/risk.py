"""Scorers over a live stream: windows of recent frames and sound scored, smoothed and escalated.

Banked content is recognised by matching; a new attack is not in any bank. Scorers (a model, a
gunfire-like sound detector, on-screen text) read the last `live_scorer_window_s` every
`live_scorer_step_s`; each scorer's risk is smoothed over time (an exponential moving average,
so one odd window does not escalate and a sustained signal does), and the escalation policy (a
setting: the smoothed risk at which a stream goes to review, and at which it is alerted on and
acted against) turns it into escalations, each raised once per scorer and level.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from firebreak.classify.base import RiskScore, Scorer, WindowBuffer, smooth_risk
from firebreak.settings import Settings

logger = logging.getLogger(__name__)

Level = Literal["review", "alert"]
_LEVELS: tuple[Level, ...] = ("review", "alert")


@dataclass(frozen=True)
class Escalation:
    """A scorer's smoothed risk crossed a level of the escalation policy."""

    scorer: str
    level: Level
    smoothed: float
    reading: RiskScore


@dataclass(frozen=True)
class ScorerFault:
    """A scorer that raised instead of scoring; the stream goes on without it this window."""

    scorer: str
    error: str


@dataclass
class _History:
    smoothed: float | None = None
    faults_in_a_row: int = 0
    raised: set[Level] = field(default_factory=set)


class RiskWatch:
    """The scorers of one stream, fed its recent colour frames and sound."""

    def __init__(self, scorers: Sequence[Scorer], settings: Settings) -> None:
        self._scorers = list(scorers)
        self._settings = settings
        self._buffer = WindowBuffer(settings.live_scorer_window_s)
        self._history = {scorer.name: _History() for scorer in self._scorers}
        self._next = settings.live_scorer_step_s

    def __bool__(self) -> bool:
        return bool(self._scorers)

    def add_frame(self, t: float, pixels: npt.NDArray[np.uint8]) -> None:
        self._buffer.add_frame(t, pixels)

    def add_sound(self, t: float, samples: npt.NDArray[np.float32]) -> None:
        self._buffer.add_sound(t, samples)

    def due(self, now: float) -> bool:
        return bool(self._scorers) and now >= self._next

    def assess(self, now: float) -> list[Escalation | ScorerFault]:
        """Score the window ending at `now`; the escalations and faults it brought."""
        s = self._settings
        self._next = now + s.live_scorer_step_s
        window = self._buffer.window(now)
        out: list[Escalation | ScorerFault] = []
        for scorer in self._scorers:
            history = self._history[scorer.name]
            if history.faults_in_a_row > s.live_scorer_max_faults:
                continue  # a scorer that keeps failing is left out, the stream is not
            try:
                reading = scorer.score(window)
            except Exception as exc:  # one scorer's fault must not end the watch
                logger.exception("scorer %s failed", scorer.name)
                history.faults_in_a_row += 1
                out.append(ScorerFault(scorer.name, repr(exc)))
                continue
            history.faults_in_a_row = 0
            risk = min(1.0, max(0.0, reading.risk))
            smoothed = smooth_risk(history.smoothed, risk, s.live_risk_smoothing)
            history.smoothed = smoothed
            for level in _LEVELS:
                threshold = s.live_escalation.get(level)
                if threshold is None or level in history.raised:
                    continue
                if smoothed >= threshold:
                    history.raised.add(level)
                    out.append(Escalation(scorer.name, level, smoothed, reading))
        return out


def evidence_of(escalation: Escalation) -> Mapping[str, object]:
    """What an escalation's alert shows a reviewer."""
    return {
        "level": escalation.level,
        "risk": round(escalation.reading.risk, 4),
        "smoothed": round(escalation.smoothed, 4),
        **escalation.reading.evidence,
    }
