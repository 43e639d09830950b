"""The soundtrack fingerprint finds a banked soundtrack from a manipulated 10-second excerpt.

Soundtracks are made of real recordings: Big Buck Bunny's soundtrack, the recorded voices and
tracker music of Debian's `pingus-data`, and speech synthesised by espeak-ng in several voices
and languages, with a little noise over all of it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from firebreak.index.audio import AudioIndex, AudioMatch, brute_force_search
from firebreak.settings import Settings
from firebreak.signals.audio import (
    AudioFingerprint,
    AudioSignal,
    audio_landmarks,
    audio_peaks,
    format_audio_peaks,
    parse_audio_peaks,
    query_landmarks,
)

REPO = Path(__file__).resolve().parent.parent
RATE = 16_000
PINGUS_DEB = "pingus-data"
PINGUS_DIR = "usr/share/games/pingus/data"
EXCERPT_S = 10.0
MIN_MATCHES = AudioSignal.threshold(Settings())

Pcm = npt.NDArray[np.float32]

TEXTS = {
    "call": (
        "en-us",
        "Brothers, the hour has come. We have watched and we have waited, and now "
        "the city will hear us. Every street and every square will remember this day.",
    ),
    "convoy": (
        "en-gb+m3",
        "Our convoy left before dawn and crossed the valley in silence. The "
        "mountains were white with snow and the wind carried the sound of engines.",
    ),
    "weather_de": (
        "de",
        "Die Nachrichten des Tages berichten von starken Regenfällen im Norden "
        "des Landes. Viele Straßen sind gesperrt und die Bahn fährt nur eingeschränkt.",
    ),
    "market_fr": (
        "fr",
        "Le marché du samedi ouvre à sept heures. Les paysans apportent des "
        "fromages, des légumes et du pain encore chaud du four du village.",
    ),
    "orders": (
        "en-us+f3",
        "Listen carefully to the instructions. Take the left road at the old "
        "mill, wait for the signal, and do not speak to anyone on the way.",
    ),
    "library_es": (
        "es",
        "La biblioteca municipal amplía su horario durante el verano. Los niños "
        "podrán participar en talleres de lectura y de pintura cada tarde.",
    ),
    "story": (
        "en-gb+f4",
        "The recording you are about to hear was made in the spring. It tells "
        "the story of a small group of people who decided to change everything.",
    ),
    "statement_ar": (
        "ar",
        "بسم الله نبدأ هذا البيان إلى كل الإخوة في كل مكان اليوم يوم النصر وغدا يوم الحساب",
    ),
    "factory": (
        "en-gb-scotland",
        "The factory closed in the winter and the workers gathered "
        "outside the gates every morning, hoping for news that never came.",
    ),
    "radio": (
        "en-us+m2",
        "Check the batteries in the radio twice a day. If the signal is lost, "
        "move to the higher ground behind the water tower and try again.",
    ),
    "train_it": (
        "it",
        "Il treno per Milano partirà con venti minuti di ritardo a causa di un "
        "guasto tecnico sulla linea.",
    ),
    "bridge": (
        "en-gb-x-rp",
        "Nobody expected the bridge to fall. It had stood for a hundred "
        "years, carrying carts, then cars, then the heavy lorries of the quarry.",
    ),
}
# Other words in the same voices: speech that must not match the banked speech.
UNRELATED_TEXTS = {
    "forecast": (
        "en-us",
        "Tomorrow the weather will be mild in the south with light showers in "
        "the afternoon. Temperatures will reach eighteen degrees near the coast. Please "
        "remember to bring your library card when you visit the reading room.",
    ),
    "opening_hours": (
        "en-gb+m3",
        "Books can be renewed online or by telephone during opening "
        "hours. The museum shows a new exhibition about the history of the railway "
        "in Europe from Monday.",
    ),
    "recipe": (
        "en-us+f3",
        "Add two cups of flour, a pinch of salt and a spoon of sugar, then "
        "stir slowly until the dough is smooth. Leave it to rest for one hour in a warm "
        "place before baking.",
    ),
}
UNRELATED_MUSIC = ("sorcerer.it", "pingus-8.it", "gd-myla.it")
MIXED_MUSIC = "goin_march.it"  # the music mixed into queries: in no bank


@dataclass(frozen=True)
class Excerpt:
    """A banked soundtrack's 10-second excerpt, transformed; where it truly came from."""

    item_id: int
    start_s: float
    pcm: Pcm


