"""Firebreak's hashes and hash lists against the real python-threatexchange, both ways.

Nothing here is mocked: the reference side is `threatexchange` 1.2.17 (with the `vpdq` and `pdqhash`
packages it hashes with) as installed, reading and writing its `local_file` lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image
from threatexchange.exchanges.impl.file_api import (
    FileCollaborationConfig,
    LocalFileSignalExchangeAPI,
)
from threatexchange.extensions.vpdq.vpdq import VPDQSignal
from threatexchange.extensions.vpdq.vpdq_index import VPDQSimilarityInfo
from threatexchange.extensions.vpdq.vpdq_util import VpdqCompactFeature, json_to_vpdq, vpdq_to_json
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_file
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.sha256 import VideoSHA256Signal
from threatexchange.signal_type.signal_base import SignalComparisonResult
from threatexchange.signal_type.signal_base import SignalType as TESignalType

from firebreak.errors import HashListInvalid
from firebreak.exchange import HashRecord, ListFormat, read_csv, read_local_file
from firebreak.match import Verdict
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.signals.video import parse_vpdq
from tests.conftest import CliResult, ffmpeg

TE_TYPES: dict[str, type[TESignalType]] = {
    t.get_name(): t for t in (PdqSignal, VPDQSignal, VideoMD5Signal, VideoSHA256Signal)
}
UNKNOWN_LINE = "tmk_pdqf " + "0123456789abcdef" * 8


# Reference hashes, each computed once per session by python-threatexchange itself.


@cache
def te_vpdq(path: Path) -> str:
    return VPDQSignal.hash_from_file(path)


@cache
def te_pdq(path: Path) -> str:
    return PdqSignal.hash_from_file(path)


def te_line(s_type: type[TESignalType], signal: str) -> str:
    """One line as `LocalFileSignalExchangeAPI.report_opinion` writes it.

    (report_opinion itself cannot be called in 1.2.17: it opens the file with mode "wta", which
    Python refuses with ValueError, so the line is written here exactly as it would format it.)
    """
    return f"{s_type.get_name()} {signal}\n"


def te_fetch(path: Path) -> dict[tuple[str, str], object]:
    """The updates python-threatexchange's file exchange reads from `path`."""
    api = LocalFileSignalExchangeAPI.for_collab(
        FileCollaborationConfig(name="firebreak-interop", filename=str(path))
    )
    updates: dict[tuple[str, str], object] = {}
    for delta in api.fetch_iter(list(TE_TYPES.values()), None):
        updates.update(delta.updates)
    return updates


def vpdq_similarity(result: SignalComparisonResult) -> tuple[float, float]:
    """(query_match_percent, compared_match_percent) of a VPDQSignal.compare_hash result."""
    assert isinstance(result.distance, VPDQSimilarityInfo)
    return result.distance.query_match_percent, result.distance.compared_match_percent


def features(vpdq_json: str) -> list[tuple[str, int, float]]:
    return [(f.pdq_hex, f.quality, round(f.timestamp, 3)) for f in json_to_vpdq(vpdq_json)]


@pytest.fixture(scope="module")
def photo_jpeg(clips: dict[str, Path], media_dir: Path) -> Path:
    out = media_dir / "astronaut-q5.jpg"
    if not out.exists():
        ffmpeg("-i", clips["astronaut.png"], "-q:v", "5", out)
    return out


@pytest.fixture(scope="module")
def reencoded_cockatoo(clips: dict[str, Path], media_dir: Path) -> Path:
    """cockatoo.mp4 re-encoded the way platforms do: 360p, x264 crf 35, no audio."""
    out = media_dir / "cockatoo-360p-crf35.mp4"
    if not out.exists():
        ffmpeg(
            "-i",
            clips["cockatoo.mp4"],
            "-vf",
            "scale=-2:360",
            "-c:v",
            "libx264",
            "-crf",
            "35",
            "-pix_fmt",
            "yuv420p",
            "-an",
            out,
        )
    return out


# 1. PDQ of photos: our CLI against pdqhash and threatexchange.


