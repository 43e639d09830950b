"""Hostile and broken media is refused cleanly: a MediaRejected whose reason says what is wrong,
within seconds, one `firebreak: <file>: <reason>` line from the CLI, and banks and index untouched.

Every bad file is real media broken on purpose: real clips cut, overwritten or re-tagged, real
encodes from ffmpeg that claim too much, and a PNG whose header promises 900 million pixels.
"""

from __future__ import annotations

import random
import re
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from firebreak.errors import MediaRejected
from firebreak.media import probe_media
from firebreak.service import Firebreak
from firebreak.settings import Settings
from tests.conftest import CliResult, ffmpeg

BANK = "known"
GOOD = "realshort.mp4"  # a real 1.2 s clip: banks two frame hashes in a few milliseconds
REFUSAL_SECONDS = 10.0  # "within a few seconds", with room for a loaded CI machine


# Making bad files


def _half(src: Path, dest: Path) -> None:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 2])


def _truncated_faststart_mp4(dest: Path, clips: dict[str, Path]) -> None:
    """The moov atom is up front, so the file opens and claims 10 s, but only 5 s of it is left."""
    whole = dest.with_name("faststart-whole.mp4")
    ffmpeg("-i", clips["bikes.mp4"], "-c", "copy", "-movflags", "+faststart", whole)
    _half(whole, dest)


def _truncated_moov_at_end_mp4(dest: Path, clips: dict[str, Path]) -> None:
    """An ordinary upload cut short: the moov atom at the end is gone."""
    whole = dest.with_name("moov-at-end-whole.mp4")
    ffmpeg("-i", clips["bikes.mp4"], "-c", "copy", whole)
    _half(whole, dest)


def _corrupt_header_mp4(dest: Path, clips: dict[str, Path]) -> None:
    whole = dest.with_name("corrupt-whole.mp4")
    ffmpeg("-i", clips["bikes.mp4"], "-c", "copy", "-movflags", "+faststart", whole)
    data = bytearray(whole.read_bytes())
    data[:4096] = random.Random(4096).randbytes(4096)
    dest.write_bytes(bytes(data))


def _empty_file(dest: Path, clips: dict[str, Path]) -> None:
    dest.write_bytes(b"")