class SoundSources:
    """Decoded real recordings and synthesised speech, as 16 kHz mono float32."""

    def __init__(self, sounds_dir: Path, bunny: Path) -> None:
        self.sounds_dir = sounds_dir
        self.bunny = bunny

    def sound(self, name: str) -> Pcm:
        return decode(self.sounds_dir / "sounds" / f"{name}.wav")

    def music(self, name: str, start_s: float, duration_s: float) -> Pcm:
        return decode(self.sounds_dir / "music" / name, start_s=start_s, duration_s=duration_s)

    def speech(self, key: str, rate_wpm: int = 160) -> Pcm:
        voice, text = {**TEXTS, **UNRELATED_TEXTS}[key]
        return synthesise(text, voice, rate_wpm)

    def bunny_soundtrack(self) -> Pcm:
        return decode(self.bunny)


def decode(
    path: Path,
    *,
    start_s: float | None = None,
    duration_s: float | None = None,
    audio_filter: str | None = None,
    fmt: str | None = None,
    data: bytes | None = None,
) -> Pcm:
    """Any audio ffmpeg reads (a file, or `data` in format `fmt`) as 16 kHz mono float32."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    if start_s is not None:
        args += ["-ss", str(start_s)]
    if duration_s is not None:
        args += ["-t", str(duration_s)]
    if fmt:
        args += ["-f", fmt]
        if fmt == "f32le":
            args += ["-ar", str(RATE), "-ac", "1"]
    args += ["-i", "pipe:0" if data is not None else str(path)]
    if audio_filter:
        args += ["-af", audio_filter]
    args += ["-f", "f32le", "-ac", "1", "-ar", str(RATE), "pipe:1"]
    proc = subprocess.run(args, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"ffmpeg could not decode {path}: {proc.stderr.decode(errors='replace')}")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def encode(pcm: Pcm, codec: str, container: str) -> bytes:
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    args += ["-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", "pipe:0"]
    args += ["-c:a", codec, "-b:a", "64k", "-f", container, "pipe:1"]
    proc = subprocess.run(args, input=pcm.tobytes(), capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"ffmpeg could not encode {codec}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def filtered(pcm: Pcm, audio_filter: str) -> Pcm:
    return decode(Path("-"), fmt="f32le", data=pcm.tobytes(), audio_filter=audio_filter)


def synthesise(text: str, voice: str, rate_wpm: int) -> Pcm:
    proc = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "--stdout", text],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"espeak-ng failed for voice {voice}: {proc.stderr.decode(errors='replace')}")
    return decode(Path("espeak-ng"), fmt="wav", data=proc.stdout)


def fetch_pingus_data(dest: Path) -> Path:
    """pingus-data's sounds and music, extracted from its Debian package into `dest`.

    Test workers may ask at the same time: one fetches, the others wait for it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / f"{dest.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_pingus_data_unlocked(dest)


def _fetch_pingus_data_unlocked(dest: Path) -> Path:
    if (dest / "sounds" / "goodidea.wav").is_file() and (dest / "music" / MIXED_MUSIC).is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if _apt_download(work) != 0:
            _run_or_fail(["apt-get", "update", "-qq"], work)  # a fresh machine has no lists
            if _apt_download(work) != 0:
                pytest.fail(f"`apt-get download {PINGUS_DEB}` failed: cannot fetch test sounds")
        deb = next(work.glob("*.deb"))
        _run_or_fail(["dpkg-deb", "-x", str(deb), str(work / "x")], work)
        staging = dest.with_name(dest.name + ".part")
        shutil.rmtree(staging, ignore_errors=True)
        for folder in ("sounds", "music"):
            shutil.copytree(work / "x" / PINGUS_DIR / folder, staging / folder)
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(dest)
    return dest


def _apt_download(cwd: Path) -> int:
    args = ["apt-get", "download", PINGUS_DEB]
    return subprocess.run(args, cwd=cwd, capture_output=True, check=False).returncode


