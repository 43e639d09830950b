"""The query decode's shortcuts change which frames are decoded, never a decoded frame's pixels."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from firebreak.bench.variants import run_ffmpeg
from firebreak.media import probe_media
from firebreak.media.decode import VideoFrames, _decoding_lanes, grey_pixels
from firebreak.media.reduce import box_reduce
from firebreak.media.skipping import MAX_KEPT_GAP_S, BFrameProbe, ProbeVerdict
from firebreak.settings import Settings

# x264 at reference count 1 predicts P-frames from I-/P-frames only; from "faster" on, P-frames
# also refer to the B-frames that B-pyramids keep as references; ultrafast has no B-frames.
ENCODINGS = {
    "veryfast": ("-preset", "veryfast"),
    "medium": ("-preset", "medium"),
    "ultrafast": ("-preset", "ultrafast"),
    # Keyframes every 1.5 s: two decoders take alternate GOPs (see `_decoding_lanes`).
    "veryfast_short_gops": ("-preset", "veryfast", "-g", "45"),
    "medium_short_gops": ("-preset", "medium", "-g", "45"),
    "ultrafast_short_gops": ("-preset", "ultrafast", "-g", "45"),
}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("skipping")
    made: dict[str, Path] = {}
    for name, preset in ENCODINGS.items():
        dest = folder / f"{name}.mp4"
        run_ffmpeg(
            [
                *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "8"),
                *("-vf", "noise=alls=8:allf=t", "-c:v", "libx264", *preset),
                *("-pix_fmt", "yuv420p", "-an", str(dest)),
            ]
        )
        made[name] = dest
    return made


def _reference_lumas(path: Path) -> dict[int, np.ndarray]:
    """Every frame, decoded as the query decode decodes what it keeps (loop filter skipped), by
    presentation time in milliseconds."""
    lumas: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.codec_context.options = {"skip_loop_filter": "all"}
        first: float | None = None
        for frame in container.decode(video):
            assert frame.time is not None
            first = frame.time if first is None else first
            lumas[round((frame.time - first) * 1000)] = grey_pixels(frame, 0)  # the Y plane
    return lumas


def _query_lumas(path: Path) -> dict[int, np.ndarray]:
    settings = Settings()
    stream = VideoFrames(probe_media(path, settings), settings, 1000.0, 0, grey=True)
    return {round(frame.timestamp * 1000): frame.pixels for frame in stream}


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_every_frame_the_query_decode_keeps_is_the_exact_frame(
    encoded: dict[str, Path], name: str
) -> None:
    reference = _reference_lumas(encoded[name])
    kept = _query_lumas(encoded[name])
    assert kept
    for millis, luma in kept.items():
        assert np.array_equal(luma, reference[millis]), f"{name}: frame at {millis} ms differs"


def test_b_frames_are_skipped_only_where_p_frames_do_not_need_them(
    encoded: dict[str, Path],
) -> None:
    every = len(_reference_lumas(encoded["veryfast"]))
    kept = sorted(_query_lumas(encoded["veryfast"]))
    # Only I- and P-frames are left once the probe has decided: well under half of all frames,
    # still no further apart than the sampling needs.
    assert len(kept) < 0.45 * every
    assert max(b - a for a, b in itertools.pairwise(kept)) <= MAX_KEPT_GAP_S * 1000
    for name in ("ultrafast", "ultrafast_short_gops"):  # no B-frames: every frame is kept
        assert len(_query_lumas(encoded[name])) == len(_reference_lumas(encoded[name]))


def test_decoding_lanes_lose_no_frame_one_decoder_keeps(encoded: dict[str, Path]) -> None:
    settings = Settings()
    for name in ("veryfast_short_gops", "medium_short_gops", "ultrafast_short_gops"):
        info = probe_media(encoded[name], settings)
        assert _decoding_lanes(info) == 2
        one_lane = VideoFrames(replace(info, container=""), settings, 1000.0, 0, grey=True)
        alone = {round(f.timestamp * 1000): f.pixels for f in one_lane}
        together = _query_lumas(encoded[name])
        # The lane ahead may still keep B-frames the probe has not yet ruled out; it loses none.
        assert alone.keys() <= together.keys(), name
        assert all(np.array_equal(together[t], alone[t]) for t in alone), name


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("veryfast", ProbeVerdict.SKIP_B_FRAMES),
        ("medium", ProbeVerdict.KEEP_B_FRAMES),
        ("ultrafast", ProbeVerdict.KEEP_B_FRAMES),
    ],
)
def test_probe_tells_streams_whose_p_frames_refer_to_b_frames(
    encoded: dict[str, Path], name: str, verdict: ProbeVerdict
) -> None:
    with av.open(str(encoded[name])) as container:
        video = container.streams.video[0]
        video.codec_context.options = {"skip_loop_filter": "all", "skip_frame": "noref"}
        probe = BFrameProbe(video)
        for packet in container.demux(video):
            probe.feed(packet)
            for frame in packet.decode():
                probe.observe(frame)
            if probe.verdict is not ProbeVerdict.UNDECIDED:
                break
    assert probe.verdict is verdict


@pytest.mark.parametrize(
    ("height", "width", "padding", "factor_x", "factor_y"),
    [(720, 1280, 0, 6, 3), (241, 213, 11, 7, 5), (37, 50, 3, 1, 1), (600, 40, 0, 3, 300)],
)
def test_box_reduce_equals_pillows_reduce(
    height: int, width: int, padding: int, factor_x: int, factor_y: int
) -> None:
    rng = np.random.default_rng(height * width)
    padded = rng.integers(0, 256, (height, width + padding), dtype=np.uint8)
    plane = padded[:, :width]  # rows padded, as a decoder's planes are
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(plane)).reduce((factor_x, factor_y)))
    assert np.array_equal(box_reduce(plane, factor_x, factor_y), expected)
    white = np.full((height, width), 255, dtype=np.uint8)
    assert np.array_equal(
        box_reduce(white, factor_x, factor_y),
        np.asarray(Image.fromarray(white).reduce((factor_x, factor_y))),
    )