@pytest.mark.parametrize("photo", ["astronaut.png", "chelsea.png", "jpeg"])
def test_cli_pdq_equals_threatexchange_and_pdqhash(
    photo: str,
    clips: dict[str, Path],
    photo_jpeg: Path,
    cli: Callable[..., CliResult],
) -> None:
    path = photo_jpeg if photo == "jpeg" else clips[photo]
    result = cli("hash", path, "--signal", "pdq")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    ours_hex, ours_quality = lines[0].split(",")

    te_hex, te_quality = pdq_from_file(path)
    bits, ref_quality = pdqhash.compute(np.asarray(Image.open(path).convert("RGB")))
    ref_hex = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()

    assert ours_hex == te_hex == ref_hex
    assert int(ours_quality) == te_quality == ref_quality
    assert PdqSignal.validate_signal_str(ours_hex) == ours_hex
    assert te_pdq(path) == ours_hex  # PdqSignal.hash_from_file, which quality-gates at 50


# 2. Video hashes: ours read and compared by VPDQSignal.


@pytest.mark.parametrize("clip", ["bikes.mp4", "cockatoo.mp4"])
def test_video_hash_is_a_vpdq_signal_that_matches_vpdq(
    clip: str, clips: dict[str, Path], fb: Firebreak
) -> None:
    ours = json.dumps(fb.hash_strings(clips[clip], "video"))
    assert VPDQSignal.validate_signal_str(ours) == ours
    reference = te_vpdq(clips[clip])

    # Same frames, bit for bit: vPDQ's 1 hash/s sampling at full resolution.
    assert features(ours) == features(reference)
    for query, indexed in ((ours, reference), (reference, ours)):
        result = VPDQSignal.compare_hash(query, indexed)
        assert result.match
        assert vpdq_similarity(result) == (100.0, 100.0)


def test_video_hash_does_not_match_an_unrelated_clip(clips: dict[str, Path], fb: Firebreak) -> None:
    ours = json.dumps(fb.hash_strings(clips["bikes.mp4"], "video"))
    for other in ("cockatoo.mp4", "bigbuckbunny.mp4"):
        result = VPDQSignal.compare_hash(ours, te_vpdq(clips[other]))
        assert not result.match, other
        assert vpdq_similarity(result)[0] < 20.0


def test_vpdq_timestamps_as_threatexchange_writes_them_parse(fb: Firebreak) -> None:
    """TE writes timestamps with 3 significant digits (`{:.3}`): 123.5 s becomes "1.24e+02"."""
    hex_ = PdqSignal.get_examples()[0]
    written = vpdq_to_json(
        [VpdqCompactFeature(hex_, 90, t) for t in (0.0, 1.0, 99.5, 123.5, 4000.0)]
    )
    assert "e+02" in written
    frames = parse_vpdq(written)
    assert [round(f.timestamp, 3) for f in frames] == [0.0, 1.0, 99.5, 124.0, 4000.0]
    assert {f.hex for f in frames} == {hex_}
    assert {f.quality for f in frames} == {90}


# 3. Export: a Firebreak bank read by LocalFileSignalExchangeAPI.


def test_exported_te_list_reads_in_threatexchange(
    clips: dict[str, Path], fb: Firebreak, tmp_path: Path
) -> None:
    photo, videos = clips["chelsea.png"], [clips["bikes.mp4"], clips["bigbuckbunny.mp4"]]
    fb.create_bank("known")
    for path in (photo, *videos):
        fb.bank_file("known", path)
    listing = tmp_path / "known.te"
    listing.write_text(fb.export_bank("known", ListFormat.TE))

    lines = listing.read_text().splitlines()
    updates = te_fetch(listing)
    assert len(updates) == len(lines) == 1 + 3 * len(videos)  # pdq; vpdq, md5, sha256 per video

    by_type: dict[str, list[str]] = {}
    for signal_type, signal in updates:
        assert signal_type in TE_TYPES, signal_type
        assert TE_TYPES[signal_type].validate_signal_str(signal) == signal
        by_type.setdefault(signal_type, []).append(signal)

    assert by_type[PdqSignal.get_name()] == [te_pdq(photo)]
    assert sorted(by_type[VideoMD5Signal.get_name()]) == sorted(
        VideoMD5Signal.hash_from_file(v) for v in videos
    )
    assert sorted(by_type[VideoSHA256Signal.get_name()]) == sorted(
        VideoSHA256Signal.hash_from_file(v) for v in videos
    )
    exported_vpdq = by_type[VPDQSignal.get_name()]
    assert len(exported_vpdq) == len(videos)
    for video in videos:
        reference = te_vpdq(video)
        (same,) = [s for s in exported_vpdq if features(s) == features(reference)]
        assert VPDQSignal.compare_hash(same, reference).match


