"""On-screen text: a slogan burned into video frames with ffmpeg's drawtext is read by OCR and
found by the registry's matcher, with its frame time and box."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firebreak.classify.ocr import TextLine
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.text.matcher import AliasMatcher
from firebreak.text.onscreen import ScreenReader
from firebreak.text.scan import TextScanner

from .conftest import ffmpeg
from .test_api import Api
from .test_text_posts import register

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
REGISTRY = (
    "name,aliases,category,source,designated_on\n"
    "Northern Front,We are the Northern Front|NF,violent extremist,platform policy,\n"
)


@pytest.fixture(scope="module")
def captioned_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six seconds of moving test pattern; the slogan is on screen from 2 s to 4 s, at (60, 250)."""
    path = tmp_path_factory.mktemp("onscreen") / "captioned.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=6",
        "-vf",
        f"drawtext=fontfile={FONT}:text='WE ARE THE NORTHERN FRONT':fontsize=30:"
        "fontcolor=white:box=1:boxcolor=black@0.8:boxborderw=8:x=60:y=250:"
        "enable='between(t,2,4)'",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", path,
    )  # fmt: skip
    return path


def test_slogan_burned_into_frames_is_found_with_time_and_box(
    fb: Firebreak, captioned_video: Path
) -> None:
    register(fb, REGISTRY)
    reader = ScreenReader(TextScanner.from_store(fb.store).matcher)
    hits = reader.read_media(captioned_video, fb.settings)
    assert [h.org for h in hits] == ["Northern Front"], hits
    hit = hits[0]
    assert hit.alias == "We are the Northern Front"
    assert 2.0 <= hit.time_s <= 3.0  # first seen in the first frame read after it appears
    x, y, width, height = hit.box
    # The caption's box: drawn at (60, 250), 30 px letters; OCR's box hugs the letters.
    assert abs(x - 68) < 25 and abs(y - 258) < 25, hit.box
    assert 300 < width < 560 and 15 < height < 60, hit.box
    assert hit.line[hit.span[0] : hit.span[1]].replace(" ", "").upper() == "WEARETHENORTHERNFRONT"
    # Frames without text reuse nothing; the two seconds of caption are one hit, not two.
    assert reader.frames_seen >= 6


def test_a_phrase_wrapped_over_two_lines_is_found_on_their_joint_box() -> None:
    reader = ScreenReader(AliasMatcher([("Northern Front", "We are the Northern Front")]))
    lines = [
        TextLine("WE ARE THE", 0.9, 0.01, (10, 10, 100, 20)),
        TextLine("NORTHERN FRONT", 0.9, 0.01, (12, 34, 150, 22)),
        TextLine("breaking news", 0.9, 0.01, (300, 300, 90, 15)),
    ]
    (hit,) = reader.find(5.0, lines, scale=0.5)
    assert hit.org == "Northern Front" and hit.time_s == 5.0
    assert hit.box == (20, 20, 304, 92)  # both lines' boxes, in the original frame's pixels
    # Unsure readings are not evidence.
    unsure = [TextLine("WE ARE THE NORTHERN FRONT", 0.2, 0.01, (0, 0, 10, 10))]
    assert reader.find(0.0, unsure) == []


def test_api_reads_on_screen_text(tmp_path: Path, captioned_video: Path) -> None:
    api = Api(Settings(home=tmp_path / "home"))
    with api.client:
        register(api.fb, REGISTRY)
        with captioned_video.open("rb") as f:
            answer = api.client.post(
                "/v1/text/media",
                files={"file": ("clip.mp4", f, "video/mp4")},
                headers=api.auth("service"),
            )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [h["org"] for h in body["hits"]] == ["Northern Front"]
    assert body["list_version"] == 1 and len(body["hits"][0]["box"]) == 4
    json.dumps(body)
