"""Banking and matching real footage: copies match with the right segments, unrelated clips don't."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from firebreak.bench.variants import (
    MANIPULATIONS,
    concat_clips,
    ken_burns_clip,
    lavfi_clip,
    make_excerpt,
    make_variant,
)
from firebreak.match import Verdict
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.signals.views import ContentBox, ScreenBox, detect_layout_regions
from tests.conftest import ffmpeg

BANK = "known"


@pytest.fixture(scope="session")
def long_real(clips: dict[str, Path], media_dir: Path) -> Path:
    """29 s of real footage: bikes, then cockatoo, then Big Buck Bunny."""
    path = media_dir / "long_real.mp4"
    if not path.exists():
        parts = [clips["bikes.mp4"], clips["cockatoo.mp4"], clips["bigbuckbunny.mp4"]]
        concat_clips(parts, path)
    return path


@pytest.fixture(scope="session")
def banked_home(
    clips: dict[str, Path], long_real: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A home with cockatoo.mp4, astronaut.png and long_real.mp4 banked, made once."""
    home = tmp_path_factory.mktemp("banked") / "home"
    fb = Firebreak(Settings(home=home))
    fb.create_bank(BANK)
    for path in (clips["cockatoo.mp4"], clips["astronaut.png"], long_real):
        fb.bank_file(BANK, path)
    fb.close()
    return home


@pytest.fixture
def banked(banked_home: Path, tmp_path: Path) -> Iterator[Firebreak]:
    """A Firebreak on a private copy of the banked home."""
    home = tmp_path / "banked-home"
    shutil.copytree(banked_home, home)
    fb = Firebreak(Settings(home=home))
    yield fb
    fb.close()


def _best(fb: Firebreak, path: Path) -> tuple[Verdict, str | None, list[float], list[float]]:
    result = fb.match_file(path).to_json()
    matches = result["matches"]
    assert isinstance(matches, list)
    if not matches:
        return Verdict(result["verdict"]), None, [], []
    top = matches[0]
    return Verdict(result["verdict"]), top["item"], top["query_segment"], top["item_segment"]


def _match_for(fb: Firebreak, path: Path, item: str) -> tuple[Verdict, list[float], list[float]]:
    """The verdict and the segments reported for one expected item (other items may match too)."""
    result = fb.match_file(path).to_json()
    matches = result["matches"]
    assert isinstance(matches, list)
    found = [m for m in matches if m["item"] == item]
    assert found, f"{item} not among {[m['item'] for m in matches]}"
    return Verdict(result["verdict"]), found[0]["query_segment"], found[0]["item_segment"]


def _close(segment: list[float], expected: tuple[float, float], tolerance: float = 1.0) -> bool:
    return abs(segment[0] - expected[0]) <= tolerance and abs(segment[1] - expected[1]) <= tolerance


def test_reencoded_360p_crf35_copy_matches_with_the_whole_segment(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path
) -> None:
    copy = make_variant(
        clips["cockatoo.mp4"], MANIPULATIONS["reencode_360p_crf35"], media_dir / "c360.mp4"
    )

    # cockatoo.mp4 is also inside long_real.mp4, so both items match.
    verdict, query_segment, item_segment = _match_for(banked, copy, "cockatoo.mp4")

    assert verdict is Verdict.MATCH
    assert _close(query_segment, (0.0, 14.0))
    assert _close(item_segment, (0.0, 14.0))


def test_ten_second_excerpt_of_a_banked_video_is_found_with_its_segment(
    banked: Firebreak, long_real: Path, media_dir: Path
) -> None:
    excerpt = make_excerpt(long_real, 3.4, 10.0, media_dir / "excerpt.mp4")

    verdict, query_segment, item_segment = _match_for(banked, excerpt, "long_real.mp4")

    assert verdict is Verdict.MATCH
    assert _close(query_segment, (0.0, 10.0))
    assert _close(item_segment, (3.4, 13.4))


def test_banked_video_inside_a_longer_one_is_found_where_it_sits(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path
) -> None:
    before = lavfi_clip("testsrc2", 6, media_dir / "before.mp4")
    after = lavfi_clip("mandelbrot", 6, media_dir / "after.mp4")
    embedded = concat_clips([before, clips["cockatoo.mp4"], after], media_dir / "embedded.mp4")

    verdict, query_segment, item_segment = _match_for(banked, embedded, "cockatoo.mp4")

    assert verdict is Verdict.MATCH
    assert _close(query_segment, (6.0, 20.0))
    assert _close(item_segment, (0.0, 14.0))


