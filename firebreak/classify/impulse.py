"""Gunfire-like impulses in a soundtrack: loud, broadband onsets that rise within milliseconds.

A shot, as a microphone hears it, is a muzzle blast: the level of everything above a couple of
kilohertz leaps tens of decibels within a few milliseconds, the whole sound stands far above what
is around it (even the loudest of it), its spectrum is noise across the octaves rather than tones,
and it dies away within tens to hundreds of milliseconds (slower than a click, faster than a bell).
Each sharp onset in a window is measured for those traits, and each trait passes softly (a
logistic step); the product is the onset's quality, 0 to 1, and onsets of enough quality are
impulses.

One impulse is weak evidence (a door, a dropped object, a drum); several within a few seconds (a
burst of automatic fire, shots fired one after another) are strong: the risk is
1 - (1 - `single_impulse_risk`) ** q, where q is the summed quality of the impulses in the busiest
`burst_span_s` of the window. Everything is measured relative to the window's own sound, so the
recording's level does not matter. Numpy only; any sample rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from firebreak.classify.base import RiskScore, ScoringWindow

Doubles = npt.NDArray[np.float64]

_FLOOR = 1e-11  # energy floor: -110 dB re full scale, far below any recording's noise
_FEATURE_NAMES = (
    "impulse_count",
    "burst_quality",
    "max_impulses_per_s",
    "mean_quality",
    "best_onset_quality",
    "mean_rise_db",
    "mean_prominence_db",
    "mean_crest_db",
    "mean_dominance_db",
    "mean_high_share",
    "mean_noisiness",
    "mean_decay_ms",
    "interval_cv",
    "onsets_per_s",
)


@dataclass(frozen=True)
class Impulse:
    """One onset in a window and how gunshot-like it is; times are the stream's."""

    time_s: float
    """Stream time of the onset."""
    peak_dbfs: float
    """Level of the high band at its peak (dB re a full-scale square wave)."""
    rise_db: float
    """How far the high band leapt: its first milliseconds over the tens of milliseconds before."""
    prominence_db: float
    """How far the high band's peak stands over the window's background around it."""
    crest_db: float
    """How far the whole band's peak stands over its median level around it (the sound's body)."""
    dominance_db: float
    """How far the whole band's peak stands over the loud moments around it (a high percentile)."""
    high_share: float
    """Share of the onset's energy (above `low_cut_hz`) that lies above `high_band_hz`."""
    noisiness: float
    """Spectral flatness within each octave of `noise_band_hz`, weighted by the octaves' energy:
    about 0.5 for noise of any colour, near 0 for a ringing tone."""
    decay_ms: float
    """Time from the peak until the high band fell `decay_drop_db` (or the next onset came)."""
    quality: float
    """0 (nothing like a shot) to 1 (every trait of a shot)."""


