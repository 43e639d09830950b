"""Soundtrack fingerprint: pairs of spectral peaks (landmarks), after Wang's Shazam paper.

A soundtrack's constellation is the strongest local maxima of its spectrogram, each a (time,
frequency) point. Pairs of nearby peaks are landmarks, hashed as (anchor frequency, target
frequency, time between them) and placed at the anchor's time. A copy shares many landmarks with
the original, all at one time offset.

Speed changes (resampling: time and pitch scaled together), tempo changes (time only) and pitch
shifts (pitch only) move every peak. The query side undoes them, never the bank: the query's peaks
are rescaled to a grid of candidate factors and hashed once per candidate, probing the
neighbouring cell wherever a value lies near a cell's edge. Banks keep one fingerprint per item.

The serialised signal is the constellation: a tenth the size of the landmarks, and every landmark,
at any candidate speed, is derived from it.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from firebreak.settings import Settings
from firebreak.signals.base import SignalType

Floats = npt.NDArray[np.float32]
Doubles = npt.NDArray[np.float64]
Hashes = npt.NDArray[np.uint32]
Indices = npt.NDArray[np.int64]

_MAGIC = b"FBA1"
_HEADER = struct.Struct("<4sI")  # magic, duration in ms; then times (u32 ms), freqs (u16 ¼ Hz)
_TIME_UNIT_S = 0.001
_FREQ_UNIT_HZ = 0.25
_F1_BITS = 9
_F2_BITS = 9
_DT_BITS = 7
_GRID = tuple(round(1.02**k, 4) for k in range(-6, 7))  # 0.888 … 1.126 in steps of 2 %


@dataclass(frozen=True)
class AudioParams:
    """How sound becomes peaks, peaks become landmarks, and hits become an alignment.

    Everything up to `dt_step_s` defines the fingerprint: banks and queries must agree on it."""

    sample_rate: int = 16_000
    n_fft: int = 1024
    hop: int = 256
    min_hz: float = 150.0
    max_hz: float = 5_000.0
    peak_freq_radius: int = 10
    """A peak is the largest value within this many frequency bins either side…"""
    peak_time_radius: int = 5
    """…and this many frames either side."""
    peaks_per_s: float = 30.0
    """A peak is kept when fewer than this many stronger ones lie within half a second of it."""
    floor_db: float = 60.0
    """Peaks more than this far below the loudest one are ignored."""
    silence_db: float = -30.0
    """Peaks below this power (dB; a full-scale sine peaks near +48) are silence."""
    fan_out: int = 6
    """Each anchor pairs with up to this many following peaks…"""
    min_pair_s: float = 0.03
    max_pair_s: float = 0.8
    max_pair_mel: float = 600.0
    """…that lie within these times after it and this many mel of it."""
    mel_step: float = 20.0
    """Width of a frequency cell, in mel."""
    dt_step_s: float = 0.016
    """Width of a cell of time between anchor and target."""
    probe_margin: float = 0.25
    """Query values within this share of a cell's edge also probe the neighbouring cell."""
    speeds: tuple[float, ...] = _GRID
    """Resampling factors a query is tried at (time and pitch scaled together)."""
    tempos: tuple[float, ...] = _GRID
    """Tempo factors a query is tried at (time scaled, pitch kept)."""
    pitches: tuple[float, ...] = _GRID
    """Pitch factors a query is tried at (pitch scaled, time kept)."""
    offset_bin_s: float = 0.05
    """Hits are first counted in bins of time offset this wide, three adjacent bins at a time…"""
    align_window_s: float = 0.25
    """…then the hits within this distance of the best bins' offset fit a line…"""
    align_tolerance_s: float = 0.05
    """…and the landmarks within this distance of the line are the aligned ones."""
    max_speed_drift: float = 0.03
    """How far the fitted speed may move from the candidate speed its hits came from."""


DEFAULT_AUDIO_PARAMS = AudioParams()


