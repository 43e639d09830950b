"""The impulse scorer hears gunfire in a soundtrack, and not the other loud, sudden sounds of life.

Shots are synthesised as a microphone hears them (a muzzle blast of noise that rises within half a
millisecond, its reverberation and a low thump, through a recording's band limits) and mixed into
pink noise, real tracker music and synthesised speech at 10 dB SNR. What must not raise an alert is
real recorded sound (the effects, voices and music of Debian's `pingus-data`), speech synthesised by
espeak-ng, and synthesised door slams and applause.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from firebreak.classify.base import RiskScore, Scorer, ScoringWindow
from firebreak.classify.impulse import ImpulseScorer
from tests.conftest import ffmpeg
from tests.test_audio import decode, fetch_pingus_data, filtered, mix_at_snr, synthesise

REPO = Path(__file__).resolve().parent.parent
RATE = 16_000
SCORER = ImpulseScorer()
ALERT = SCORER.alert_risk
RECORDING = "highpass=f=80,lowpass=f=6500"  # a phone's or camera's band limits
TIME_TOLERANCE_S = 0.1
RECORDED_EFFECTS = ("chink", "digger", "plop", "plop2", "splash", "tick", "ting")
RECORDED_VOICES = ("goodidea", "letsgo", "ohno", "yipee")
SPEECH = (
    ("en-us", "Pack the kit, take the cash and get back quick. Tick tock, stop, pick, cat, kit."),
    ("en-gb+m3", "Take the left road at the old mill, and do not speak to anyone on the way."),
    ("de", "Die Nachrichten des Tages berichten von starken Regenfällen im Norden des Landes."),
    ("ar", "بسم الله نبدأ هذا البيان إلى كل الإخوة في كل مكان اليوم يوم النصر"),
)

Pcm = npt.NDArray[np.float32]


@pytest.fixture(scope="session")
def sounds_dir() -> Path:
    """pingus-data's recorded sounds and music (fetched once into the cache)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: install the Debian package espeak-ng")
    cache = Path(os.environ.get("FIREBREAK_SOUNDS_DIR", REPO / ".cache" / "sounds"))
    return fetch_pingus_data(cache)


def score(pcm: Pcm, start_s: float = 0.0) -> RiskScore:
    window = ScoringWindow(start_s, start_s + len(pcm) / RATE, audio=pcm, audio_rate=RATE)
    return SCORER.score(window)


def impulse_times(result: RiskScore) -> list[float]:
    times = result.evidence["impulse_times"]
    assert isinstance(times, tuple)
    return [float(t) for t in times]


def feature(result: RiskScore, name: str) -> float:
    return result.features[SCORER.feature_names.index(name)]


def gunshot(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """One shot, peaking at 1: a muzzle blast of noise that rises within half a millisecond and
    decays over tens of milliseconds, a fainter reverberant tail, and a low thump."""
    t = np.arange(int(0.5 * RATE)) / RATE
    envelope = np.exp(-t / rng.uniform(0.01, 0.03)) + 0.12 * np.exp(-t / rng.uniform(0.06, 0.15))
    blast = rng.normal(size=len(t)) * envelope * np.clip(t / 0.0005, 0.0, 1.0)
    pitch = rng.uniform(60.0, 120.0)
    thump = np.sin(2 * np.pi * pitch * t) * np.exp(-t / 0.03) * np.clip(t / 0.002, 0.0, 1.0)
    shot = 0.5 * blast + 0.8 * thump
    return np.asarray(shot / np.max(np.abs(shot)))


def shots(times: Sequence[float], duration_s: float, seed: int) -> Pcm:
    """Shots at `times`, each peaking between -6 and -1 dBFS, as a recording of them sounds."""
    rng = np.random.default_rng(seed)
    track = np.zeros(int(duration_s * RATE))
    for t in times:
        shot = gunshot(rng) * 10 ** (rng.uniform(-6.0, -1.0) / 20)
        at = int(t * RATE)
        end = min(len(track), at + len(shot))
        track[at:end] += shot[: end - at]
    return filtered(track.astype(np.float32), RECORDING)


def single_shot_times(duration_s: float, seed: int) -> list[float]:
    """Shots fired one by one, 0.5 to 1.5 s apart, from half a second in."""
    rng = np.random.default_rng(seed)
    times = [0.5]
    while times[-1] + 1.5 < duration_s - 0.5:
        times.append(times[-1] + rng.uniform(0.5, 1.5))
    return times


def burst_times(start_s: float, rounds: int, per_s: float, seed: int) -> list[float]:
    """Automatic fire: `rounds` shots at `per_s`, each a few milliseconds early or late."""
    jitter = np.random.default_rng(seed).normal(0.0, 0.003, rounds)
    return [start_s + i / per_s + float(j) for i, j in enumerate(jitter)]


def pink_noise(n: int, seed: int) -> Pcm:
    spectrum = np.fft.rfft(np.random.default_rng(seed).normal(size=n))
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.std(noise)).astype(np.float32)


