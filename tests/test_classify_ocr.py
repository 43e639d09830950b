"""The OCR scorer finds watch-listed text drawn over real photographs and video frames.

Frames are real pictures (the cached photos and clips) with captions drawn in DejaVu; the OCR is
the real RapidOCR model, loaded once for the module. Matching rules are also pinned down with a
scripted OCR engine, which reads nothing and costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageFont

from firebreak.classify.base import ScoringWindow
from firebreak.classify.ocr import (
    FEATURE_NAMES,
    OcrScorer,
    TextLine,
    WatchListInvalid,
    WatchTerm,
    load_watch_list,
    normalise_text,
)

Pixels = npt.NDArray[np.uint8]

FONTS = Path("/usr/share/fonts/truetype/dejavu")
BOLD = FONTS / "DejaVuSans-Bold.ttf"
REGULAR = FONTS / "DejaVuSans.ttf"
CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)
FRAME_SIZE = (640, 360)
FIRES = 0.5  # a risk a reviewer should look at
SLOGAN = "WE ARE THE NORTHERN FRONT"

# Fictional groups and slogans, with one real designated name to show short terms need word breaks.
WATCH_LIST = """\
# Watch list for the tests.
We are the Northern Front | Northern Front | 1.0
#NorthernFront            | Northern Front | 0.9
Iron Dawn Brigade         | Iron Dawn Brigade
北方阵线                   | Northern Front (zh)
ISIS                      | Islamic State | 0.8
"""


# --- Frames --------------------------------------------------------------------------------------


def photo(path: Path) -> Image.Image:
    """The photo cropped and scaled to fill a 640×360 frame."""
    image = Image.open(path).convert("RGB")
    scale = max(FRAME_SIZE[0] / image.width, FRAME_SIZE[1] / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    left, top = (image.width - FRAME_SIZE[0]) // 2, (image.height - FRAME_SIZE[1]) // 2
    return image.crop((left, top, left + FRAME_SIZE[0], top + FRAME_SIZE[1]))


def video_frames(path: Path, times: Sequence[float]) -> list[Image.Image]:
    """The clip's first frames at or after each time, at most 640 px wide as a stream gives them."""
    wanted, frames = list(times), []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if wanted and frame.time is not None and frame.time >= wanted[0]:
                image = frame.to_image().convert("RGB")  # type: ignore[no-untyped-call]
                if image.width > FRAME_SIZE[0]:
                    height = round(image.height * FRAME_SIZE[0] / image.width)
                    image = image.resize((FRAME_SIZE[0], height))
                frames.append(image)
                wanted.pop(0)
    assert not wanted, f"{path.name} ended before {wanted}"
    return frames


def captioned(
    background: Image.Image,
    text: str,
    xy: tuple[float, float],
    *,
    size: int = 28,
    font: Path = BOLD,
    fill: str | tuple[int, int, int] = "white",
    stroke: int = 2,
    box: bool = False,
) -> Image.Image:
    """The picture with a caption drawn on it (outlined in black, over a black box if `box`)."""
    image = background.copy()
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(str(font), size)
    if box:
        left, top, right, bottom = draw.textbbox(xy, text, font=face)
        draw.rectangle((left - 6, top - 4, right + 6, bottom + 4), fill=(0, 0, 0))
    draw.text(xy, text, font=face, fill=fill, stroke_width=stroke, stroke_fill="black")
    return image


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def window(*images: Image.Image, step_s: float = 0.2) -> ScoringWindow:
    frames = tuple((i * step_s, np.asarray(image)) for i, image in enumerate(images))
    return ScoringWindow(0.0, len(images) * step_s, frames)


# --- Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def watch_list(tmp_path_factory: pytest.TempPathFactory) -> tuple[WatchTerm, ...]:
    path = tmp_path_factory.mktemp("ocr") / "watch.txt"
    path.write_text(WATCH_LIST, encoding="utf-8")
    return load_watch_list(path)


@pytest.fixture(scope="module")
def scorer(watch_list: tuple[WatchTerm, ...]) -> OcrScorer:
    """One scorer with the real OCR model for the module: the model loads once."""
    return OcrScorer(watch_list)