# 4. Import: a list python-threatexchange wrote, banked and matched.


@pytest.fixture
def te_list(clips: dict[str, Path], tmp_path: Path) -> Path:
    """A local_file list of TE's own hashes: a photo's pdq, a video's vpdq, another video's md5
    and a type Firebreak does not know (TMK+PDQF)."""
    listing = tmp_path / "from-te.txt"
    listing.write_text(
        te_line(PdqSignal, te_pdq(clips["chelsea.png"]))
        + te_line(VPDQSignal, te_vpdq(clips["cockatoo.mp4"]))
        + te_line(VideoMD5Signal, VideoMD5Signal.hash_from_file(clips["bikes.mp4"]))
        + UNKNOWN_LINE
        + "\n"
    )
    return listing


def test_threatexchange_list_imports_and_matches(
    te_list: Path,
    clips: dict[str, Path],
    reencoded_cockatoo: Path,
    fb: Firebreak,
) -> None:
    text = te_list.read_text()
    assert len(te_fetch(te_list)) == 4  # TE itself reads every line of it

    fb.create_bank("from-te")
    summary = fb.import_hashes("from-te", text, ListFormat.TE, str(te_list))
    assert (summary.added, summary.skipped, summary.passed_through) == (4, 0, 1)
    items = fb.store.items("from-te")
    assert len(items) == 4
    kinds = {i.media_kind for i in items}
    assert {"image", "video"} <= kinds

    def matched_item(path: Path) -> str:
        result = fb.match_file(path)
        assert result.verdict is Verdict.MATCH, result.to_json()
        (best, *_) = result.matches
        return best.item.name

    video_items = {i.name for i in items if i.media_kind == "video"}
    image_items = {i.name for i in items if i.media_kind == "image"}
    assert matched_item(reencoded_cockatoo) in video_items
    assert matched_item(clips["chelsea.png"]) in image_items
    # The md5-only item matches the exact file, and nothing else.
    bikes = fb.match_file(clips["bikes.mp4"])
    assert bikes.verdict is Verdict.MATCH
    assert [m.signals for m in bikes.matches] == [{"md5": {"exact": True}}]
    assert fb.match_file(clips["bigbuckbunny.mp4"]).verdict is Verdict.NO_MATCH

    # Re-exported, the list says what TE wrote: unknown, pdq and md5 lines byte for byte,
    # the vpdq line the same features (timestamps written with three decimals).
    exported = fb.export_bank("from-te", ListFormat.TE)
    exported_lines = exported.splitlines()
    original_lines = text.splitlines()
    assert UNKNOWN_LINE in exported_lines
    for line in original_lines:
        if not line.startswith("vpdq "):
            assert line in exported_lines
    (vpdq_out,) = [line for line in exported_lines if line.startswith("vpdq ")]
    (vpdq_in,) = [line for line in original_lines if line.startswith("vpdq ")]
    assert features(vpdq_out.partition(" ")[2]) == features(vpdq_in.partition(" ")[2])
    assert len(exported_lines) == len(original_lines)
    out_file = te_list.with_name("re-exported.txt")
    out_file.write_text(exported)
    assert {k[0] for k in te_fetch(out_file)} == {k[0] for k in te_fetch(te_list)}


# 5. CSV round trip between two Firebreaks.