def _text_named_mp4(dest: Path, clips: dict[str, Path]) -> None:
    dest.write_text("This is a text file, not a video.\n" * 20)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_bomb(dest: Path, clips: dict[str, Path]) -> None:
    """A valid 30000×30000 8-bit greyscale PNG of zeros: ~0.9 MB that inflates to 900 MB."""
    width = height = 30_000
    deflate = zlib.compressobj(9)
    rows = bytes(width + 1) * 100  # filter byte 0 and a row of zero pixels, a hundred at a time
    idat = b"".join(deflate.compress(rows) for _ in range(height // 100)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    dest.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _truncated_jpeg(dest: Path, clips: dict[str, Path]) -> None:
    whole = dest.with_name("chelsea-whole.jpg")
    ffmpeg("-i", clips["chelsea.png"], "-q:v", "3", whole)
    _half(whole, dest)


def _ten_hour_video(dest: Path, clips: dict[str, Path]) -> None:
    """A real, tiny H.264 file that really plays for ten hours (36000 frames, 0.5 MB)."""
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:s=32x32:r=1", "-t", "36000",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", dest,
    )  # fmt: skip


def _unknown_codec_avi(dest: Path, clips: dict[str, Path]) -> None:
    """A real MJPEG AVI whose fourcc (in the stream header and the bitmap header) is made up."""
    whole = dest.with_name("mjpeg.avi")
    ffmpeg("-i", clips[GOOD], "-an", "-c:v", "mjpeg", whole)
    data = whole.read_bytes()
    movi = data.index(b"movi")
    header = data[:movi]
    assert header.count(b"MJPG") == 2
    dest.write_bytes(header.replace(b"MJPG", b"QQQQ") + data[movi:])
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name", "-of", "default=nw=1:nk=1", str(dest)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "unknown", probe.stdout


def _audio_only(dest: Path, clips: dict[str, Path]) -> None:
    ffmpeg("-i", clips["bigbuckbunny.mp4"], "-vn", "-c:a", "copy", dest)


@dataclass(frozen=True)
class Case:
    id: str
    filename: str
    make: Callable[[Path, dict[str, Path]], None]
    reason: str  # a regular expression the refusal's reason must contain


CASES = [
    Case("truncated-faststart-mp4", "truncated-faststart.mp4", _truncated_faststart_mp4,
         r"truncated"),
    Case("truncated-moov-at-end-mp4", "truncated-moov-at-end.mp4", _truncated_moov_at_end_mp4,
         r"not a readable image or video"),
    Case("corrupt-mp4-header", "corrupt-header.mp4", _corrupt_header_mp4,
         r"not a readable image or video"),
    Case("zero-byte-file", "zero-bytes.mp4", _empty_file, r"empty file"),
    Case("text-file-named-mp4", "not-a-video.mp4", _text_named_mp4,
         r"not a readable image or video"),
    Case("png-decompression-bomb", "bomb-30000x30000.png", _png_bomb,
         r"decompression limit|exceeds the limit"),
    Case("truncated-jpeg", "truncated.jpg", _truncated_jpeg, r"truncated"),
    Case("ten-hour-video", "ten-hours.mp4", _ten_hour_video, r"declared duration 36000 s exceeds"),
    Case("unknown-video-codec", "unknown-codec.avi", _unknown_codec_avi,
         r"unsupported video codec"),
    Case("audio-only", "audio-only.m4a", _audio_only, r"no video stream"),
]  # fmt: skip


@pytest.fixture(scope="session")
def bad_files(media_dir: Path, clips: dict[str, Path]) -> dict[str, Path]:
    """Every bad file by case id (made once per session, each in its own folder)."""
    made = {}
    for case in CASES:
        folder = media_dir / "bad-input" / case.id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / case.filename
        if not path.exists():
            case.make(path, clips)
        made[case.id] = path
    return made


@pytest.fixture
def good_file(clips: dict[str, Path]) -> Path:
    return clips[GOOD]


# Helpers


def _snapshot(fb: Firebreak) -> tuple[list[object], int, list[tuple[str, int]]]:
    """What a refusal must leave alone: the bank's items, the index size, the bank list."""
    return (
        list(fb.store.items(BANK)),
        len(fb.index),
        [(b.name, b.item_count) for b in fb.list_banks()],
    )


def _refusal_lines(result: CliResult) -> list[str]:
    return result.stderr.splitlines()


def _assert_refusal_line(line: str, path: Path, case: Case) -> None:
    prefix = f"firebreak: {path}: "
    assert line.startswith(prefix), line
    assert re.search(case.reason, line[len(prefix) :]), line


def _cli_home_service(cli: Callable[..., CliResult]) -> closing[Firebreak]:
    """A Firebreak on the CLI's own home, to set up and inspect what the CLI changed."""
    return closing(Firebreak(Settings(home=cli.home)))  # type: ignore[attr-defined]


# The service


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_file_is_refused_with_its_reason_and_bank_and_index_unchanged(
    case: Case, bad_files: dict[str, Path], good_file: Path, fb: Firebreak
) -> None:
    bad = bad_files[case.id]
    fb.create_bank(BANK)
    fb.bank_file(BANK, good_file)
    before = _snapshot(fb)
    assert before[1] > 0, "the good clip should have put frame hashes in the index"

    started = time.monotonic()
    with pytest.raises(MediaRejected) as refused:
        fb.bank_file(BANK, bad)
    elapsed = time.monotonic() - started

    assert refused.value.path == str(bad)
    assert re.search(case.reason, refused.value.reason), refused.value.reason
    assert elapsed < REFUSAL_SECONDS
    assert _snapshot(fb) == before


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_file_is_refused_as_a_query_too(
    case: Case, bad_files: dict[str, Path], good_file: Path, fb: Firebreak
) -> None:
    bad = bad_files[case.id]
    fb.create_bank(BANK)
    fb.bank_file(BANK, good_file)
    started = time.monotonic()
    with pytest.raises(MediaRejected) as refused:
        fb.match_file(bad)
    assert time.monotonic() - started < REFUSAL_SECONDS
    assert re.search(case.reason, refused.value.reason), refused.value.reason


def test_limits_come_from_settings(bad_files: dict[str, Path], tmp_path: Path) -> None:
    """The ten-hour video passes the probe under a twelve-hour limit, and an image over a
    lowered pixel limit is refused by Firebreak's own check before any pixel is decoded."""
    ten_hours = bad_files["ten-hour-video"]
    generous = Settings(home=tmp_path / "a", max_duration_s=12 * 3600.0)
    assert probe_media(ten_hours, generous).duration_s == pytest.approx(36_000, abs=1)

    strict = Settings(home=tmp_path / "b", max_image_pixels=1000)
    with pytest.raises(MediaRejected, match="exceeds the limit of 1000 pixels"):
        probe_media(bad_files["truncated-jpeg"], strict)


# The command line


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli_bank_add_refuses_bad_file_with_one_line_and_nonzero_exit(
    case: Case, bad_files: dict[str, Path], cli: Callable[..., CliResult]
) -> None:
    bad = bad_files[case.id]
    with _cli_home_service(cli) as fb:
        fb.create_bank(BANK)

    result = cli("bank", "add", BANK, bad)

    assert result.code != 0
    lines = _refusal_lines(result)
    assert len(lines) == 1, result.stderr
    _assert_refusal_line(lines[0], bad, case)
    assert "added" not in result.stdout
    with _cli_home_service(cli) as fb:
        assert fb.store.items(BANK) == []
        assert len(fb.index) == 0


def test_cli_bank_add_banks_the_good_files_and_reports_each_bad_one(
    bad_files: dict[str, Path], good_file: Path, cli: Callable[..., CliResult]
) -> None:
    with _cli_home_service(cli) as fb:
        fb.create_bank(BANK)
    bad = [bad_files[case.id] for case in CASES]

    result = cli("bank", "add", BANK, bad[0], good_file, *bad[1:])

    assert result.code != 0
    assert result.stdout.splitlines() == [f"added: {good_file.name}"]
    lines = _refusal_lines(result)
    assert len(lines) == len(CASES), result.stderr
    for line, path, case in zip(lines, bad, CASES, strict=True):
        _assert_refusal_line(line, path, case)
    with _cli_home_service(cli) as fb:
        assert [item.name for item in fb.store.items(BANK)] == [good_file.name]
        banked_frames = len(fb.index)
    alone_home = cli.home.parent / "good-only"  # type: ignore[attr-defined]
    with closing(Firebreak(Settings(home=alone_home))) as alone:
        alone.create_bank(BANK)
        alone.bank_file(BANK, good_file)
        assert banked_frames == len(alone.index)


def test_cli_match_refuses_each_bad_file_and_prints_no_result_for_it(
    bad_files: dict[str, Path], cli: Callable[..., CliResult]
) -> None:
    bad = [bad_files[case.id] for case in CASES]

    result = cli("match", *bad, "--json")

    assert result.code != 0
    assert result.stdout == ""
    lines = _refusal_lines(result)
    assert len(lines) == len(CASES), result.stderr
    for line, path, case in zip(lines, bad, CASES, strict=True):
        _assert_refusal_line(line, path, case)


def test_cli_bank_add_stderr_is_exactly_the_refusal_line(
    bad_files: dict[str, Path], cli: Callable[..., CliResult]
) -> None:
    bad = bad_files["zero-byte-file"]
    with _cli_home_service(cli) as fb:
        fb.create_bank(BANK)
    result = cli("bank", "add", BANK, bad)
    assert result.code != 0
    assert result.stderr == f"firebreak: {bad}: empty file\n"


def test_flat_picture_is_not_banked_because_it_would_match_every_flat_picture(
    fb: Firebreak, tmp_path: Path
) -> None:
    flat = tmp_path / "blank.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=white:size=320x240", "-frames:v", "1", flat)
    fb.create_bank("known")

    with pytest.raises(MediaRejected, match="too flat"):
        fb.bank_file("known", flat)

    assert fb.store.items("known") == []
    assert fb.hash_strings(flat, "pdq")  # it can still be hashed, only not banked