@pytest.mark.parametrize("clip", ["carphone_pristine.mp4", "realshort.mp4", "chelsea.png"])
def test_unrelated_real_media_matches_nothing(
    banked: Firebreak, clips: dict[str, Path], clip: str
) -> None:
    result = banked.match_file(clips[clip])

    assert result.verdict is Verdict.NO_MATCH
    assert result.matches == ()


def test_unrelated_synthetic_video_matches_nothing(banked: Firebreak, media_dir: Path) -> None:
    clip = lavfi_clip("life", 8, media_dir / "life.mp4")

    assert banked.match_file(clip).verdict is Verdict.NO_MATCH


def test_recompressed_photo_matches_its_banked_original(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path
) -> None:
    jpeg = media_dir / "astronaut-q.jpg"
    ffmpeg("-i", clips["astronaut.png"], "-vf", "scale=300:-1", "-q:v", "12", jpeg)

    verdict, item, _, _ = _best(banked, jpeg)

    assert verdict is Verdict.MATCH
    assert item == "astronaut.png"


def test_identical_file_matches_on_its_digests_too(
    banked: Firebreak, clips: dict[str, Path]
) -> None:
    result = banked.match_file(clips["cockatoo.mp4"])

    signals = result.matches[0].signals
    assert {"md5", "sha256", "video"} <= signals.keys()
    assert result.matches[0].score == 1.0


def test_removed_item_no_longer_matches(banked: Firebreak, clips: dict[str, Path]) -> None:
    banked.remove_item(BANK, "cockatoo.mp4")

    matched = {m.item.name for m in banked.match_file(clips["cockatoo.mp4"]).matches}
    assert "cockatoo.mp4" not in matched  # (its footage inside long_real.mp4 still matches)
    assert [i.name for i in banked.store.items(BANK)] == ["astronaut.png", "long_real.mp4"]


def test_banking_the_same_file_twice_is_a_no_op(fb: Firebreak, clips: dict[str, Path]) -> None:
    fb.create_bank(BANK)
    first = fb.bank_file(BANK, clips["bikes.mp4"])
    size = len(fb.index)

    again = fb.bank_file(BANK, clips["bikes.mp4"])

    assert first.created and not again.created
    assert again.item.id == first.item.id
    assert len(fb.index) == size
    assert len(fb.store.items(BANK)) == 1


def test_index_survives_a_restart_and_is_rebuilt_when_its_file_is_lost(
    settings: Settings, clips: dict[str, Path]
) -> None:
    first = Firebreak(settings)
    first.create_bank(BANK)
    first.bank_file(BANK, clips["bikes.mp4"])
    indexed = len(first.index)
    first.close()

    reopened = Firebreak(settings)
    assert len(reopened.index) == indexed
    assert reopened.match_file(clips["bikes.mp4"]).verdict is Verdict.MATCH
    reopened.close()

    for path in settings.index_dir.iterdir():
        path.unlink()
    rebuilt = Firebreak(settings)
    assert len(rebuilt.index) == indexed
    assert rebuilt.match_file(clips["bikes.mp4"]).verdict is Verdict.MATCH
    rebuilt.close()


def test_two_processes_banking_into_one_home_both_see_every_item(
    settings: Settings, clips: dict[str, Path]
) -> None:
    a, b = Firebreak(settings), Firebreak(settings)
    a.create_bank(BANK)
    assert len(a.index) == len(b.index) == 0

    a.bank_file(BANK, clips["bikes.mp4"])
    b.bank_file(BANK, clips["bigbuckbunny.mp4"])

    for fb in (a, b):
        assert fb.match_file(clips["bikes.mp4"]).verdict is Verdict.MATCH
        assert fb.match_file(clips["bigbuckbunny.mp4"]).verdict is Verdict.MATCH
    assert len(a.index) == len(b.index)
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("edit", "video_filter"),
    [
        ("mirrored", "hflip"),
        ("letterboxed", "scale=iw*0.8:-2,pad=iw/0.8:ih/0.8:(ow-iw)/2:(oh-ih)/2"),
        ("pillarboxed", "scale=-2:ih*0.75,pad=iw*1.6:ih:(ow-iw)/2:0"),
        ("meme-captioned", "pad=iw:ih*1.2:0:ih*0.2:color=white"),
        ("mirrored-and-letterboxed", "hflip,scale=iw*0.8:-2,pad=iw/0.8:ih/0.8:(ow-iw)/2:(oh-ih)/2"),
        ("twice-as-fast", "setpts=0.5*PTS"),
        ("half-speed", "setpts=2.0*PTS"),
        ("at-15-fps", "fps=15"),
    ],
)
def test_edited_copy_matches_its_original(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path, edit: str, video_filter: str
) -> None:
    copy = media_dir / f"bbb-{edit}.mp4"
    if not copy.exists():
        ffmpeg("-i", clips["bigbuckbunny.mp4"], "-vf", video_filter, "-crf", "28", copy)
    banked.bank_file(BANK, clips["bigbuckbunny.mp4"])
    verdict, _, item_segment = _match_for(banked, copy, "bigbuckbunny.mp4")

    assert verdict is Verdict.MATCH
    assert _close(item_segment, (0.0, 5.3))