def test_csv_round_trip_keeps_records_and_names(
    clips: dict[str, Path], fb: Firebreak, tmp_path: Path
) -> None:
    fb.create_bank("src")
    for name in ("astronaut.png", "bikes.mp4", "realshort.mp4"):
        fb.bank_file("src", clips[name])
    first = fb.export_bank("src", ListFormat.CSV)

    other = Firebreak(Settings(home=tmp_path / "other-home"))
    try:
        other.create_bank("dst")
        summary = other.import_hashes("dst", first, ListFormat.CSV, "src.csv")
        assert (summary.added, summary.skipped, summary.passed_through) == (3, 0, 0)
        second = other.export_bank("dst", ListFormat.CSV)
        names = sorted(i.name for i in other.store.items("dst"))
        # The copy is matchable too: the photo through its pdq, the video frame by frame.
        assert other.match_file(clips["astronaut.png"]).verdict is Verdict.MATCH
        assert other.match_file(clips["bikes.mp4"]).verdict is Verdict.MATCH
    finally:
        other.close()

    def records(text: str) -> list[HashRecord]:
        return sorted(read_csv(text, "csv"), key=lambda r: (r.item or "", r.signal_type, r.value))

    assert records(second) == records(first)
    assert names == ["astronaut.png", "bikes.mp4", "realshort.mp4"]
    assert {r.signal_type for r in records(first)} == {"pdq", "vpdq", "video_md5", "video_sha256"}


# 6. Re-import is a no-op; a bad line changes nothing.


def test_reimport_is_a_no_op(te_list: Path, fb: Firebreak) -> None:
    text = te_list.read_text()
    fb.create_bank("from-te")
    fb.import_hashes("from-te", text, ListFormat.TE, str(te_list))
    before = fb.export_bank("from-te", ListFormat.TE)
    summary = fb.import_hashes("from-te", text, ListFormat.TE, str(te_list))
    assert (summary.added, summary.skipped, summary.passed_through) == (0, 4, 0)
    assert fb.export_bank("from-te", ListFormat.TE) == before
    assert len(fb.store.items("from-te")) == 4


@pytest.mark.parametrize("bad", ["pdq nothex", "vpdq not-json", "video_md5 xyz"])
def test_invalid_line_is_refused_and_changes_nothing(
    bad: str, te_list: Path, clips: dict[str, Path], fb: Firebreak
) -> None:
    fb.create_bank("from-te")
    fb.bank_file("from-te", clips["realshort.mp4"])
    before = fb.export_bank("from-te", ListFormat.CSV)
    text = te_list.read_text() + bad + "\n"
    with pytest.raises(HashListInvalid) as raised:
        fb.import_hashes("from-te", text, ListFormat.TE, "bad.txt")
    assert raised.value.source == "bad.txt"
    assert raised.value.line == len(text.splitlines())
    assert fb.export_bank("from-te", ListFormat.CSV) == before
    assert [i.name for i in fb.store.items("from-te")] == ["realshort.mp4"]


def test_records_remember_their_line(fb: Firebreak) -> None:
    te_text = "# written by hand\n\n" + f"pdq {PdqSignal.get_examples()[0]}\n" + "pdq nothex\n"
    assert [r.line for r in read_local_file(te_text, "hand.txt")] == [3, 4]
    csv_text = "item,signal_type,signal\n\na,pdq,x\nb,video_md5,y\n"
    assert [r.line for r in read_csv(csv_text, "hand.csv")] == [3, 4]


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        (ListFormat.TE, "# written by hand\n\npdq {ok}\npdq nothex\n"),
        (ListFormat.CSV, "item,signal_type,signal\n\na,pdq,{ok}\nb,pdq,nothex\n"),
    ],
    ids=["te", "csv"],
)
def test_invalid_line_number_counts_comments_and_blank_lines(
    fmt: ListFormat, text: str, fb: Firebreak
) -> None:
    """The error names the line of the file, as an editor numbers it."""
    fb.create_bank("b")
    with pytest.raises(HashListInvalid) as raised:
        fb.import_hashes("b", text.format(ok=PdqSignal.get_examples()[0]), fmt, "hand")
    assert raised.value.line == 4