@dataclass(frozen=True)
class AudioPeaks:
    """A constellation: spectral peaks sorted by time, in seconds and hertz."""

    times: Floats
    freqs: Floats
    duration_s: float

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class AudioFingerprint:
    """Landmark hashes of one soundtrack at one candidate speed, sorted by hash.

    `times` (anchors) and `spans` (anchor to target) are in the soundtrack's own seconds;
    `landmarks` says which landmark each hash came from, since a query probes several cells per
    landmark. `speed` is how many item seconds a second of this soundtrack stands for; `pitch` is
    how much higher its frequencies are than the item's."""

    hashes: Hashes
    times: Floats
    spans: Floats
    landmarks: Indices
    speed: float = 1.0
    pitch: float = 1.0

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def landmark_count(self) -> int:
        return len(np.unique(self.landmarks))


def audio_peaks(
    pcm: npt.NDArray[np.float32], rate: int, params: AudioParams = DEFAULT_AUDIO_PARAMS
) -> AudioPeaks:
    """The constellation of mono PCM at `rate`, which must be `params.sample_rate`."""
    if rate != params.sample_rate:
        raise ValueError(f"audio must be at {params.sample_rate} Hz, got {rate} Hz")
    samples = np.nan_to_num(np.asarray(pcm, dtype=np.float32).reshape(-1))
    duration = len(samples) / rate
    spectrum = _log_spectrogram(samples, params)
    rows, cols = _local_maxima(spectrum, params)
    rows, cols = _strongest_peaks(spectrum, rows, cols, params)
    times, freqs = _refine_peaks(spectrum, rows, cols, params)
    order = np.argsort(times, kind="stable")
    return AudioPeaks(times[order], freqs[order], duration)


def soundtrack_peaks(
    pcm: npt.NDArray[np.float32],
    rate: int,
    params: AudioParams = DEFAULT_AUDIO_PARAMS,
    block_s: float = 30.0,
    margin_s: float = 2.0,
) -> AudioPeaks:
    """`audio_peaks` of a soundtrack of any length, in blocks so that memory stays bounded.

    Each block is analysed with `margin_s` of context either side (more than the peak picker's
    reach) and keeps the peaks of its own span; the loudness floor is the block's own."""
    peaks = SoundtrackPeaks(rate, params, block_s, margin_s)
    peaks.add(pcm)
    return peaks.finish()


class SoundtrackPeaks:
    """`soundtrack_peaks` of a soundtrack that arrives in pieces, the same to the bit.

    Each block is analysed as soon as the samples its context reaches have arrived (and the
    soundtrack is known to be long enough to be cut into blocks), so that the work can overlap
    with decoding the rest; `finish` analyses what is left."""

    def __init__(
        self,
        rate: int,
        params: AudioParams = DEFAULT_AUDIO_PARAMS,
        block_s: float = 30.0,
        margin_s: float = 2.0,
    ) -> None:
        self._rate = rate
        self._params = params
        self._block = round(block_s * rate)
        self._margin = round(margin_s * rate)
        self._pending: list[Floats] = []
        self._pending_start = 0  # sample index of the first pending sample
        self._received = 0
        self._next_block = 0  # sample index where the next block to analyse starts
        self._times: list[Floats] = []
        self._freqs: list[Floats] = []

    def add(self, pcm: npt.NDArray[np.float32]) -> None:
        """Take the next samples; analyse every block whose context is now complete."""
        samples = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if len(samples) == 0:
            return
        self._pending.append(samples)
        self._received += len(samples)
        if self._received <= self._block + 2 * self._margin:
            return  # may yet be short enough to be analysed whole
        while self._received >= self._next_block + self._block + self._margin:
            self._analyse_next_block()

    def finish(self) -> AudioPeaks:
        """The peaks of everything added."""
        samples = self._pending_samples()
        duration = self._received / self._rate
        if self._received <= self._block + 2 * self._margin:
            return audio_peaks(samples, self._rate, self._params)
        while self._next_block < self._received:
            self._analyse_next_block()
        return AudioPeaks(np.concatenate(self._times), np.concatenate(self._freqs), duration)

    def _pending_samples(self) -> Floats:
        if len(self._pending) != 1:
            self._pending = [
                np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
            ]
        return self._pending[0]

    def _analyse_next_block(self) -> None:
        rate, start = self._rate, self._next_block
        lo = max(0, start - self._margin)
        pending = self._pending_samples()
        part = audio_peaks(
            pending[
                lo - self._pending_start : start + self._block + self._margin - self._pending_start
            ],
            rate,
            self._params,
        )
        shifted = part.times + lo / rate
        own = (shifted >= start / rate) & (shifted < (start + self._block) / rate)
        self._times.append(shifted[own].astype(np.float32))
        self._freqs.append(part.freqs[own])
        self._next_block = start + self._block
        # The next block's context starts a margin before it: nothing before that is needed again.
        keep_from = max(0, self._next_block - self._margin)
        self._pending = [pending[keep_from - self._pending_start :]]
        self._pending_start = keep_from


