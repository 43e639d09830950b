"""The benchmark harness: its metrics on hand-made scores, its suite, and a quick run end to end."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from firebreak.bench.report import (
    FIREBREAK,
    SystemOutcome,
    VariantOutcome,
    recall_at_zero_fp,
    segment_error,
    summarise,
    zero_fp_threshold,
)
from firebreak.bench.suite import plan_suite
from firebreak.bench.variants import SUITE, SourceClip
from tests.conftest import CliResult


def outcome(
    family: str,
    expected: str | None,
    scores: dict[str, float],
    flagged: tuple[str, ...] = (),
    truth: tuple[tuple[float, float], tuple[float, float]] | None = None,
    found: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> VariantOutcome:
    return VariantOutcome(
        variant=f"{expected}:{family}",
        family=family,
        strength="s",
        source=expected or "distractor.mp4",
        expected_item=expected,
        true_query_segment=truth[0] if truth else None,
        true_item_segment=truth[1] if truth else None,
        systems={
            FIREBREAK: SystemOutcome(
                scores, flagged, 1.0, found[0] if found else None, found[1] if found else None
            )
        },
    )


def test_recall_at_zero_fp_counts_positives_above_the_best_negative() -> None:
    threshold = zero_fp_threshold([0.1, 0.42, 0.3])

    assert threshold == 0.42
    assert recall_at_zero_fp([0.9, 0.42, 0.5, 0.0], threshold) == 0.5  # a tie is not above
    assert recall_at_zero_fp([], threshold) == 0.0
    assert zero_fp_threshold([]) == 0.0


def test_summary_of_a_hand_made_run() -> None:
    outcomes = [
        # Positives: the expected item's score counts, not another item's.
        outcome("flip", "a.mp4", {"a.mp4": 0.9}, flagged=("a.mp4",)),
        outcome("flip", "b.mp4", {"a.mp4": 0.95, "b.mp4": 0.3}),
        outcome("crop", "a.mp4", {"a.mp4": 0.6}, flagged=("a.mp4",)),
        outcome(
            "excerpt",
            "a.mp4",
            {"a.mp4": 0.8},
            flagged=("a.mp4",),
            truth=((0.0, 4.0), (3.0, 7.0)),
            found=((0.2, 4.0), (3.5, 7.0)),
        ),
        outcome(
            "excerpt",
            "b.mp4",
            {"b.mp4": 0.7},
            truth=((0.0, 4.0), (1.0, 5.0)),
            found=((0.0, 4.0), (3.0, 5.0)),
        ),
        # Negatives: the best score of any item sets the threshold.
        outcome("flip", None, {"a.mp4": 0.65, "b.mp4": 0.1}, flagged=("a.mp4",)),
        outcome("crop", None, {}),
    ]

    summary = summarise(outcomes, FIREBREAK, ["flip", "crop", "excerpt", "pixelate"])

    assert summary.zero_fp_threshold == 0.65
    assert summary.recall_by_family == {"flip": 0.5, "crop": 0.0, "excerpt": 1.0}
    assert summary.recall_at_zero_fp == 3 / 5
    assert summary.recall_at_default == 3 / 5
    assert summary.false_positives_at_default == 1
    assert (summary.positives, summary.negatives) == (5, 2)
    assert summary.segments is not None
    assert summary.segments.variants == 2
    assert summary.segments.within_tolerance == 0.5
    assert summary.segments.mean_error_s == pytest.approx((0.5 + 2.0) / 2)


def test_segment_error_is_the_worst_end() -> None:
    assert segment_error((3.0, 7.0), (2.0, 6.0), (3.2, 7.0), (2.0, 4.5)) == pytest.approx(1.5)


def test_suite_covers_every_family_at_two_strengths_or_more() -> None:
    strengths = Counter(edit.family for edit in SUITE)
    expected = {
        "reencode", "downscale", "flip", "crop_centred", "crop_offcentre", "letterbox",
        "pillarbox", "vertical_9x16", "rotate", "speed", "framerate", "brightness_contrast",
        "saturation_hue", "greyscale", "noise", "blur", "pixelate", "caption", "overlay",
        "pip_source_inset", "pip_other_inset", "reaction_layout", "screen_recording", "excerpt",
        "compilation", "audio", "chain",
    }  # fmt: skip

    assert expected <= set(strengths)
    assert all(strengths[family] >= 2 for family in expected)
    assert strengths["chain"] >= 3


def test_other_footage_is_never_the_source_itself() -> None:
    banked = [SourceClip(Path("a.mp4"), 10.0, 640, 360, True, "a")]
    distractors = [
        SourceClip(Path("x.mp4"), 4.0, 176, 144, False, "x"),
        SourceClip(Path("y.mp4"), 6.0, 320, 240, True, "y"),
    ]

    plans = plan_suite(SUITE, banked, distractors, filler=lambda: pytest.fail("no filler needed"))

    with_other = [p for p in plans if p.other is not None]
    assert with_other
    assert all(p.other.digest != p.source.digest for p in with_other if p.other)
    assert all(p.other.digest in {"x", "y"} for p in with_other if p.other)
    excerpt = next(p for p in plans if p.name == "a.mp4:excerpt-4s")
    assert excerpt.query_segment == (0.0, 4.0)
    assert excerpt.item_segment == (3.0, 7.0)
    compilation = next(p for p in plans if p.name == "a.mp4:compilation-4s_inside")
    assert compilation.query_segment == (3.0, 7.0)
    assert compilation.item_segment == (3.0, 7.0)


def test_quick_bench_writes_results_and_runs_the_anchors(
    cli: Callable[..., CliResult], clips: dict[str, Path], tmp_path: Path
) -> None:
    sources, distractors, out = tmp_path / "sources", tmp_path / "distractors", tmp_path / "out"
    sources.mkdir()
    distractors.mkdir()
    shutil.copy(clips["bikes.mp4"], sources)
    shutil.copy(clips["carphone_pristine.mp4"], distractors)

    result = cli(
        *("bench", "variants", "--quick", "--sources", sources, "--distractors", distractors),
        *("--out", out, "--cache", tmp_path / "cache"),
        timeout=300,
    )

    assert result.code == 0, result.stderr
    assert "overall" in result.stdout
    [json_path] = out.glob("variants-*.json")
    [chart_path] = out.glob("variants-*.png")
    assert chart_path.read_bytes().startswith(b"\x89PNG")
    run = json.loads(json_path.read_text())
    assert run["systems"] == ["Firebreak", "vPDQ", "TMK+PDQF"]
    assert len(run["outcomes"]) == 10
    assert sum(1 for o in run["outcomes"] if o["expected_item"] == "bikes.mp4") == 5
    reencoded = next(o for o in run["outcomes"] if o["variant"] == "bikes.mp4:reencode-crf38")
    for system in ("vPDQ", "TMK+PDQF"):  # both anchors ran and found a plain re-encode
        assert reencoded["systems"][system]["scores"]["bikes.mp4"] > 0.7
    assert {s["system"] for s in run["summaries"]} == {"Firebreak", "vPDQ", "TMK+PDQF"}