@pytest.fixture(scope="module")
def astronaut(clips: dict[str, Path]) -> Image.Image:
    return photo(clips["astronaut.png"])


@pytest.fixture(scope="module")
def chelsea(clips: dict[str, Path]) -> Image.Image:
    return photo(clips["chelsea.png"])


@pytest.fixture(scope="module")
def cockatoo(clips: dict[str, Path]) -> Image.Image:
    return video_frames(clips["cockatoo.mp4"], [1.0])[0]


@pytest.fixture(scope="module")
def bikes(clips: dict[str, Path]) -> list[Image.Image]:
    return video_frames(clips["bikes.mp4"], [1.0, 2.0, 3.0])


# --- The real OCR on real pictures ---------------------------------------------------------------


def test_a_watch_listed_slogan_in_a_caption_fires_with_its_evidence(
    scorer: OcrScorer, astronaut: Image.Image
) -> None:
    frame = captioned(astronaut, SLOGAN, (40, 300), box=True)

    result = scorer.score(window(frame))

    assert result.scorer == "ocr"
    assert result.risk >= FIRES
    top = result.evidence["matches"][0]  # type: ignore[index]
    assert top["term"] == "We are the Northern Front"
    assert top["label"] == "Northern Front"
    assert top["frame_times"] == [0.0]
    assert top["similarity"] >= 0.9
    assert top["ocr_confidence"] >= 0.5
    assert "NORTHERN" in " ".join(top["recognised_text"]).upper()


Backgrounds = dict[str, Image.Image]


def _small(pictures: Backgrounds) -> Image.Image:
    return captioned(pictures["chelsea"], SLOGAN, (30, 320), size=15, font=REGULAR, stroke=1)


def _jpeg_compressed(pictures: Backgrounds) -> Image.Image:
    frame = captioned(pictures["chelsea"], SLOGAN, (30, 290), size=22, font=REGULAR, stroke=1)
    return jpeg(frame, quality=15)


def _over_a_busy_video_frame(pictures: Backgrounds) -> Image.Image:
    return captioned(pictures["cockatoo"], SLOGAN, (20, 160), size=24, fill="yellow", stroke=0)


def _cut_at_the_right_edge(pictures: Backgrounds) -> Image.Image:
    face = ImageFont.truetype(str(BOLD), 26)
    # Half of the last letter falls outside the frame.
    x = FRAME_SIZE[0] - face.getlength(SLOGAN) + face.getlength("T") / 2
    return captioned(pictures["astronaut"], SLOGAN, (x, 300), size=26)


@pytest.mark.parametrize(
    "edit", [_small, _jpeg_compressed, _over_a_busy_video_frame, _cut_at_the_right_edge]
)
def test_the_slogan_still_fires_after_edits_that_hurt_ocr(
    scorer: OcrScorer,
    astronaut: Image.Image,
    chelsea: Image.Image,
    cockatoo: Image.Image,
    edit: Callable[[Backgrounds], Image.Image],
) -> None:
    frame = edit({"astronaut": astronaut, "chelsea": chelsea, "cockatoo": cockatoo})

    result = scorer.score(window(frame))

    assert result.risk >= FIRES, result.evidence
    top = result.evidence["matches"][0]  # type: ignore[index]
    assert top["label"] == "Northern Front"


def test_a_benign_phrase_sharing_the_slogans_words_does_not_fire(
    scorer: OcrScorer, astronaut: Image.Image
) -> None:
    frame = captioned(astronaut, "THE NORTHERN LIGHTS FESTIVAL", (40, 300), box=True)

    result = scorer.score(window(frame))

    assert "NORTHERN" in str(result.evidence["screen_text"]).upper()  # it was read
    assert result.risk == 0.0
    assert result.evidence["matches"] == []


