"""The main job on the embedded default: bank real clips, make manipulated copies of them and of
unrelated clips with ffmpeg, match every copy, and say whether each result was the right one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from firebreak.bench.variants import (
    MANIPULATIONS,
    Manipulation,
    concat_clips,
    lavfi_clip,
    make_excerpt,
    make_variant,
    run_ffmpeg,
)
from firebreak.errors import BankExists
from firebreak.match import Verdict
from firebreak.service import Firebreak, MatchResult

DEMO_BANK = "demo-known-content"
DEMO_EDITS = (
    MANIPULATIONS["reencode_360p_crf35"],
    Manipulation("mirrored", "hflip"),
    MANIPULATIONS["letterbox"],
    Manipulation("cropped_8pc_and_mirrored", "crop=iw*0.92:ih*0.92,hflip"),
    Manipulation("twice_as_fast", "setpts=0.5*PTS"),
    Manipulation("meme_caption", "pad=iw:ih*1.2:0:ih*0.2:color=white"),
)
BANKED = ("bikes.mp4", "cockatoo.mp4", "bigbuckbunny.mp4", "astronaut.png")


@dataclass(frozen=True)
class DemoCase:
    """A query made for the demo and the banked item it should match (None: nothing)."""

    name: str
    how: str
    path: Path
    expected_item: str | None


@dataclass(frozen=True)
class DemoRow:
    case: DemoCase
    result: MatchResult

    @property
    def correct(self) -> bool:
        best = self.result.matches[0].item.name if self.result.matches else None
        if self.case.expected_item is None:
            return self.result.verdict is Verdict.NO_MATCH
        return self.result.verdict is Verdict.MATCH and best == self.case.expected_item


def build_demo_cases(clips: dict[str, Path], workdir: Path) -> list[DemoCase]:
    """Make the query files (cached in `workdir`): copies of banked clips and unrelated clips."""
    workdir.mkdir(parents=True, exist_ok=True)
    cases: list[DemoCase] = []

    def case(name: str, how: str, expected: str | None, make: Callable[[Path], Path]) -> None:
        path = workdir / name
        if not path.exists():
            make(path)
        cases.append(DemoCase(name, how, path, expected))

    for source in ("bikes.mp4", "cockatoo.mp4", "bigbuckbunny.mp4"):
        stem = source.removesuffix(".mp4")
        for edit in DEMO_EDITS:
            make = partial(make_variant, clips[source], edit)
            case(f"{stem}-{edit.name}.mp4", edit.name.replace("_", " "), source, make)
    case(
        "bigbuckbunny-soundtrack-over-other-pictures.mp4",
        "pictures replaced",
        "bigbuckbunny.mp4",
        lambda p: replace_pictures(clips["bigbuckbunny.mp4"], p),
    )
    case(
        "cockatoo-excerpt-4.3s-to-10.3s.mp4",
        "6 s excerpt",
        "cockatoo.mp4",
        lambda p: make_excerpt(clips["cockatoo.mp4"], 4.3, 6.0, p),
    )
    case(
        "compilation-with-cockatoo.mp4",
        "inside other footage",
        "cockatoo.mp4",
        lambda p: concat_clips(
            [clips["carphone_pristine.mp4"], clips["cockatoo.mp4"], clips["realshort.mp4"]], p
        ),
    )
    case(
        "carphone-reencode_360p_crf35.mp4",
        "unrelated, re-encoded",
        None,
        lambda p: make_variant(clips["carphone_pristine.mp4"], MANIPULATIONS["downscale_240p"], p),
    )
    case("realshort.mp4", "unrelated real clip", None, lambda p: _copy(clips["realshort.mp4"], p))
    case("chelsea.png", "unrelated photo", None, lambda p: _copy(clips["chelsea.png"], p))
    case("testsrc2.mp4", "unrelated synthetic", None, lambda p: lavfi_clip("testsrc2", 8, p))
    case("mandelbrot.mp4", "unrelated synthetic", None, lambda p: lavfi_clip("mandelbrot", 8, p))
    return cases


def bank_demo_clips(fb: Firebreak, clips: dict[str, Path]) -> None:
    with contextlib.suppress(BankExists):
        fb.create_bank(DEMO_BANK)
    for name in BANKED:
        fb.bank_file(DEMO_BANK, clips[name])


def _copy(source: Path, dest: Path) -> Path:
    dest.write_bytes(source.read_bytes())
    return dest


def replace_pictures(source: Path, dest: Path) -> Path:
    """Keep `source`'s soundtrack under unrelated pictures (the copy PDQ cannot see)."""
    run_ffmpeg(
        [
            *("-f", "lavfi", "-i", "life=size=640x360:rate=25", "-i", str(source)),
            *("-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "libx264", "-preset", "veryfast"),
            *("-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(dest)),
        ]
    )
    return dest