def door_slam(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A door slamming shut, peaking at 1: the panel's low resonance and an overtone ringing for a
    tenth of a second, a dull knock, and the latch's faint click."""
    t = np.arange(int(0.8 * RATE)) / RATE
    pitch = rng.uniform(50.0, 90.0)
    body = np.sin(2 * np.pi * pitch * t) * np.exp(-t / 0.08)
    body += 0.5 * np.sin(2 * np.pi * 2.7 * pitch * t) * np.exp(-t / 0.05)
    dull = np.convolve(rng.normal(size=len(t)), np.ones(32) / 32, mode="same")  # below ~500 Hz
    knock = 2.0 * dull * np.exp(-t / 0.01)
    latch = 0.03 * rng.normal(size=len(t)) * np.exp(-t / 0.002)
    slam = (body + knock) * np.clip(t / 0.003, 0.0, 1.0) + latch
    return np.asarray(slam / np.max(np.abs(slam)))


def applause(duration_s: float, people: int, seed: int) -> Pcm:
    """An audience clapping in a small room: each person about four times a second at their own
    pace and level, each clap a few milliseconds of noise, all overlapping."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    track = np.zeros(n + RATE)
    for _ in range(people):
        level, period = rng.uniform(0.1, 1.0), rng.uniform(0.2, 0.3)
        t = rng.uniform(0.0, period)
        while t < duration_s:
            length = int(0.05 * RATE)
            decay = np.exp(-np.arange(length) / (rng.uniform(0.004, 0.01) * RATE))
            at = int(t * RATE)
            track[at : at + length] += (
                level * rng.uniform(0.7, 1.0) * rng.normal(size=length) * decay
            )
            t += period * rng.uniform(0.9, 1.1)
    room = rng.normal(size=int(0.4 * RATE)) * np.exp(-np.arange(int(0.4 * RATE)) / (0.08 * RATE))
    room[0] = 20.0
    reverberant = np.fft.irfft(
        np.fft.rfft(track, 2 * len(track)) * np.fft.rfft(room, 2 * len(track))
    )
    clapped = reverberant[:n] / np.max(np.abs(reverberant[:n])) * 0.7
    return filtered(clapped.astype(np.float32), "highpass=f=300,lowpass=f=5000")


def round_trip(pcm: Pcm, codec: str, suffix: str, folder: Path) -> Pcm:
    """`pcm` encoded at 64 kb/s into a file, as an upload would carry it, and decoded again."""
    raw, encoded = folder / f"{codec}.f32", folder / f"{codec}{suffix}"
    pcm.tofile(raw)
    pcm_input = ("-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", raw)
    ffmpeg(*pcm_input, "-c:a", codec, "-b:a", "64k", encoded)
    return decode(encoded)


def assert_located(found: Sequence[float], placed: Sequence[float], least: float = 1.0) -> None:
    """Every impulse found is within the tolerance of a placed shot, and at least `least` of the
    placed shots were found."""
    for t in found:
        assert min(abs(t - p) for p in placed) <= TIME_TOLERANCE_S, f"impulse at {t} s: no shot"
    hit = [p for p in placed if any(abs(t - p) <= TIME_TOLERANCE_S for t in found)]
    assert len(hit) >= least * len(placed), f"found {found}, placed {placed}"


# Shots


def test_shots_fired_one_by_one_raise_an_alert_and_are_each_located() -> None:
    placed = single_shot_times(10.0, seed=1)
    track = shots(placed, 10.0, seed=1)

    result = score(mix_at_snr(track, pink_noise(len(track), seed=1), 10.0))

    assert result.risk >= ALERT
    assert_located(impulse_times(result), placed)
    assert feature(result, "impulse_count") == len(placed)


@pytest.mark.parametrize("per_s", [8.0, 12.0])
def test_an_automatic_burst_is_near_certain_and_counted_round_by_round(per_s: float) -> None:
    placed = burst_times(2.0, rounds=12, per_s=per_s, seed=2)
    track = shots(placed, 6.0, seed=2)

    result = score(mix_at_snr(track, pink_noise(len(track), seed=2), 10.0))

    assert result.risk >= 0.9
    assert_located(impulse_times(result), placed, least=0.8)
    assert feature(result, "max_impulses_per_s") >= 0.8 * per_s


def test_one_shot_alone_is_weak_evidence() -> None:
    track = shots([2.0], 5.0, seed=3)

    result = score(mix_at_snr(track, pink_noise(len(track), seed=3), 10.0))

    assert 0.0 < result.risk < ALERT
    assert_located(impulse_times(result), [2.0])


def test_shots_close_together_weigh_more_than_the_same_shots_spread_out() -> None:
    close, apart = [4.0, 4.8, 5.5], [0.5, 6.0, 11.5]
    noise = pink_noise(12 * RATE, seed=15)

    together = score(mix_at_snr(shots(close, 12.0, seed=15), noise, 10.0))
    spread = score(mix_at_snr(shots(apart, 12.0, seed=15), noise, 10.0))

    assert feature(together, "impulse_count") == feature(spread, "impulse_count") == 3
    assert spread.risk < ALERT <= together.risk


@pytest.mark.parametrize("background", ["music", "speech"])
def test_shots_over_real_music_or_speech_raise_an_alert(background: str, sounds_dir: Path) -> None:
    placed = single_shot_times(10.0, seed=4)
    track = shots(placed, 10.0, seed=4)
    if background == "music":
        under = decode(sounds_dir / "music" / "goin_march.it", start_s=5.0, duration_s=10.0)
    else:
        under = synthesise(" ".join(text for _, text in SPEECH[:2]), "en-gb+m3", 160)

    result = score(mix_at_snr(track, under, 10.0))

    assert result.risk >= ALERT
    assert_located(impulse_times(result), placed, least=0.8)


@pytest.mark.parametrize(("codec", "suffix"), [("libmp3lame", ".mp3"), ("aac", ".m4a")])
def test_shots_survive_a_64k_lossy_round_trip(codec: str, suffix: str, tmp_path: Path) -> None:
    singles = single_shot_times(10.0, seed=5)
    burst = burst_times(12.0, rounds=10, per_s=10.0, seed=5)
    track = shots([*singles, *burst], 16.0, seed=5)
    mixed = mix_at_snr(track, pink_noise(len(track), seed=5), 10.0)

    decoded = round_trip(mixed, codec, suffix, tmp_path)
    one_by_one = score(decoded[: 10 * RATE])
    automatic = score(decoded[10 * RATE :], start_s=10.0)

    assert one_by_one.risk >= ALERT
    assert automatic.risk >= 0.9
    assert_located(impulse_times(one_by_one), singles, least=0.8)
    assert_located(impulse_times(automatic), burst, least=0.8)


def test_how_loud_the_recording_is_does_not_matter() -> None:
    placed = single_shot_times(8.0, seed=6)
    track = shots(placed, 8.0, seed=6)
    mixed = mix_at_snr(track, pink_noise(len(track), seed=6), 10.0)

    loud, quiet = score(mixed), score((mixed * 0.05).astype(np.float32))  # 26 dB quieter

    assert quiet.risk == pytest.approx(loud.risk, abs=0.02)
    assert impulse_times(quiet) == pytest.approx(impulse_times(loud), abs=0.002)


def test_evidence_is_in_stream_time() -> None:
    placed = [0.6, 1.5, 2.2]
    track = shots(placed, 3.0, seed=7)

    result = score(mix_at_snr(track, pink_noise(len(track), seed=7), 10.0), start_s=3600.0)

    assert_located(impulse_times(result), [3600.0 + t for t in placed])
    assert result.evidence["burst"] == (impulse_times(result)[0], impulse_times(result)[-1])


# Window shapes


def test_it_is_a_scorer_with_a_fixed_set_of_named_features() -> None:
    scorer: Scorer = SCORER
    rng = np.random.default_rng(8)
    windows = {
        "no sound": np.zeros(0, np.float32),
        "a moment": np.zeros(100, np.float32),
        "silence": np.zeros(5 * RATE, np.float32),
        "noise": pink_noise(5 * RATE, seed=8) * np.float32(0.1),
        "shots": shots([0.5, 1.0, 1.5], 3.0, seed=8),
        "clipped": np.clip(rng.normal(size=3 * RATE) * 3.0, -1.0, 1.0).astype(np.float32),
    }

    results = {name: score(pcm) for name, pcm in windows.items()}

    assert scorer.name == "impulse"
    for name, result in results.items():
        assert result.scorer == "impulse"
        assert len(result.features) == len(scorer.feature_names), name
        assert all(np.isfinite(result.features)), name
        assert 0.0 <= result.risk <= 1.0, name
    assert results["no sound"].risk == results["silence"].risk == 0.0
    assert results["no sound"].evidence["impulse_times"] == ()


# Sounds that are not gunfire


@pytest.mark.parametrize("name", [*RECORDED_EFFECTS, *RECORDED_VOICES])
def test_a_recorded_sound_effect_or_voice_raises_no_alert(name: str, sounds_dir: Path) -> None:
    sound = decode(sounds_dir / "sounds" / f"{name}.wav")
    quiet_room = np.random.default_rng(9).normal(0.0, 0.001, 3 * RATE).astype(np.float32)
    quiet_room[RATE : RATE + len(sound)] += sound / np.max(np.abs(sound)) * 0.7

    result = score(quiet_room)

    assert result.risk < ALERT, result.evidence


def test_a_reel_of_recorded_sound_effects_raises_no_alert(sounds_dir: Path) -> None:
    rng = np.random.default_rng(10)
    parts: list[Pcm] = []
    for path in sorted((sounds_dir / "sounds").glob("*.wav")):
        sound = decode(path)
        parts += [sound / np.max(np.abs(sound)) * 0.7, np.zeros(int(0.4 * RATE), np.float32)]
    reel = np.concatenate(parts)
    reel += rng.normal(0.0, 0.002, len(reel)).astype(np.float32)

    result = score(reel)

    assert result.risk < ALERT, result.evidence


def test_tracker_music_raises_no_alert(sounds_dir: Path) -> None:
    modules = sorted((sounds_dir / "music").iterdir())
    with ThreadPoolExecutor(4) as pool:  # each decode is one ffmpeg process
        tracks = list(pool.map(lambda path: decode(path, duration_s=30.0), modules))
    windows = [
        (path.name, start, track[start * RATE : (start + 10) * RATE])
        for path, track in zip(modules, tracks, strict=True)
        for start in range(0, max(1, len(track) // RATE - 9), 5)
    ]

    risks = {f"{name}@{start}s": score(pcm).risk for name, start, pcm in windows}

    assert len(risks) >= 60
    assert max(risks.values()) < ALERT, {k: r for k, r in risks.items() if r >= ALERT}


@pytest.mark.parametrize(("voice", "text"), SPEECH, ids=[voice for voice, _ in SPEECH])
def test_synthesised_speech_raises_no_alert(voice: str, text: str) -> None:
    speech = synthesise(text, voice, 160)
    in_a_room = mix_at_snr(speech, pink_noise(len(speech), seed=11), 30.0)

    clean, roomy = score(speech), score(in_a_room)

    assert clean.risk < ALERT, clean.evidence
    assert roomy.risk < ALERT, roomy.evidence


@pytest.mark.parametrize("seed", [12, 13])
def test_door_slams_two_seconds_apart_raise_no_alert(seed: int) -> None:
    rng = np.random.default_rng(seed)
    track = np.zeros(6 * RATE)
    for at in (1.0, 3.0):
        slam = door_slam(rng) * 0.7
        track[int(at * RATE) : int(at * RATE) + len(slam)] += slam
    recorded = filtered(track.astype(np.float32), RECORDING)

    result = score(mix_at_snr(recorded, pink_noise(len(recorded), seed=seed), 25.0))

    assert feature(result, "onsets_per_s") * 6.0 >= 2.0  # heard as sharp onsets: not shots
    assert result.risk < ALERT, result.evidence


@pytest.mark.parametrize("people", [8, 40])
def test_applause_raises_no_alert(people: int) -> None:
    clapping = applause(6.0, people, seed=people)

    result = score(mix_at_snr(clapping, pink_noise(len(clapping), seed=14), 25.0))

    assert result.risk < ALERT, result.evidence