@pytest.mark.parametrize(
    ("background", "lines"),
    [
        ("chelsea", [("I told you we should have left earlier.", (60, 310), False)]),
        (
            "cockatoo",
            [
                ("BREAKING: Storm warning for northern coast", (10, 320), True),
                ("LIVE", (560, 10), True),
            ],
        ),
        ("bikes", [("Stage 4: the peloton reaches the front", (20, 230), True)]),
        ("bikes", [("Economic crisis deepens in the north", (20, 230), True)]),
    ],
)
def test_ordinary_captions_and_subtitles_do_not_fire(
    scorer: OcrScorer,
    request: pytest.FixtureRequest,
    background: str,
    lines: list[tuple[str, tuple[int, int], bool]],
) -> None:
    picture = request.getfixturevalue(background)
    frame = picture[0] if isinstance(picture, list) else picture
    for text, xy, box in lines:
        frame = captioned(frame, text, xy, size=20, box=box)

    result = scorer.score(window(frame))

    assert result.evidence["screen_text"]  # there was text, and it was read
    assert result.risk == 0.0
    assert result.evidence["matches"] == []


@pytest.mark.parametrize("background", ["chelsea", "cockatoo"])
def test_a_frame_without_text_scores_zero(
    scorer: OcrScorer, request: pytest.FixtureRequest, background: str
) -> None:
    frame = request.getfixturevalue(background)

    result = scorer.score(window(frame))

    assert result.risk == 0.0
    assert result.evidence["matches"] == []
    assert len(result.features) == len(scorer.feature_names)


def test_a_caption_that_stays_on_moving_footage_scores_higher_than_one_frame(
    scorer: OcrScorer, bikes: list[Image.Image]
) -> None:
    frames = [captioned(f, SLOGAN, (20, 20), size=24, box=True) for f in bikes]

    once = scorer.score(window(frames[0]))
    throughout = scorer.score(window(*frames))

    assert once.risk >= FIRES
    assert throughout.risk > once.risk
    top = throughout.evidence["matches"][0]  # type: ignore[index]
    assert len(top["frame_times"]) == len(frames)
    assert throughout.features[FEATURE_NAMES.index("matched_frame_share")] == 1.0


def _cjk_font() -> Path | None:
    return next((path for path in CJK_FONTS if path.is_file()), None)


@pytest.mark.skipif(_cjk_font() is None, reason="no CJK font installed (apt: fonts-wqy-microhei)")
def test_a_chinese_term_fires_in_a_chinese_caption(
    scorer: OcrScorer, astronaut: Image.Image
) -> None:
    font = _cjk_font()
    assert font is not None
    frame = captioned(astronaut, "北方阵线万岁", (60, 290), size=34, font=font, box=True)

    result = scorer.score(window(frame))

    assert result.risk >= FIRES
    top = result.evidence["matches"][0]  # type: ignore[index]
    assert top["term"] == "北方阵线"


# --- Matching rules, with a scripted OCR engine ---------------------------------------------------


class ScriptedOcr:
    """An OCR engine that 'reads' given lines, one list per call, and counts its calls."""

    def __init__(self, *reads: Sequence[str]) -> None:
        self._reads: Iterator[Sequence[str]] = iter(reads)
        self.calls = 0

    def __call__(self, rgb: Pixels) -> list[TextLine]:
        self.calls += 1
        return [TextLine(text, 0.95, 0.01) for text in next(self._reads, ())]


def noise_frames(count: int) -> list[Image.Image]:
    """Frames that differ from each other, so each one is read."""
    rng = np.random.default_rng(11)
    return [
        Image.fromarray(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)) for _ in range(count)
    ]


def scripted_risk(watch: Sequence[WatchTerm], *reads: Sequence[str]) -> float:
    scorer = OcrScorer(watch, engine=ScriptedOcr(*reads))
    return scorer.score(window(*noise_frames(len(reads)))).risk


NORTHERN_FRONT = WatchTerm("We are the Northern Front", "Northern Front")


@pytest.mark.parametrize(
    "read",
    [
        "WEARETHENORTHERNFRONT",
        "WE ARE THE NORTHERN FRON",
        "WE ARE THE N0RTHERN FR0NT",
        "we are the northem front!",
        "Wé àre thé Northern Front",
        "ＷＥ ＡＲＥ ＴＨＥ ＮＯＲＴＨＥＲＮ ＦＲＯＮＴ",
    ],
)
def test_ocr_slips_and_spelling_variants_still_match(read: str) -> None:
    assert scripted_risk([NORTHERN_FRONT], [read]) >= FIRES