def audio_landmarks(
    pcm: npt.NDArray[np.float32], rate: int, params: AudioParams = DEFAULT_AUDIO_PARAMS
) -> AudioFingerprint:
    """The bank-side fingerprint of mono PCM."""
    return landmarks_from_peaks(audio_peaks(pcm, rate, params), params)


def query_landmarks(
    pcm: npt.NDArray[np.float32], rate: int, params: AudioParams = DEFAULT_AUDIO_PARAMS
) -> list[AudioFingerprint]:
    """The query-side fingerprints of mono PCM, one per candidate speed, tempo and pitch."""
    return query_landmarks_from_peaks(audio_peaks(pcm, rate, params), params)


def _band(params: AudioParams) -> tuple[int, int]:
    bin_hz = params.sample_rate / params.n_fft
    low = max(1, int(np.ceil(params.min_hz / bin_hz)))
    high = min(params.n_fft // 2, int(np.floor(params.max_hz / bin_hz)))
    return low, high + 1


def _log_spectrogram(samples: Floats, params: AudioParams) -> Floats:
    """Frames × in-band bins of power in dB; frame k starts at sample k·hop."""
    low, high = _band(params)
    if len(samples) < params.n_fft:
        return np.zeros((0, high - low), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, params.n_fft)[:: params.hop]
    window = np.hanning(params.n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)[:, low:high]) ** 2
    return (10.0 * np.log10(power + 1e-12)).astype(np.float32)


def _sliding_max(values: Floats, radius: int, axis: int) -> Floats:
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(values, pad, mode="constant", constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=axis)
    return np.asarray(windows.max(axis=-1), dtype=np.float32)


def _local_maxima(spectrum: Floats, params: AudioParams) -> tuple[Indices, Indices]:
    """Row-major (so time-sorted) positions of the maxima of their neighbourhoods."""
    if spectrum.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    neighbourhood = _sliding_max(
        _sliding_max(spectrum, params.peak_time_radius, 0), params.peak_freq_radius, 1
    )
    floor = max(float(spectrum.max()) - params.floor_db, params.silence_db)
    rows, cols = np.nonzero((spectrum == neighbourhood) & (spectrum > floor))
    return rows.astype(np.int64), cols.astype(np.int64)


