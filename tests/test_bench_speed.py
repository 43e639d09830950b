"""The hashing-speed benchmark measures both paths and ffmpeg on the same file."""

from __future__ import annotations

from pathlib import Path

from firebreak.bench.speed import measure_hashing_speed


def test_speed_benchmark_times_hashing_against_ffmpeg_decode(clips: dict[str, Path]) -> None:
    result = measure_hashing_speed(clips["bigbuckbunny.mp4"], 5.3, repeats=1)

    assert result.ffmpeg_decode_s > 0
    assert result.query_hash_s > 0 and result.bank_hash_s > 0
    assert result.query_ratio == result.query_hash_s / result.ffmpeg_decode_s
    assert result.query_peak_rss_mb > 10 and result.bank_peak_rss_mb > 10