def test_a_phrase_wrapped_over_two_lines_matches() -> None:
    assert scripted_risk([NORTHERN_FRONT], ["We are the", "Northern Front"]) >= FIRES


@pytest.mark.parametrize(
    "read",
    [
        "the northern lights festival",
        "front row at the northern stand",
        "we are the champions",
        "northern front",  # only part of the slogan
    ],
)
def test_texts_sharing_some_words_or_in_another_order_do_not_match(read: str) -> None:
    assert scripted_risk([NORTHERN_FRONT], [read]) == 0.0


def test_a_short_term_matches_whole_words_only() -> None:
    isis = WatchTerm("ISIS", "Islamic State")

    assert scripted_risk([isis], ["economic crisis deepens"]) == 0.0
    assert scripted_risk([isis], ["Iris is here"]) == 0.0
    assert scripted_risk([isis], ["flag of I.S.I.S. seen"]) >= FIRES
    assert scripted_risk([isis], ["#ISIS"]) >= FIRES
    assert scripted_risk([isis], ["1SIS"]) >= FIRES


def test_hashtags_and_their_spelled_out_words_match_each_other() -> None:
    hashtag = WatchTerm("#IronDawnBrigade", "Iron Dawn Brigade")
    spelled = WatchTerm("Iron Dawn Brigade", "Iron Dawn Brigade")

    assert scripted_risk([hashtag], ["join the iron dawn brigade"]) >= FIRES
    assert scripted_risk([spelled], ["#IronDawnBrigade"]) >= FIRES
    assert scripted_risk([spelled], ["#irondawnbrigade"]) >= FIRES


def test_risk_rises_with_the_frames_showing_the_term_and_with_its_weight() -> None:
    heavy = WatchTerm("Iron Dawn Brigade", weight=1.0)
    light = WatchTerm("Iron Dawn Brigade", weight=0.5)
    seen = ["IRON DAWN BRIGADE"]

    once = scripted_risk([heavy], seen, [])
    twice = scripted_risk([heavy], seen, seen)
    thrice = scripted_risk([heavy], seen, seen, seen)
    light_once = scripted_risk([light], seen, [])

    assert 0.0 < once < twice < thrice <= 1.0
    assert light_once == pytest.approx(once / 2)


def test_an_exact_match_scores_above_a_sloppy_one() -> None:
    term = WatchTerm("Iron Dawn Brigade")

    exact = scripted_risk([term], ["IRON DAWN BRIGADE"])
    sloppy = scripted_risk([term], ["IRONDAWN BRIGAD"])

    assert 0.0 < sloppy < exact


def test_the_riskiest_term_leads_the_evidence() -> None:
    terms = [WatchTerm("Iron Dawn Brigade", "IDB", 0.4), NORTHERN_FRONT]
    scorer = OcrScorer(terms, engine=ScriptedOcr(["Iron Dawn Brigade: we are the northern front"]))

    result = scorer.score(window(*noise_frames(1)))

    matches = result.evidence["matches"]
    assert [m["label"] for m in matches] == ["Northern Front", "IDB"]  # type: ignore[attr-defined]
    assert matches[0]["matched_text"] == "we are the northern front"  # type: ignore[index]
    assert result.risk == matches[0]["risk"]  # type: ignore[index]
    assert result.features[FEATURE_NAMES.index("terms_matched")] == 2.0


def test_nearly_identical_frames_are_read_once_and_a_changed_word_again(
    clips: dict[str, Path],
) -> None:
    still = photo(clips["chelsea.png"])

    def caption(text: str) -> Image.Image:
        return captioned(still, text, (30, 320), size=12, font=REGULAR, stroke=0)

    benign = caption("see you at the river front")
    grain = np.random.default_rng(5).integers(-2, 3, (*still.size[::-1], 3))
    regrained = Image.fromarray(np.clip(np.asarray(benign) + grain, 0, 255).astype(np.uint8))
    engine = ScriptedOcr(["see you at the river front"], ["we are the northern front"])
    scorer = OcrScorer([NORTHERN_FRONT], engine=engine)

    result = scorer.score(window(benign, regrained, benign, caption("we are the northern front")))

    assert engine.calls == 2
    assert scorer.ocr_runs == 2
    top = result.evidence["matches"][0]  # type: ignore[index]
    assert top["frame_times"] == [pytest.approx(0.6)]