def _strongest_peaks(
    spectrum: Floats, rows: Indices, cols: Indices, params: AudioParams
) -> tuple[Indices, Indices]:
    """Keep a peak when fewer than `peaks_per_s` stronger ones lie within half a second of it.

    A rank in a window centred on each peak, not in fixed blocks, so that an excerpt cut anywhere
    keeps the same peaks as the whole."""
    if len(rows) == 0:
        return rows, cols
    half = round(params.sample_rate / params.hop / 2)
    strength = spectrum[rows, cols]
    starts = np.searchsorted(rows, rows - half, side="left")
    ends = np.searchsorted(rows, rows + half, side="right")
    width = int((ends - starts).max())
    keep = np.zeros(len(rows), dtype=bool)
    chunk = max(1, (1 << 21) // width)
    for lo in range(0, len(rows), chunk):
        hi = min(lo + chunk, len(rows))
        near = starts[lo:hi, None] + np.arange(width)[None, :]
        inside = near < ends[lo:hi, None]
        stronger = inside & (strength[np.minimum(near, len(rows) - 1)] > strength[lo:hi, None])
        keep[lo:hi] = stronger.sum(axis=1) < params.peaks_per_s
    return rows[keep], cols[keep]


def _refine_peaks(
    spectrum: Floats, rows: Indices, cols: Indices, params: AudioParams
) -> tuple[Floats, Floats]:
    """Peak positions to a fraction of a frame and of a bin, from parabolas through them."""
    frames, bins = spectrum.shape
    dr = _parabola_vertex(spectrum, rows, cols, frames, axis=0)
    dc = _parabola_vertex(spectrum, rows, cols, bins, axis=1)
    low, _ = _band(params)
    times = ((rows + dr) * params.hop + params.n_fft / 2) / params.sample_rate
    freqs = (cols + dc + low) * params.sample_rate / params.n_fft
    return times.astype(np.float32), freqs.astype(np.float32)


def _parabola_vertex(
    spectrum: Floats, rows: Indices, cols: Indices, size: int, axis: int
) -> Doubles:
    index = rows if axis == 0 else cols
    inner = (index > 0) & (index < size - 1)
    before = np.where(inner, index - 1, index)
    after = np.where(inner, index + 1, index)
    values = spectrum.astype(np.float64)
    if axis == 0:
        a, b, c = values[before, cols], values[rows, cols], values[after, cols]
    else:
        a, b, c = values[rows, before], values[rows, cols], values[rows, after]
    curvature = a - 2 * b + c
    safe = np.where(np.abs(curvature) > 1e-9, curvature, -1.0)
    vertex = np.where(np.abs(curvature) > 1e-9, 0.5 * (a - c) / safe, 0.0)
    return np.clip(np.where(inner, vertex, 0.0), -0.5, 0.5)


def landmarks_from_peaks(
    peaks: AudioPeaks, params: AudioParams = DEFAULT_AUDIO_PARAMS
) -> AudioFingerprint:
    """The bank-side fingerprint: one hash per landmark, at the soundtrack's own speed."""
    anchors, targets = _pairs(peaks, params, 1.0, 1.0)
    f1, f2, dt = (np.floor(c).astype(np.int64) for c in _cells(peaks, anchors, targets, params))
    owner = np.arange(len(anchors), dtype=np.int64)
    return _fingerprint(peaks, anchors, targets, _pack(f1, f2, dt), owner, 1.0, 1.0)


def query_factors(params: AudioParams = DEFAULT_AUDIO_PARAMS) -> list[tuple[float, float]]:
    """Every candidate (speed, pitch) a query is tried at, the untouched one first."""
    factors = [(1.0, 1.0)]
    factors += [(s, s) for s in params.speeds]
    factors += [(t, 1.0) for t in params.tempos]
    factors += [(1.0, p) for p in params.pitches]
    return list(dict.fromkeys(factors))


def query_landmarks_from_peaks(
    peaks: AudioPeaks, params: AudioParams = DEFAULT_AUDIO_PARAMS
) -> list[AudioFingerprint]:
    """The query-side fingerprints: one per candidate factor, probing near cell edges."""
    return [_query_variant(peaks, params, s, p) for s, p in query_factors(params)]


def _query_variant(
    peaks: AudioPeaks, params: AudioParams, speed: float, pitch: float
) -> AudioFingerprint:
    anchors, targets = _pairs(peaks, params, speed, pitch)
    cells = _cells(peaks, anchors, targets, params, speed, pitch)
    f1, f2, dt = (_probe(c, params.probe_margin) for c in cells)
    # Every combination of the three coordinates' probes: up to 3×3×3 cells per landmark.
    shape = (3, 3, 3, len(anchors))
    f1s = np.broadcast_to(f1[:, None, None, :], shape).reshape(-1)
    f2s = np.broadcast_to(f2[None, :, None, :], shape).reshape(-1)
    dts = np.broadcast_to(dt[None, None, :, :], shape).reshape(-1)
    owner = np.broadcast_to(np.arange(len(anchors), dtype=np.int64), shape).reshape(-1)
    valid = (f1s >= 0) & (f2s >= 0) & (dts >= 0)
    owner = owner[valid]
    hashes = _pack(f1s[valid], f2s[valid], dts[valid])
    return _fingerprint(peaks, anchors[owner], targets[owner], hashes, owner, speed, pitch)


def _probe(values: Doubles, margin: float) -> Indices:
    """3×N: each value's cell; the cell below where the value is near the lower edge, else -1;
    the cell above where it is near the upper edge, else -1. Negative cells are out of band."""
    cell = np.floor(values).astype(np.int64)
    frac = values - cell
    below = np.where(frac < margin, cell - 1, -1)
    above = np.where(frac > 1 - margin, cell + 1, -1)
    return np.stack([np.where(cell >= 0, cell, -1), below, above])


def _pairs(
    peaks: AudioPeaks, params: AudioParams, speed: float, pitch: float
) -> tuple[Indices, Indices]:
    """Anchor and target indices: each peak with up to `fan_out` of the next peaks in its zone,
    measured at the candidate speed and pitch."""
    times = peaks.times.astype(np.float64) * speed
    mels = _mel(peaks.freqs.astype(np.float64) / pitch)
    anchors: list[Indices] = []
    targets: list[Indices] = []
    n = len(times)
    taken = np.zeros(n, dtype=np.int64)
    # Peaks are tens a second, so stepping through the next ones by index is cheap.
    for step in range(1, 4 * params.fan_out + 1):
        i = np.arange(n - step, dtype=np.int64)
        j = i + step
        dt = times[j] - times[i]
        ok = (dt >= params.min_pair_s) & (dt <= params.max_pair_s) & (taken[i] < params.fan_out)
        ok &= np.abs(mels[j] - mels[i]) <= params.max_pair_mel
        anchors.append(i[ok])
        targets.append(j[ok])
        taken[i[ok]] += 1
    return _joined(anchors), _joined(targets)


def _mel(freqs: Doubles) -> Doubles:
    return np.asarray(2595.0 * np.log10(1.0 + freqs / 700.0), dtype=np.float64)


def _cells(
    peaks: AudioPeaks,
    anchors: Indices,
    targets: Indices,
    params: AudioParams,
    speed: float = 1.0,
    pitch: float = 1.0,
) -> tuple[Doubles, Doubles, Doubles]:
    """Continuous cell coordinates (anchor mel, target mel, time between) at a candidate factor."""
    base = _mel(np.array([params.min_hz]))[0]
    mels = (_mel(peaks.freqs.astype(np.float64) / pitch) - base) / params.mel_step
    times = peaks.times.astype(np.float64) * speed
    dt = (times[targets] - times[anchors]) / params.dt_step_s
    return mels[anchors], mels[targets], dt


def _pack(f1: Indices, f2: Indices, dt: Indices) -> Hashes:
    f1 = np.minimum(np.maximum(f1, 0), (1 << _F1_BITS) - 1)
    f2 = np.minimum(np.maximum(f2, 0), (1 << _F2_BITS) - 1)
    dt = np.minimum(np.maximum(dt, 0), (1 << _DT_BITS) - 1)
    return ((f1 << (_F2_BITS + _DT_BITS)) | (f2 << _DT_BITS) | dt).astype(np.uint32)


def _fingerprint(
    peaks: AudioPeaks,
    anchors: Indices,
    targets: Indices,
    hashes: Hashes,
    landmarks: Indices,
    speed: float,
    pitch: float,
) -> AudioFingerprint:
    times = peaks.times[anchors]
    spans = peaks.times[targets] - times
    order = np.argsort(hashes, kind="stable")
    return AudioFingerprint(
        hashes[order],
        times[order].astype(np.float32),
        spans[order].astype(np.float32),
        landmarks[order].astype(np.int64),
        speed,
        pitch,
    )


def _joined(parts: list[Indices]) -> Indices:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@dataclass(frozen=True)
class LandmarkHits:
    """Equal hashes of a query fingerprint and one item's: parallel arrays, one pair a row."""

    query_landmarks: Indices
    query_times: Floats
    query_spans: Floats
    item_times: Floats
    item_spans: Floats

    def __len__(self) -> int:
        return len(self.query_landmarks)


@dataclass(frozen=True)
class LandmarkAlignment:
    """Where a query lines up with an item: item time = offset + speed × query time."""

    matches: int
    """Distinct query landmarks on the line."""
    coverage: float
    """Share of the query's landmarks inside the query segment that are on the line."""
    speed: float
    pitch: float
    offset: float
    query_segment: tuple[float, float]
    item_segment: tuple[float, float]


def hits_from_rows(
    query: AudioFingerprint, item: AudioFingerprint, query_rows: Indices, item_rows: Indices
) -> LandmarkHits:
    """The hits of pairs of rows (known to hold equal hashes) of a query and an item."""
    return LandmarkHits(
        query.landmarks[query_rows],
        query.times[query_rows],
        query.spans[query_rows],
        item.times[item_rows],
        item.spans[item_rows],
    )


def align_landmark_hits(
    hits: LandmarkHits,
    query: AudioFingerprint,
    min_matches: int,
    params: AudioParams = DEFAULT_AUDIO_PARAMS,
) -> LandmarkAlignment | None:
    """The best-supported alignment of `hits` (found with `query`), or None below `min_matches`.

    Counts distinct landmarks in the densest three bins of time offset, fits a line through the
    hits near them, and keeps the landmarks close to that line. Hits in any order give the same
    answer, so the index and the brute-force path agree."""
    if len(hits) == 0 or len(np.unique(hits.query_landmarks)) < max(1, min_matches):
        return None
    order = np.lexsort((hits.item_times, hits.query_times, hits.query_landmarks))
    landmarks = hits.query_landmarks[order]
    tq = hits.query_times[order].astype(np.float64)
    ti = hits.item_times[order].astype(np.float64)
    offsets = ti - query.speed * tq
    centre = _densest_offset(offsets, landmarks, params.offset_bin_s)
    near = np.abs(offsets - centre) <= params.align_window_s
    speed, offset = _fit_line(tq[near], ti[near], query.speed, centre, params)
    on_line = near & (np.abs(ti - offset - speed * tq) <= params.align_tolerance_s)
    matches = len(np.unique(landmarks[on_line]))
    if matches < max(1, min_matches):
        return None
    query_end = tq[on_line] + hits.query_spans[order][on_line]
    item_end = ti[on_line] + hits.item_spans[order][on_line]
    query_segment = (float(tq[on_line].min()), float(query_end.max()))
    item_segment = (float(ti[on_line].min()), float(item_end.max()))
    return LandmarkAlignment(
        matches=matches,
        coverage=min(1.0, matches / max(1, _landmarks_within(query, query_segment))),
        speed=speed,
        pitch=query.pitch,
        offset=offset,
        query_segment=query_segment,
        item_segment=item_segment,
    )


def _densest_offset(offsets: Doubles, landmarks: Indices, width: float) -> float:
    """The mean offset of the hits in the three adjacent bins holding most distinct landmarks."""
    bins = np.floor(offsets / width).astype(np.int64)
    first = int(bins.min())
    span = int(landmarks.max()) + 1
    distinct = np.unique((bins - first) * span + landmarks)
    values, counts = np.unique(distinct // span + first, return_counts=True)
    support = counts.copy()
    for step in (-1, 1):
        at = np.minimum(np.searchsorted(values, values + step), len(values) - 1)
        found = values[at] == values + step
        support[found] += counts[at[found]]
    best = int(values[int(np.argmax(support))])
    return float(offsets[np.abs(bins - best) <= 1].mean())


def _fit_line(
    tq: Doubles, ti: Doubles, speed: float, centre: float, params: AudioParams
) -> tuple[float, float]:
    """Least-squares speed and offset through the hits near the best offset, the speed held
    within `max_speed_drift` of the candidate's (hits bunched in time cannot pin it down)."""
    if len(tq) < 3 or float(np.ptp(tq)) < 1.0:
        return speed, centre
    slope = float(np.polyfit(tq, ti, 1)[0])
    drift = 1.0 + params.max_speed_drift
    fitted = min(max(slope, speed / drift), speed * drift)
    return fitted, float(np.median(ti - fitted * tq))


def _landmarks_within(query: AudioFingerprint, segment: tuple[float, float]) -> int:
    inside = (query.times >= segment[0]) & (query.times <= segment[1])
    return len(np.unique(query.landmarks[inside]))


def brute_force_hits(query: AudioFingerprint, item: AudioFingerprint) -> LandmarkHits:
    """Every pair of equal hashes, found by comparing the arrays value by value.

    Only hashes with the same anchor cell (top bits) can be equal, so the comparison runs block
    by block; no order of either array is assumed."""
    shift = _F2_BITS + _DT_BITS
    query_blocks = query.hashes >> shift
    item_blocks = item.hashes >> shift
    rows: list[Indices] = []
    cols: list[Indices] = []
    for block in np.intersect1d(query_blocks, item_blocks):
        q = np.flatnonzero(query_blocks == block)
        i = np.flatnonzero(item_blocks == block)
        r, c = np.nonzero(query.hashes[q][:, None] == item.hashes[i][None, :])
        rows.append(q[r].astype(np.int64))
        cols.append(i[c].astype(np.int64))
    return hits_from_rows(query, item, _joined(rows), _joined(cols))


def brute_force_alignment(
    queries: list[AudioFingerprint],
    item: AudioFingerprint,
    min_matches: int,
    params: AudioParams = DEFAULT_AUDIO_PARAMS,
) -> LandmarkAlignment | None:
    """The best alignment of an item with any of a query's candidate fingerprints."""
    found = [
        align_landmark_hits(brute_force_hits(q, item), q, min_matches, params) for q in queries
    ]
    return best_alignment([a for a in found if a is not None])


def best_alignment(alignments: list[LandmarkAlignment]) -> LandmarkAlignment | None:
    """Most aligned landmarks wins; on a tie, the factors nearest 1, then the earliest offset."""
    if not alignments:
        return None
    return min(
        alignments,
        key=lambda a: (-a.matches, abs(np.log(a.speed)) + abs(np.log(a.pitch)), a.offset),
    )


def format_audio_peaks(peaks: AudioPeaks) -> str:
    """The serialised signal: base64 of a header, peak times (ms) and frequencies (¼ Hz)."""
    times = np.round(peaks.times.astype(np.float64) / _TIME_UNIT_S).astype("<u4")
    freqs = np.round(peaks.freqs.astype(np.float64) / _FREQ_UNIT_HZ).astype("<u2")
    header = _HEADER.pack(_MAGIC, round(peaks.duration_s / _TIME_UNIT_S))
    return base64.b64encode(header + times.tobytes() + freqs.tobytes()).decode("ascii")


def parse_audio_peaks(value: str) -> AudioPeaks:
    """A constellation from its serialised form, or ValueError."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"not a base64 audio fingerprint: {value[:80]!r}") from None
    body = raw[_HEADER.size :]
    if len(raw) < _HEADER.size or raw[:4] != _MAGIC or len(body) % 6:
        raise ValueError(f"not a Firebreak audio fingerprint: {value[:80]!r}")
    _, duration_ms = _HEADER.unpack_from(raw)
    n = len(body) // 6
    times = np.frombuffer(body[: 4 * n], dtype="<u4").astype(np.int64)
    freqs = np.frombuffer(body[4 * n :], dtype="<u2").astype(np.float64) * _FREQ_UNIT_HZ
    if n and (np.any(np.diff(times) < 0) or int(times[-1]) > duration_ms):
        raise ValueError("audio fingerprint peaks out of order or past its end")
    return AudioPeaks(
        (times * _TIME_UNIT_S).astype(np.float32),
        freqs.astype(np.float32),
        duration_ms * _TIME_UNIT_S,
    )


class AudioSignal(SignalType):
    """A soundtrack's constellation of spectral peaks, serialised by `format_audio_peaks`.

    Unlike the other types, the threshold is a least count, not a largest distance: two
    soundtracks match when at least that many landmarks of the second (the query, at its best
    candidate speed) line up with the first. `distance` is how many of the query's landmarks do
    not, so identical soundtracks are 0 apart."""

    name = "audio"
    exchange_name = "firebreak_audio"
    industry = False  # no industry hash list carries it
    default_threshold = 40  # unrelated 10 s excerpts align at most ~30 landmarks; copies 300+

    @classmethod
    def validate(cls, value: str) -> str:
        return format_audio_peaks(parse_audio_peaks(value))

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        query = landmarks_from_peaks(parse_audio_peaks(b))
        return max(0, query.landmark_count - cls.aligned_landmarks(a, b))

    @classmethod
    def aligned_landmarks(cls, a: str, b: str) -> int:
        """How many landmarks of query `b` line up with item `a`, by brute force."""
        alignment = brute_force_alignment(
            query_landmarks_from_peaks(parse_audio_peaks(b)),
            landmarks_from_peaks(parse_audio_peaks(a)),
            min_matches=1,
        )
        return alignment.matches if alignment else 0

    @classmethod
    def matches(cls, a: str, b: str, settings: Settings) -> bool:
        return cls.aligned_landmarks(a, b) >= cls.threshold(settings)