@pytest.mark.parametrize("clip", ["carphone_pristine.mp4", "realshort.mp4"])
def test_mirrored_unrelated_clip_matches_nothing(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path, clip: str
) -> None:
    copy = media_dir / f"mirrored-{clip}"
    if not copy.exists():
        ffmpeg("-i", clips[clip], "-vf", "hflip,pad=iw:ih*1.3:0:ih*0.15", copy)

    assert banked.match_file(copy).verdict is Verdict.NO_MATCH


@pytest.mark.parametrize(
    ("edit", "video_filter"),
    [
        ("cropped-6pc", "crop=iw*0.94:ih*0.94"),
        ("cropped-off-centre", "crop=iw*0.9:ih*0.9:0:0"),
        ("cropped-and-mirrored", "crop=iw*0.92:ih*0.92,hflip"),
        ("rotated-3deg", "rotate=3*PI/180"),
    ],
)
def test_cropped_or_rotated_copy_matches_on_thumbnails(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path, edit: str, video_filter: str
) -> None:
    copy = media_dir / f"cockatoo-{edit}.mp4"
    if not copy.exists():
        ffmpeg("-i", clips["cockatoo.mp4"], "-vf", video_filter, "-crf", "26", copy)

    verdict, _, item_segment = _match_for(banked, copy, "cockatoo.mp4")

    assert verdict is Verdict.MATCH
    assert _close(item_segment, (0.0, 14.0))


def test_copy_with_destroyed_pictures_is_found_by_its_soundtrack(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path
) -> None:
    banked.bank_file(BANK, clips["bigbuckbunny.mp4"])
    copy = media_dir / "bbb-other-pictures.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "life=size=320x240:rate=25", "-i", clips["bigbuckbunny.mp4"]),
        *("-map", "0:v", "-map", "1:a", "-shortest", "-c:a", "aac", "-b:a", "64k", copy),
    )

    result = banked.match_file(copy)

    assert result.verdict is Verdict.MATCH
    top = result.matches[0]
    assert top.item.name == "bigbuckbunny.mp4"
    assert set(top.signals) == {"audio"}
    assert top.item_segment is not None and top.item_segment.start < 1.0


@pytest.mark.parametrize(
    ("layout", "graph"),
    [
        (
            "side-by-side",
            "[0:v]scale=-2:360,setsar=1,fps=25,format=yuv420p[a];"
            "[1:v]scale=-2:360,setsar=1,fps=25,format=yuv420p,loop=-1:size=100[b];"
            "[a][b]hstack=inputs=2:shortest=1[v]",
        ),
        (
            "stacked",
            "[0:v]scale=640:-2,setsar=1,fps=25,format=yuv420p[a];"
            "[1:v]scale=640:-2,setsar=1,fps=25,format=yuv420p,loop=-1:size=100[b];"
            "[b][a]vstack=inputs=2:shortest=1[v]",
        ),
    ],
)
def test_copy_in_a_reaction_layout_matches_through_its_panel(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path, layout: str, graph: str
) -> None:
    copy = media_dir / f"cockatoo-{layout}.mp4"
    if not copy.exists():
        ffmpeg(
            *("-i", clips["cockatoo.mp4"], "-i", clips["carphone_pristine.mp4"]),
            *("-filter_complex", graph, "-map", "[v]", copy),
        )

    verdict, _, item_segment = _match_for(banked, copy, "cockatoo.mp4")

    assert verdict is Verdict.MATCH
    assert _close(item_segment, (0.0, 14.0))


_INSET = "[0:v]scale=208:-2,setsar=1[fg];[1:v]setsar=1[bg];[bg][fg]overlay=24:H-h-24:shortest=1[v]"


@pytest.fixture(scope="session")
def panning_still(clips: dict[str, Path], media_dir: Path) -> Path:
    """A slow zoom and pan over a photo: busy footage around an inset."""
    path = media_dir / "chelsea-pan.mp4"
    if not path.exists():
        ken_burns_clip(clips["chelsea.png"], 15, path)
    return path