def test_text_read_in_a_still_frame_counts_for_the_frames_that_repeat_it(
    clips: dict[str, Path],
) -> None:
    still = captioned(photo(clips["chelsea.png"]), "IRON DAWN BRIGADE", (40, 300), size=22)
    engine = ScriptedOcr(["IRON DAWN BRIGADE"])
    scorer = OcrScorer([WatchTerm("Iron Dawn Brigade")], engine=engine)

    result = scorer.score(window(still, still, still))

    assert engine.calls == 1
    top = result.evidence["matches"][0]  # type: ignore[index]
    assert len(top["frame_times"]) == 3


def test_at_most_max_frames_are_read_and_the_newest_is_among_them() -> None:
    frames = noise_frames(10)
    engine = ScriptedOcr(*([[]] * 10))
    scorer = OcrScorer([NORTHERN_FRONT], max_frames=3, engine=engine)

    result = scorer.score(window(*frames))

    assert engine.calls == 3
    read = result.evidence["frames_read"]
    assert read[0] == 0.0  # type: ignore[index]
    assert read[-1] == pytest.approx(1.8)  # type: ignore[index]


def test_an_empty_window_scores_zero_with_features_of_fixed_length() -> None:
    scorer = OcrScorer([NORTHERN_FRONT], engine=ScriptedOcr())

    result = scorer.score(ScoringWindow(0.0, 1.0))

    assert result.risk == 0.0
    assert result.features == (0.0,) * len(FEATURE_NAMES)
    assert scorer.feature_names == FEATURE_NAMES
    assert scorer.name == "ocr"


def test_low_confidence_readings_are_ignored() -> None:
    class Unsure:
        def __call__(self, rgb: Pixels) -> list[TextLine]:
            return [TextLine("WE ARE THE NORTHERN FRONT", 0.3, 0.02)]

    scorer = OcrScorer([NORTHERN_FRONT], min_confidence=0.5, engine=Unsure())

    assert scorer.score(window(*noise_frames(1))).risk == 0.0


# --- Normalising and the watch-list file ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("WE ARE  the\tNorthern-Front!", "we are the northern front"),
        ("Ｎｏｒｔｈｅｒｎ ﬁre", "northern fire"),
        ("Crème Brûlée", "creme brulee"),
        ("#NorthernFront", "northern front"),
        ("I.S.I.S. don't", "isis dont"),
        ("支持北方阵线!", "支 持 北 方 阵 线"),
        ("…—#", ""),
    ],
)
def test_normalising_keeps_only_what_a_reader_would_call_the_words(
    text: str, expected: str
) -> None:
    assert normalise_text(text) == expected


def test_the_watch_list_file_gives_terms_labels_and_weights(tmp_path: Path) -> None:
    path = tmp_path / "watch.txt"
    path.write_text(
        "# a comment\n"
        "\n"
        "## another\n"
        "We are the Northern Front|Northern Front|0.9\n"
        "#NorthernFront | Northern Front   # the hashtag\n"
        "Iron Dawn Brigade\n"
        "北方阵线||0.7\n",
        encoding="utf-8",
    )

    terms = load_watch_list(path)

    assert terms == (
        WatchTerm("We are the Northern Front", "Northern Front", 0.9),
        WatchTerm("#NorthernFront", "Northern Front", 1.0),
        WatchTerm("Iron Dawn Brigade", None, 1.0),
        WatchTerm("北方阵线", None, 0.7),
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Iron Dawn|IDB|heavy", "weight is no number"),
        ("Iron Dawn|IDB|1.5", "weight must lie in 0..1"),
        ("!!!|punctuation only", "no letters or digits"),
        ("a|b|0.5|d", "more than three"),
    ],
)
def test_a_bad_watch_list_line_is_refused_with_its_number(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = tmp_path / "watch.txt"
    path.write_text(f"# header\n{line}\n", encoding="utf-8")

    with pytest.raises(WatchListInvalid, match=reason) as refused:
        load_watch_list(path)

    assert refused.value.line == 2