@dataclass(frozen=True)
class ImpulseScorer:
    """Scores a window by how much its soundtrack sounds like gunfire.

    Every tunable is a field; the defaults suit broadcast and phone audio at any level.
    Soft thresholds are (centre, width): a trait passes half at the centre and 88 % one width
    beyond it."""

    high_band_hz: float = 1_500.0
    """Onsets are found in the band above this (a raised-cosine edge starting an octave below)."""
    low_cut_hz: float = 100.0
    """Energy below this (rumble, wind, hum) takes no part in the spectral traits."""
    block_s: float = 0.001
    """Resolution of the level envelopes."""
    onset_s: float = 0.003
    """An onset's level is the mean over this long from its start…"""
    pre_gap_s: float = 0.006
    """…compared with the mean over `pre_s` ending this long before it (room for a codec's
    pre-echo, which smears a transient a few milliseconds early)…"""
    pre_s: float = 0.025
    min_gap_s: float = 0.04
    """Onsets closer than this are one event (fire up to 25 rounds a second stays apart)."""
    background_s: float = 2.0
    """The background is a low percentile of the high band's level over this long around an onset."""
    background_percentile: float = 20.0
    """Which percentile: low enough to miss the shots of a burst, high enough to ignore pauses."""
    min_rise_db: float = 9.0
    """Onsets that leap less than this are not considered at all."""
    min_peak_dbfs: float = -55.0
    """Nor are those whose high band peaks below this (a whisper over silence)."""
    decay_drop_db: float = 15.0
    """An onset has decayed once its high band is this far below its peak…"""
    decay_limit_s: float = 1.0
    """…and is not followed further than this."""
    spectrum_s: float = 0.032
    """The spectral traits are measured over this long from an onset."""
    noise_band_hz: tuple[float, float] = (300.0, 4_800.0)
    """Noisiness is measured in the octaves from the first of these up to the second."""
    rise_db: tuple[float, float] = (12.0, 3.0)
    """Soft thresholds of the traits that make an onset's quality: the leap…"""
    prominence_db: tuple[float, float] = (18.0, 4.0)
    """…the height over the background…"""
    crest_db: tuple[float, float] = (14.0, 3.0)
    """…the height over the typical sound around it (drums in a mix and applause stay low)…"""
    dominance_db: tuple[float, float] = (-6.0, 3.0)
    """…the height over the loudest sound around it (a consonant stays under its vowels)…"""
    high_share: tuple[float, float] = (0.12, 0.04)
    """…the share of energy in the high band…"""
    noisiness: tuple[float, float] = (0.25, 0.05)
    """…how noise-like (not tonal) the spectrum is…"""
    min_decay_ms: tuple[float, float] = (12.0, 4.0)
    """…and how long it takes to die away: longer than a click or a dry clap…"""
    max_decay_ms: tuple[float, float] = (450.0, 80.0)
    """…and shorter than a bell or a cymbal (this one passes below its centre)."""
    min_quality: float = 0.5
    """Onsets of at least this quality are impulses."""
    burst_span_s: float = 4.0
    """Impulses within this long of each other count together towards the risk."""
    single_impulse_risk: float = 0.25
    """Risk of one perfect impulse; n of them give 1 - (1 - this) ** n."""
    alert_risk: float = 0.5
    """Risk at which a window should raise an alert (three good impulses in a burst span)."""

    @property
    def name(self) -> str:
        return "impulse"

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the numbers in `RiskScore.features`, in order."""
        return _FEATURE_NAMES

    def score(self, window: ScoringWindow) -> RiskScore:
        """The window's risk of holding gunfire, its features, and the impulses' stream times."""
        candidates = self.onsets(window.audio, window.audio_rate, window.start_s)
        impulses = [c for c in candidates if c.quality >= self.min_quality]
        times = np.array([i.time_s for i in impulses], np.float64)
        qualities = np.array([i.quality for i in impulses], np.float64)
        burst, (first, last) = _busiest(times, qualities, self.burst_span_s)
        per_s, _ = _busiest(times, np.ones_like(times), 1.0)
        risk = 1.0 - (1.0 - self.single_impulse_risk) ** burst
        duration_s = len(window.audio) / window.audio_rate if window.audio_rate > 0 else 0.0
        features = (
            float(len(impulses)),
            burst,
            per_s,
            _mean([i.quality for i in impulses]),
            max((c.quality for c in candidates), default=0.0),
            _mean([i.rise_db for i in impulses]),
            _mean([i.prominence_db for i in impulses]),
            _mean([i.crest_db for i in impulses]),
            _mean([i.dominance_db for i in impulses]),
            _mean([i.high_share for i in impulses]),
            _mean([i.noisiness for i in impulses]),
            _mean([i.decay_ms for i in impulses]),
            _interval_cv(times),
            len(candidates) / duration_s if duration_s > 0 else 0.0,
        )
        evidence: dict[str, object] = {
            "impulse_times": tuple(round(float(t), 3) for t in times),
            "impulse_quality": tuple(round(float(q), 3) for q in qualities),
            "burst": (round(first, 3), round(last, 3)) if len(impulses) else None,
        }
        return RiskScore(self.name, float(risk), features, evidence)

    def onsets(
        self, audio: npt.NDArray[np.float32], rate: int, start_s: float = 0.0
    ) -> list[Impulse]:
        """Every sharp onset in `audio` (mono PCM at `rate`), in time order, with its quality.

        Times are `start_s` plus the onset's offset into `audio`."""
        if rate <= 0:
            return []
        block = max(1, round(self.block_s * rate))
        x = np.nan_to_num(np.asarray(audio, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        n_blocks = len(x) // block
        if n_blocks < self._blocks(0.1):
            return []
        x = x[: n_blocks * block] - float(np.mean(x))
        spectrum = np.fft.rfft(x)
        freqs = np.asarray(np.fft.rfftfreq(len(x), 1.0 / rate), np.float64)
        high = np.fft.irfft(spectrum * _high_pass(freqs, self.high_band_hz), len(x))
        full = np.fft.irfft(spectrum * _high_pass(freqs, self.low_cut_hz), len(x))
        energy = (high**2).reshape(n_blocks, block).mean(axis=1)

        onset_n, gap_n, pre_n = (
            self._blocks(self.onset_s),
            self._blocks(self.pre_gap_s),
            self._blocks(self.pre_s),
        )
        cum = np.concatenate([[0.0], np.cumsum(energy)])
        idx = np.arange(n_blocks)
        on_end = np.minimum(idx + onset_n, n_blocks)
        level = _db((cum[on_end] - cum[idx]) / (on_end - idx))
        pre_end = np.maximum(idx - gap_n, 0)
        pre_start = np.maximum(pre_end - pre_n, 0)
        has_pre = pre_end - pre_start >= pre_n // 2
        pre = _db((cum[pre_end] - cum[pre_start]) / np.maximum(pre_end - pre_start, 1))
        # a whisper out of digital silence leaps far, but must not hide a shot just after it
        rise = np.where(has_pre & (level >= self.min_peak_dbfs), level - pre, 0.0)

        peaks = _local_maxima(rise, self._blocks(self.min_gap_s), self.min_rise_db)
        if not len(peaks):
            return []
        background = self._background(energy, peaks)
        full_energy = (full**2).reshape(n_blocks, block).mean(axis=1)
        full_level = _db(_moving_mean(full_energy, onset_n))
        body = self._background(full_energy, peaks, 50.0)
        loud = self._background(full_energy, peaks, 95.0)
        smooth = _db(_moving_mean(energy, self._blocks(0.005)))
        found: list[Impulse] = []
        for k, b in enumerate(peaks):
            peak_end = min(n_blocks, b + self._blocks(0.01))
            p = b + int(np.argmax(level[b:peak_end]))
            peak_db = float(level[p])
            next_onset = int(peaks[k + 1]) if k + 1 < len(peaks) else n_blocks
            decay_ms = self._decay_ms(smooth, p, peak_db, next_onset)
            loudest = float(full_level[b:peak_end].max())
            seg_start = b * block - round(0.002 * rate)
            seg = full[max(0, seg_start) : seg_start + round(self.spectrum_s * rate)]
            high_share, noisiness = self._spectral(seg, rate)
            impulse = Impulse(
                time_s=start_s + int(b) * block / rate,
                peak_dbfs=peak_db,
                rise_db=float(rise[b]),
                prominence_db=peak_db - float(background[k]),
                crest_db=loudest - float(body[k]),
                dominance_db=loudest - float(loud[k]),
                high_share=high_share,
                noisiness=noisiness,
                decay_ms=decay_ms,
                quality=0.0,
            )
            found.append(_with_quality(impulse, self))
        return found

    def _blocks(self, seconds: float) -> int:
        """How many envelope blocks last `seconds` (at least one)."""
        return max(1, round(seconds / self.block_s))

    def _background(
        self, energy: Doubles, onsets: npt.NDArray[np.intp], percentile: float | None = None
    ) -> Doubles:
        """A percentile (default `background_percentile`) of the levels of `energy`'s 10 ms
        stretches within `background_s` around each onset, in dB."""
        step = self._blocks(0.01)
        n = len(energy) // step
        coarse = _db(energy[: n * step].reshape(n, step).mean(axis=1)) if n else _db(energy[:1])
        half = max(1, round(self.background_s / 2 / (step * self.block_s)))
        q = self.background_percentile if percentile is None else percentile
        out = np.empty(len(onsets))
        for k, b in enumerate(onsets):
            c = min(int(b) // step, len(coarse) - 1)
            out[k] = np.percentile(coarse[max(0, c - half) : c + half + 1], q)
        return out

    def _decay_ms(self, smooth: Doubles, peak: int, peak_db: float, next_onset: int) -> float:
        """Milliseconds from the peak until the level fell `decay_drop_db`, the next onset, or the limit."""
        end = min(len(smooth), next_onset, peak + round(self.decay_limit_s / self.block_s))
        below = np.flatnonzero(smooth[peak:end] < peak_db - self.decay_drop_db)
        stop = peak + int(below[0]) if len(below) else end
        return float((stop - peak) * self.block_s * 1000.0)

    def _spectral(self, seg: Doubles, rate: int) -> tuple[float, float]:
        """(share of energy above the high band, noisiness) of `seg`."""
        if len(seg) < 16:
            return 0.0, 0.0
        power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
        freqs = np.fft.rfftfreq(len(seg), 1.0 / rate)
        usable = (freqs >= self.low_cut_hz) & (freqs <= 0.45 * rate)
        total = float(power[usable].sum())
        if total <= 0.0:
            return 0.0, 0.0
        high_share = float(power[usable & (freqs >= self.high_band_hz)].sum()) / total
        lo, hi = self.noise_band_hz
        flatness, weights = [], []
        # octave by octave, so that a spectrum's slope does not pass for tonality
        while lo * 2 <= min(hi, 0.45 * rate) * 1.01:
            octave = power[(freqs >= lo) & (freqs < lo * 2)] + _FLOOR
            if len(octave) >= 4:
                flatness.append(float(np.exp(np.mean(np.log(octave))) / np.mean(octave)))
                weights.append(float(octave.sum()))
            lo *= 2
        noisiness = float(np.average(flatness, weights=weights)) if weights else 0.0
        return high_share, noisiness


def _with_quality(impulse: Impulse, s: ImpulseScorer) -> Impulse:
    """`impulse` with its quality: the product of each trait's soft pass (0 to 1)."""
    q = (
        _soft(impulse.rise_db, s.rise_db)
        * _soft(impulse.prominence_db, s.prominence_db)
        * _soft(impulse.crest_db, s.crest_db)
        * _soft(impulse.dominance_db, s.dominance_db)
        * _soft(impulse.high_share, s.high_share)
        * _soft(impulse.noisiness, s.noisiness)
        * _soft(impulse.decay_ms, s.min_decay_ms)
        * (1.0 - _soft(impulse.decay_ms, s.max_decay_ms))
    )
    return replace(impulse, quality=q)


def _soft(value: float, threshold: tuple[float, float]) -> float:
    """A logistic step: 0.5 at the threshold's centre, 0.88 one width above it."""
    centre, width = threshold
    return 1.0 / (1.0 + math.exp(-(value - centre) / width * 2.0))


def _high_pass(freqs: Doubles, cutoff_hz: float) -> Doubles:
    """Gain rising as a raised cosine from half `cutoff_hz` to `cutoff_hz` (short ringing)."""
    ramp = np.clip((freqs - cutoff_hz / 2) / (cutoff_hz / 2), 0.0, 1.0)
    return np.asarray(0.5 - 0.5 * np.cos(np.pi * ramp), np.float64)


def _db(energy: Doubles) -> Doubles:
    return np.asarray(10.0 * np.log10(np.maximum(energy, 0.0) + _FLOOR), np.float64)


def _moving_mean(values: Doubles, n: int) -> Doubles:
    """Mean of `values[i : i + n]` at each i (fewer at the end)."""
    cum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(len(values))
    end = np.minimum(idx + n, len(values))
    return np.asarray((cum[end] - cum[idx]) / (end - idx), np.float64)


def _local_maxima(values: Doubles, radius: int, minimum: float) -> npt.NDArray[np.intp]:
    """Indices of values at least `minimum` that are the largest within `radius` either side
    (the first of equal ones)."""
    padded = np.pad(values, radius, constant_values=-np.inf)
    largest = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).max(axis=1)
    kept: list[int] = []
    for i in np.flatnonzero((values >= minimum) & (values >= largest)):
        if not kept or i - kept[-1] > radius:
            kept.append(int(i))
    return np.array(kept, np.intp)


def _busiest(times: Doubles, weights: Doubles, span_s: float) -> tuple[float, tuple[float, float]]:
    """The largest summed weight of `times` (sorted) within `span_s` of the first of them, and
    the first and last time of that stretch."""
    best, stretch = 0.0, (0.0, 0.0)
    for t in times:
        inside = (times >= t) & (times < t + span_s)
        total = float(weights[inside].sum())
        if total > best:
            best, stretch = total, (float(t), float(times[inside][-1]))
    return best, stretch


def _interval_cv(times: Doubles) -> float:
    """Spread of the gaps between impulses over their mean (0: a steady rhythm; 0 when < 3)."""
    if len(times) < 3:
        return 0.0
    gaps = np.diff(times)
    return float(np.std(gaps) / max(float(np.mean(gaps)), 1e-9))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0
