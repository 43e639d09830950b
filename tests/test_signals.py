"""Signal types agree with the reference implementations bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pdqhash
import pytest
import vpdq
from PIL import Image

from firebreak.media import decode_video, probe_media
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.signals.pdq import PdqSignal, pdq_hash_luma64, pdq_hash_pixels
from firebreak.signals.registry import SIGNAL_TYPES
from firebreak.signals.video import VideoSignal, format_vpdq_json, parse_vpdq


@pytest.mark.parametrize("photo", ["astronaut.png", "chelsea.png"])
def test_pdq_is_bit_exact_with_pdqhash_on_the_same_pixels(
    clips: dict[str, Path], photo: str
) -> None:
    pixels = np.asarray(Image.open(clips[photo]).convert("RGB"))
    bits, quality = pdqhash.compute(pixels)
    reference = "".join(str(b) for b in bits)

    ours = pdq_hash_pixels(pixels)

    assert f"{int.from_bytes(ours.code, 'big'):0256b}" == reference
    assert ours.quality == quality


def test_batched_pdq_of_small_lumas_equals_pdqhash_and_its_mirror(clips: dict[str, Path]) -> None:
    info = probe_media(clips["bikes.mp4"], Settings())
    frames = decode_video(info, Settings(), 5.0, 0).frames
    lumas = np.stack(
        [np.asarray(Image.fromarray(f.pixels).convert("L").resize((64, 64))) for f in frames]
    )
    noise = np.random.default_rng(7).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    lumas = np.concatenate([lumas, noise])

    straight, mirrored = pdq_hash_luma64(lumas, [0.0] * len(lumas))

    for luma, ours, ours_mirrored in zip(lumas, straight, mirrored, strict=True):
        rgb = np.repeat(luma[:, :, None], 3, axis=2)
        assert ours == pdq_hash_pixels(rgb)
        assert ours_mirrored == pdq_hash_pixels(np.ascontiguousarray(rgb[:, ::-1]))


@pytest.mark.parametrize("clip", ["bikes.mp4", "cockatoo.mp4", "bigbuckbunny.mp4"])
def test_banked_video_frames_equal_the_vpdq_package(
    fb: Firebreak, clips: dict[str, Path], clip: str
) -> None:
    reference = vpdq.computeHash(str(clips[clip]), seconds_per_hash=1.0)

    ours = fb.hash_for_bank(clips[clip]).frames

    assert [f.hex for f in ours] == [r.hex for r in reference]
    assert [f.quality for f in ours] == [r.quality for r in reference]
    assert [f.timestamp for f in ours] == pytest.approx([r.timestamp for r in reference], abs=0.01)


def test_one_pass_decodes_sampled_frames_and_pcm_audio(
    settings: Settings, clips: dict[str, Path]
) -> None:
    info = probe_media(clips["bigbuckbunny.mp4"], settings)

    decoded = decode_video(info, settings, fps=2.0, size=64, with_audio=True)

    assert [f.pixels.shape for f in decoded.frames[:1]] == [(64, 64, 3)]
    assert len(decoded.frames) == 11  # 5.3 s at two frames a second
    assert decoded.audio_rate == 16_000
    assert abs(len(decoded.audio) / decoded.audio_rate - 5.3) < 0.3
    assert float(np.abs(decoded.audio).max()) > 0.01  # a real soundtrack, not silence


def test_vpdq_json_round_trips(clips: dict[str, Path], fb: Firebreak) -> None:
    frames = fb.hash_for_bank(clips["bigbuckbunny.mp4"]).frames

    text = format_vpdq_json(list(frames))

    assert [f.hex for f in parse_vpdq(text)] == [f.hex for f in frames]
    assert VideoSignal.validate(text) == text


def test_thresholds_are_settings_with_per_type_defaults() -> None:
    assert PdqSignal.threshold(Settings()) == 31
    assert PdqSignal.threshold(Settings(thresholds={"pdq": 20})) == 20
    assert {t.name for t in SIGNAL_TYPES.values()} == {
        "pdq",
        "video",
        "md5",
        "sha256",
        "thumb",
        "audio",
    }
    for kind in SIGNAL_TYPES.values():
        assert kind.exchange_name and kind.default_threshold >= 0