@pytest.mark.parametrize("background", ["panning", "still"])
def test_copy_shown_as_a_small_inset_over_other_footage_matches_through_the_inset(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path, panning_still: Path, background: str
) -> None:
    copy = media_dir / f"cockatoo-inset-{background}.mp4"
    if not copy.exists():
        behind = ["-i", panning_still] if background == "panning" else ["-loop", "1"]
        behind += [] if background == "panning" else ["-i", clips["chelsea.png"]]
        graph = _INSET.replace("[1:v]", "[1:v]scale=640:360,")
        ffmpeg("-i", clips["cockatoo.mp4"], *behind, "-filter_complex", graph, "-map", "[v]", copy)

    verdict, _, item_segment = _match_for(banked, copy, "cockatoo.mp4")

    assert verdict is Verdict.MATCH
    assert _close(item_segment, (0.0, 14.0))


def test_unrelated_clip_in_an_inset_matches_nothing(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path, panning_still: Path
) -> None:
    copy = media_dir / "carphone-inset.mp4"
    if not copy.exists():
        ffmpeg(
            *("-i", clips["carphone_pristine.mp4"], "-i", panning_still),
            *("-filter_complex", _INSET, "-map", "[v]", copy),
        )

    assert banked.match_file(copy).verdict is Verdict.NO_MATCH


_FILMED_SCREEN = (
    "scale=640:-2,pad=iw+32:ih+32:16:16:color=0x202020,"
    "perspective=x0=W*0.03:y0=H*0.08:x1=W*0.9:y1=H*0.03:x2=W*0.07:y2=H*0.96:x3=W*0.96:y3=H*0.88"
    ":sense=destination,vignette,drawbox=x=iw*0.1:y=ih*0.5:w=iw*0.2:h=ih*0.3:color=white@0.15:t=fill,"
    "gblur=sigma=1,noise=alls=10:allf=t"
)


@pytest.mark.parametrize(
    ("clip", "expected"), [("cockatoo.mp4", Verdict.MATCH), ("carphone_pristine.mp4", None)]
)
def test_filmed_screen_is_straightened_before_matching(
    banked: Firebreak, clips: dict[str, Path], media_dir: Path, clip: str, expected: Verdict | None
) -> None:
    copy = media_dir / f"filmed-{clip}"
    if not copy.exists():
        ffmpeg("-i", clips[clip], "-vf", _FILMED_SCREEN, "-crf", "26", copy)

    if expected is None:
        assert banked.match_file(copy).verdict is Verdict.NO_MATCH
        return
    verdict, _, item_segment = _match_for(banked, copy, clip)
    assert verdict is expected
    assert _close(item_segment, (0.0, 14.0))


def _textured(
    rng: np.random.Generator, frames: int, height: int, width: int
) -> npt.NDArray[np.uint8]:
    """Frames of a smooth random picture drifting right by a pixel a frame."""
    coarse = rng.integers(0, 255, (height // 6, (width + frames) // 6), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((width + frames, height), Image.Resampling.BICUBIC)
    wide = np.asarray(smooth)
    return np.stack([wide[:, t : t + width] for t in range(frames)])


def test_layout_regions_hold_an_inset_and_a_filmed_screen_as_pictures_of_their_own() -> None:
    rng = np.random.default_rng(7)
    frames, height, width = 24, 120, 160
    # A still inset over panning footage.
    inset_frames = _textured(rng, frames, height, width)
    inset_frames[:, 10:50, 90:150] = _textured(rng, 1, 40, 60)[0]
    # A lit quadrilateral (a screen seen at an angle) on a dark surround.
    screen = np.full((frames, height, width), 12, dtype=np.uint8)
    rows, columns = np.mgrid[0:height, 0:width]
    inside = (columns > 12 + 0.1 * rows) & (columns < 150 - 0.05 * rows)
    inside &= (rows > 14 - 0.04 * columns) & (rows < 108 + 0.03 * columns)
    picture = _textured(rng, frames, height, width)
    screen[:, inside] = picture[:, inside]

    found = detect_layout_regions(list(inset_frames))
    quads = [r for r in detect_layout_regions(list(screen)) if isinstance(r, ScreenBox)]

    expected = ContentBox(10 / height, 50 / height, 90 / width, 150 / width)
    assert any(r.close_to(expected, tolerance=0.02) for r in found)
    assert len(quads) == 1
    sides = {
        "left": lambda x, y: x - 12 - 0.1 * y,
        "right": lambda x, y: x - 150 + 0.05 * y,
        "top": lambda x, y: y - 14 + 0.04 * x,
        "bottom": lambda x, y: y - 108 - 0.03 * x,
    }
    corner_sides = [("left", "top"), ("right", "top"), ("right", "bottom"), ("left", "bottom")]
    for (x, y), on in zip(quads[0].corners, corner_sides, strict=True):
        for side in on:
            assert abs(sides[side](x * width, y * height)) < 2, (side, x * width, y * height)
    assert quads[0].crop(screen[0]).shape == (64, 64)
