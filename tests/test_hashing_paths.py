"""The query hashing path's shortcuts give what the plain computations give, bit for bit."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from firebreak.errors import MediaRejected
from firebreak.media import VideoFrames, probe_media
from firebreak.settings import Settings
from firebreak.signals import hash_query_file
from firebreak.signals.audio import SoundtrackPeaks, audio_peaks
from firebreak.signals.pdq import PDQ_SIZE, _quality
from firebreak.signals.thumb import THUMB_SIDE, box_scaled_lumas, thumb_vector, thumb_vectors
from firebreak.signals.views import _pdq_size_luma

RATE = 16_000


def _one_by_one(pictures: list[np.ndarray], side: int) -> np.ndarray:
    resized = []
    for p in pictures:
        image = Image.fromarray(np.ascontiguousarray(p)).convert("L")
        resized.append(np.asarray(image.resize((side, side), Image.Resampling.BOX)))
    return np.stack(resized)


@pytest.mark.parametrize("side", [PDQ_SIZE, THUMB_SIDE])
@pytest.mark.parametrize(
    "shape",
    [(240, 213), (180, 213), (213, 240), (96, 200), (400, 90), (64, 64), (40, 50), (1, 300)],
)
def test_stacked_box_scaling_equals_scaling_each_picture(shape: tuple[int, int], side: int) -> None:
    rng = np.random.default_rng(sum(shape) + side)
    pictures = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(7)]
    pictures[2][:] = 17  # a flat picture among them

    stacked = box_scaled_lumas(pictures, side, _pdq_size_luma)

    np.testing.assert_array_equal(stacked, _one_by_one(pictures, side))


def test_stacked_box_scaling_takes_crops_rgb_and_mixed_sizes() -> None:
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (240, 213, 3), dtype=np.uint8) for _ in range(5)]
    crops = [f[30:200, 11:190] for f in frames]  # views, not contiguous
    mixed = [*crops[:2], frames[2]]

    np.testing.assert_array_equal(
        box_scaled_lumas(crops, PDQ_SIZE, _pdq_size_luma), _one_by_one(crops, PDQ_SIZE)
    )
    np.testing.assert_array_equal(
        box_scaled_lumas(mixed, PDQ_SIZE, _pdq_size_luma), _one_by_one(mixed, PDQ_SIZE)
    )


def test_thumb_vectors_equal_thumb_vector_of_each() -> None:
    rng = np.random.default_rng(9)
    pictures = [rng.integers(0, 256, (150, 120), dtype=np.uint8) for _ in range(6)]
    pictures[3][:] = 200  # flat: the zero vector
    mirrored = [p[:, ::-1] for p in pictures]

    for batch in (pictures, mirrored):
        ours = thumb_vectors(batch)
        assert [v.tobytes() for v in ours] == [thumb_vector(p).tobytes() for p in batch]


def test_integer_quality_gradients_equal_pdqs_float_arithmetic() -> None:
    # Every pair of grey levels, laid out so that each picture holds the differences of some.
    levels = np.arange(256, dtype=np.int16)
    pairs = np.stack(np.meshgrid(levels, levels), axis=-1).reshape(-1, 2)
    pictures = np.zeros((len(pairs) // 32, PDQ_SIZE, PDQ_SIZE), dtype=np.int16)
    pictures[:, 0, 0:64:2] = pairs[: len(pictures) * 32, 0].reshape(-1, 32)
    pictures[:, 0, 1:64:2] = pairs[: len(pictures) * 32, 1].reshape(-1, 32)
    pictures[:, 1, :] = pictures[:, 0, ::-1]
    as_float = pictures.astype(np.float32)
    down = np.abs(np.trunc((as_float[:, :-1, :] - as_float[:, 1:, :]) * 100 / 255))
    across = np.abs(np.trunc((as_float[:, :, :-1] - as_float[:, :, 1:]) * 100 / 255))
    total = down.sum(axis=(1, 2), dtype=np.int64) + across.sum(axis=(1, 2), dtype=np.int64)

    np.testing.assert_array_equal(_quality(pictures), np.minimum(total // 90, 100))


@pytest.mark.parametrize("seconds", [0.5, 20.0, 34.0, 34.01, 61.0, 95.3])
def test_soundtrack_peaks_arriving_in_pieces_equal_those_of_the_whole(seconds: float) -> None:
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    noise = np.random.default_rng(3).standard_normal(n)
    pcm = (0.3 * np.sin(2 * np.pi * (300 + 50 * np.sin(t)) * t) + 0.05 * noise).astype(np.float32)
    whole = SoundtrackPeaks(RATE)
    whole.add(pcm)
    expected = whole.finish()
    if seconds < 34:
        reference = audio_peaks(pcm, RATE)
        assert expected.times.tobytes() == reference.times.tobytes()

    for piece in (1024, 7_777, 160_000):
        pieces = SoundtrackPeaks(RATE)
        for start in range(0, n, piece):
            pieces.add(pcm[start : start + piece])
        got = pieces.finish()
        assert got.times.tobytes() == expected.times.tobytes()
        assert got.freqs.tobytes() == expected.freqs.tobytes()
        assert got.duration_s == expected.duration_s


def _decoding_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("firebreak-decode")]


def test_stopping_early_stops_the_decoding_thread(clips: dict[str, Path]) -> None:
    settings = Settings()
    info = probe_media(clips["bikes.mp4"], settings)
    stream = VideoFrames(info, settings, 30.0, 192, with_audio=True, grey=True)

    frames = iter(stream)
    next(frames)
    assert _decoding_threads()
    frames.close()  # type: ignore[attr-defined]

    assert not _decoding_threads()


def test_a_decoding_error_is_raised_to_the_consumer(clips: dict[str, Path]) -> None:
    settings = Settings(max_decoded_frames=10)
    info = probe_media(clips["bikes.mp4"], settings)

    with pytest.raises(MediaRejected, match="more than 10 frames"):
        hash_query_file(clips["bikes.mp4"], settings)

    assert not _decoding_threads()
    assert list(VideoFrames(info, Settings(), 1.0, 64))  # a fresh pass still works