def _run_or_fail(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed: {proc.stderr.strip()[-300:]}")


def gap(seconds: float) -> Pcm:
    return np.zeros(int(seconds * RATE), np.float32)


def at_level(pcm: Pcm, rms: float = 0.1) -> Pcm:
    return (pcm * (rms / max(1e-9, float(np.sqrt(np.mean(pcm**2)))))).astype(np.float32)


def soundtrack(parts: list[Pcm], seed: int) -> Pcm:
    """Parts one after another at broadcast-like levels, under light noise."""
    levelled = [at_level(p) if len(p) > RATE else at_level(p, 0.08) for p in parts]
    joined = np.concatenate(levelled)
    noise = np.random.default_rng(seed).normal(0.0, 0.003, len(joined))
    return (joined + noise).astype(np.float32)


def mix_at_snr(pcm: Pcm, other: Pcm, snr_db: float) -> Pcm:
    other = np.resize(other, len(pcm))
    signal_power = float(np.mean(pcm**2))
    other_power = max(1e-12, float(np.mean(other**2)))
    gain = float(np.sqrt(signal_power / other_power / 10 ** (snr_db / 10)))
    return np.asarray(pcm + gain * other, dtype=np.float32)


@pytest.fixture(scope="session")
def sources(clips: dict[str, Path]) -> SoundSources:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: install the Debian package espeak-ng")
    cache = Path(os.environ.get("FIREBREAK_SOUNDS_DIR", REPO / ".cache" / "sounds"))
    return SoundSources(fetch_pingus_data(cache), clips["bigbuckbunny.mp4"])


@pytest.fixture(scope="session")
def soundtracks(sources: SoundSources) -> list[Pcm]:
    """Four banked soundtracks, 40-50 s each, sharing no recording."""
    s = sources
    return [
        soundtrack([s.speech("call"), gap(0.3), s.sound("goodidea"), gap(0.4),
                    s.bunny_soundtrack(), s.speech("convoy"), s.sound("ohno"),
                    s.music("pingus-1.it", 8, 10), s.speech("story")], seed=1),
        soundtrack([s.music("pingus-2.it", 0, 8), s.speech("weather_de"), s.sound("yipee"),
                    s.speech("bridge"), gap(0.5), s.speech("orders"), s.sound("splash"),
                    s.music("pingus-3.it", 20, 6)], seed=2),
        soundtrack([s.speech("market_fr"), s.sound("digger"), s.music("pingus-4.it", 4, 12),
                    s.speech("statement_ar"), gap(0.3), s.sound("letsgo"),
                    s.speech("library_es", 140), s.sound("plop"),
                    s.music("pingus-7.it", 0, 6)], seed=3),
        soundtrack([s.music("pingus-5.it", 10, 14), s.speech("factory"), s.sound("chink"),
                    s.music("pingus-6.it", 0, 8), s.speech("radio"), s.sound("tick"),
                    s.speech("train_it")], seed=4),
    ]  # fmt: skip


@pytest.fixture(scope="session")
def unrelated(sources: SoundSources) -> dict[str, Pcm]:
    """Sound in none of the banked soundtracks: other words in the same voices, other music."""
    speech = {key: sources.speech(key) for key in UNRELATED_TEXTS}
    music = {name: sources.music(name, 5, EXCERPT_S) for name in UNRELATED_MUSIC}
    return {**speech, **music}


@pytest.fixture(scope="session")
def bank(soundtracks: list[Pcm]) -> dict[int, AudioFingerprint]:
    return {item_id: audio_landmarks(pcm, RATE) for item_id, pcm in enumerate(soundtracks)}


@pytest.fixture(scope="session")
def index(bank: dict[int, AudioFingerprint]) -> AudioIndex:
    built = AudioIndex()
    for item_id, fp in bank.items():
        built.add(item_id, fp)
    return built


@pytest.fixture(scope="session")
def mixed_music(sources: SoundSources) -> Pcm:
    return sources.music(MIXED_MUSIC, 0, EXCERPT_S + 2)


def excerpt_start(item_id: int) -> float:
    return 5.0 + 7.0 * item_id


def excerpt(soundtracks: list[Pcm], item_id: int) -> Excerpt:
    start = excerpt_start(item_id)
    pcm = soundtracks[item_id][int(start * RATE) : int((start + EXCERPT_S) * RATE)]
    return Excerpt(item_id, start, pcm)


Manipulation = Callable[[Pcm, Pcm], Pcm]

# Each takes the excerpt and the music to mix in; `speed` is how much faster the copy plays.
MANIPULATIONS: dict[str, tuple[Manipulation, float]] = {
    "untouched": (lambda pcm, _: pcm, 1.0),
    "mp3_64k": (lambda pcm, _: decode(Path("mp3"), fmt="mp3", data=encode(pcm, "libmp3lame", "mp3")), 1.0),
    "aac_64k": (lambda pcm, _: decode(Path("aac"), fmt="aac", data=encode(pcm, "aac", "adts")), 1.0),
    "volume_up_10db": (lambda pcm, _: filtered(pcm, "volume=10dB"), 1.0),
    "volume_down_10db": (lambda pcm, _: filtered(pcm, "volume=-10dB"), 1.0),
    "white_noise_10db_snr": (
        lambda pcm, _: mix_at_snr(pcm, np.random.default_rng(7).normal(size=len(pcm)).astype(np.float32), 10.0),
        1.0,
    ),
    "music_10db_snr": (lambda pcm, music: mix_at_snr(pcm, music, 10.0), 1.0),
    "tempo_0.9": (lambda pcm, _: filtered(pcm, "atempo=0.9"), 0.9),
    "tempo_1.1": (lambda pcm, _: filtered(pcm, "atempo=1.1"), 1.1),
    "speed_0.9": (lambda pcm, _: filtered(pcm, f"asetrate={RATE * 0.9:.0f},aresample={RATE}"), 0.9),
    "speed_1.1": (lambda pcm, _: filtered(pcm, f"asetrate={RATE * 1.1:.0f},aresample={RATE}"), 1.1),
}  # fmt: skip


def search(index: AudioIndex, pcm: Pcm, min_matches: int = MIN_MATCHES) -> list[AudioMatch]:
    return index.search(query_landmarks(pcm, RATE), min_matches)


@pytest.mark.parametrize("manipulation", list(MANIPULATIONS))
def test_manipulated_excerpt_finds_its_soundtrack_and_segment(
    manipulation: str, soundtracks: list[Pcm], index: AudioIndex, mixed_music: Pcm
) -> None:
    transform, speed = MANIPULATIONS[manipulation]
    for item_id in range(len(soundtracks)):
        source = excerpt(soundtracks, item_id)
        query = transform(source.pcm, mixed_music)

        found = search(index, query)

        assert [m.item_id for m in found] == [item_id], f"{manipulation}, item {item_id}"
        match = found[0]
        assert match.score == 1.0
        assert match.speed == pytest.approx(speed, rel=0.02)
        query_duration = len(query) / RATE
        assert match.query_segment[0] == pytest.approx(0.0, abs=1.0)
        assert match.query_segment[1] == pytest.approx(query_duration, abs=1.0)
        assert match.item_segment[0] == pytest.approx(source.start_s, abs=1.0)
        assert match.item_segment[1] == pytest.approx(source.start_s + EXCERPT_S, abs=1.0)


def test_resampled_copy_reports_its_pitch_and_tempo_change_keeps_it(
    soundtracks: list[Pcm], index: AudioIndex
) -> None:
    source = excerpt(soundtracks, 2).pcm

    resampled = search(index, filtered(source, f"asetrate={RATE * 1.1:.0f},aresample={RATE}"))
    tempo = search(index, filtered(source, "atempo=1.1"))

    assert resampled[0].pitch == pytest.approx(1.1, rel=0.02)
    assert tempo[0].pitch == 1.0


def test_pitch_shifted_copy_is_found(soundtracks: list[Pcm], index: AudioIndex) -> None:
    source = excerpt(soundtracks, 3).pcm
    shifted = filtered(source, f"asetrate={RATE * 1.1:.0f},aresample={RATE},atempo={1 / 1.1:.6f}")

    found = search(index, shifted)

    assert [m.item_id for m in found] == [3]
    assert (found[0].speed, found[0].pitch) == pytest.approx((1.0, 1.1), rel=0.02)


def test_unrelated_sound_matches_nothing(unrelated: dict[str, Pcm], index: AudioIndex) -> None:
    for name, pcm in unrelated.items():
        assert len(audio_peaks(pcm, RATE)) > 10 * EXCERPT_S, f"{name} is too quiet to test"
        assert search(index, pcm) == [], name


def test_unrelated_sound_aligns_far_fewer_landmarks_than_the_threshold(
    unrelated: dict[str, Pcm], index: AudioIndex
) -> None:
    best = max((m.matches for pcm in unrelated.values() for m in search(index, pcm, 1)), default=0)

    assert best < MIN_MATCHES * 0.8


def test_index_search_equals_brute_force(
    soundtracks: list[Pcm],
    unrelated: dict[str, Pcm],
    bank: dict[int, AudioFingerprint],
    index: AudioIndex,
    mixed_music: Pcm,
) -> None:
    queries = [
        excerpt(soundtracks, 0).pcm,
        MANIPULATIONS["music_10db_snr"][0](excerpt(soundtracks, 1).pcm, mixed_music),
        filtered(excerpt(soundtracks, 2).pcm, "atempo=0.9"),
        unrelated["forecast"],
    ]
    for pcm in queries:
        fps = query_landmarks(pcm, RATE)
        assert index.search(fps, 5) == brute_force_search(bank, fps, 5)


def test_removed_item_is_no_longer_found_and_others_still_are(
    soundtracks: list[Pcm], bank: dict[int, AudioFingerprint]
) -> None:
    index = AudioIndex()
    for item_id, fp in bank.items():
        index.add(item_id, fp)
    queries = [query_landmarks(excerpt(soundtracks, i).pcm, RATE) for i in (0, 1)]

    index.remove(0)

    assert index.search(queries[0], MIN_MATCHES) == []
    assert [m.item_id for m in index.search(queries[1], MIN_MATCHES)] == [1]
    assert len(index) == len(bank) - 1


def _synthetic_fingerprint(hashes: np.ndarray, times: np.ndarray) -> AudioFingerprint:
    order = np.argsort(hashes, kind="stable")
    n = len(hashes)
    return AudioFingerprint(
        hashes[order].astype(np.uint32),
        times[order].astype(np.float32),
        np.full(n, 0.2, np.float32),
        np.arange(n, dtype=np.int64)[order],
    )


@given(seed=st.integers(0, 2**32 - 1), copied=st.integers(0, 120), min_matches=st.integers(1, 30))
@hypothesis_settings(max_examples=30, deadline=None)
def test_index_equals_brute_force_on_planted_alignments(
    seed: int, copied: int, min_matches: int
) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct hash values, so that chance collisions abound.
    items = {
        item_id: _synthetic_fingerprint(
            rng.integers(0, 4000, 600), np.sort(rng.uniform(0, 60, 600))
        )
        for item_id in rng.choice(10**6, size=4, replace=False).tolist()
    }
    source = items[next(iter(items))]
    picked = rng.choice(len(source), size=copied, replace=False)
    query = _synthetic_fingerprint(
        np.concatenate([source.hashes[picked], rng.integers(0, 4000, 200)]),
        np.concatenate(
            [source.times[picked] - 7.0 + rng.normal(0, 0.01, copied), rng.uniform(0, 10, 200)]
        ),
    )
    index = AudioIndex()
    for item_id, fp in items.items():
        index.add(item_id, fp)

    assert index.search(query, min_matches) == brute_force_search(items, query, min_matches)


def test_signal_string_round_trips_and_compares(soundtracks: list[Pcm]) -> None:
    item = format_audio_peaks(audio_peaks(soundtracks[1], RATE))
    copy = format_audio_peaks(
        audio_peaks(filtered(excerpt(soundtracks, 1).pcm, "atempo=1.1"), RATE)
    )
    other = format_audio_peaks(audio_peaks(excerpt(soundtracks, 3).pcm, RATE))
    settings = Settings()

    assert AudioSignal.validate(item) == item
    assert parse_audio_peaks(item).duration_s == pytest.approx(len(soundtracks[1]) / RATE, abs=1e-3)
    assert AudioSignal.distance(item, item) == 0
    assert AudioSignal.matches(item, copy, settings)
    assert not AudioSignal.matches(item, other, settings)
    assert not AudioSignal.matches(item, copy, Settings(thresholds={"audio": 10**6}))


@pytest.mark.parametrize("value", ["", "not base64!", "AAAA", "RkJBMgAAAAA="])
def test_malformed_signal_string_is_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        AudioSignal.validate(value)


def test_silence_and_tiny_clips_have_no_peaks() -> None:
    assert len(audio_peaks(np.zeros(10 * RATE, np.float32), RATE)) == 0
    assert len(audio_peaks(np.zeros(100, np.float32), RATE)) == 0
    assert len(audio_landmarks(np.zeros(0, np.float32), RATE)) == 0
    assert search(AudioIndex(), np.zeros(RATE, np.float32)) == []


def test_a_minute_of_sound_fingerprints_quickly(soundtracks: list[Pcm]) -> None:
    minute = np.concatenate(soundtracks)[: 60 * RATE]

    started = time.perf_counter()
    fp = audio_landmarks(minute, RATE)
    elapsed = time.perf_counter() - started

    peaks_per_s = len(audio_peaks(minute, RATE)) / 60
    assert 15 <= peaks_per_s <= 45
    assert len(fp) > 0
    assert elapsed < 3.0  # about 0.2 s on one core; generous for loaded CI machines
