"""Scorers on live streams: an operator's ONNX model, smoothing, escalation, faulty scorers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from firebreak.classify.base import RiskScore, ScoringWindow
from firebreak.classify.head import HeadScorer, ScorerSpec, fit_logistic_head, window_features
from firebreak.classify.onnx_model import ModelInvalid, OnnxImageScorer
from firebreak.live.risk import Escalation, RiskWatch, ScorerFault
from firebreak.live.session import LiveEvent, LiveSession
from firebreak.service import Firebreak
from firebreak.settings import Settings

from .conftest import ffmpeg


@pytest.fixture(scope="module")
def redness_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for an operator's classifier: class 1 ("attack") is how red the picture is."""
    x = helper.make_tensor_value_info("pictures", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])
    weights = helper.make_tensor(
        "weights", TensorProto.FLOAT, [3, 2], [-4.0, 4.0, 2.0, -2.0, 2.0, -2.0]
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["pictures"], ["means"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["means", "weights"], ["logits"]),
        ],
        "redness",
        [x],
        [y],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("models") / "redness.onnx"
    onnx.save(model, path)
    return path


def _window(colour: tuple[int, int, int], frames: int = 4) -> ScoringWindow:
    picture = np.zeros((90, 160, 3), np.uint8)
    picture[:] = colour
    return ScoringWindow(0.0, 2.0, tuple((i * 0.5, picture) for i in range(frames)))


def test_operator_model_scores_its_positive_class_high(redness_model: Path) -> None:
    scorer = OnnxImageScorer(redness_model)

    red = scorer.score(_window((230, 20, 20)))
    grey = scorer.score(_window((120, 120, 120)))
    empty = scorer.score(ScoringWindow(0.0, 2.0))

    assert red.risk > 0.9
    assert grey.risk < 0.3
    assert empty.risk == 0.0
    assert red.scorer == "model:redness" and len(red.features) == len(scorer.feature_names)


@pytest.mark.parametrize("batch", [1, 3])
def test_picture_model_exported_with_a_static_batch_scores_every_frame(
    batch: int, tmp_path: Path
) -> None:
    x = helper.make_tensor_value_info("pictures", TensorProto.FLOAT, [batch, 3, 32, 32])
    y = helper.make_tensor_value_info("redness", TensorProto.FLOAT, [batch, 1])
    weights = helper.make_tensor("weights", TensorProto.FLOAT, [3, 1], [4.0, -2.0, -2.0])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["pictures"], ["means"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["means", "weights"], ["redness"]),
        ],
        "static-batch",
        [x],
        [y],
        [weights],
    )
    scorer = OnnxImageScorer(_save_model(graph, tmp_path / "static.onnx"))

    red = scorer.score(_window((220, 20, 20), frames=4))
    grey = scorer.probabilities([np.full((40, 40, 3), 128, np.uint8)] * 4)

    assert red.risk > 0.9
    assert grey.shape == (4,) and np.all(grey < 0.6)


def test_file_that_is_no_model_is_refused_with_a_reason(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("not a model")

    with pytest.raises(ModelInvalid, match="not a usable ONNX model"):
        OnnxImageScorer(fake)
    with pytest.raises(ModelInvalid, match="no such model file"):
        OnnxImageScorer(tmp_path / "missing.onnx")


def _save_model(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# How red a (normalised) picture is: red up, green and blue down, less a bias so grey reads low.
_REDNESS = helper.make_tensor("redness", TensorProto.FLOAT, [3, 1], [4.0, -2.0, -2.0])
_BIAS = helper.make_tensor("bias", TensorProto.FLOAT, [1], [-1.0])


def _clip_redness_model(path: Path, shape: list[int | str], colour_axis: int) -> Path:
    """A stand-in clip classifier: one probability, how red the clip is on average over time."""
    x = helper.make_tensor_value_info("clip", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("probability", TensorProto.FLOAT, [shape[0], 1])
    others = [axis for axis in range(1, 5) if axis != colour_axis]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["clip"], ["means"], axes=others, keepdims=0),
            helper.make_node("MatMul", ["means", "redness"], ["logit"]),
            helper.make_node("Add", ["logit", "bias"], ["shifted"]),
            helper.make_node("Sigmoid", ["shifted"], ["probability"]),
        ],
        "clip-redness",
        [x],
        [y],
        [_REDNESS, _BIAS],
    )
    return _save_model(graph, path)


def _reddening_model(path: Path, frames: int | str) -> Path:
    """A stand-in clip classifier (NCTHW) that only sees change: how much redder the clip's
    last frame is than its first."""
    x = helper.make_tensor_value_info("clip", TensorProto.FLOAT, [1, 3, frames, 16, 16])
    y = helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 1])
    first = helper.make_tensor("first", TensorProto.INT64, [], [0])
    last = helper.make_tensor("last", TensorProto.INT64, [], [-1])
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["clip", "first"], ["start"], axis=2),
            helper.make_node("Gather", ["clip", "last"], ["end"], axis=2),
            helper.make_node("Sub", ["end", "start"], ["change"]),
            helper.make_node("ReduceMean", ["change"], ["means"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["means", "redness"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability"]),
        ],
        "reddening",
        [x],
        [y],
        [_REDNESS, first, last],
    )
    return _save_model(graph, path)


def _any_input_model(path: Path, shape: list[int | str]) -> Path:
    """A model that loads and runs whatever its input's shape: the mean of it, squashed."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("probability", TensorProto.FLOAT, [shape[0]])
    axes = list(range(1, len(shape)))
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["mean"], axes=axes, keepdims=0),
            helper.make_node("Sigmoid", ["mean"], ["probability"]),
        ],
        "any-input",
        [x],
        [y],
    )
    return _save_model(graph, path)


def _coloured(colours: list[tuple[int, int, int]], step_s: float = 0.25) -> ScoringWindow:
    """A window whose frames, `step_s` apart, are the colours in turn."""
    frames = []
    for i, colour in enumerate(colours):
        picture = np.zeros((90, 160, 3), np.uint8)
        picture[:] = colour
        frames.append((i * step_s, picture))
    return ScoringWindow(0.0, len(colours) * step_s, tuple(frames))


RED, GREY = (230, 20, 20), (120, 120, 120)


@pytest.mark.parametrize(
    ("shape", "colour_axis", "layout", "length"),
    [
        (["N", "C", "T", 16, 16], 1, "NCTHW", 8),  # clip length left open: the default
        ([1, 3, 6, 16, 16], 1, "NCTHW", 6),
        ([1, 4, 3, 16, 16], 2, "NTCHW", 4),
        (["batch", "frames", 3, "height", "width"], 2, "NTCHW", 8),
    ],
)
def test_clip_model_scores_a_window_as_one_clip(
    tmp_path: Path, shape: list[int | str], colour_axis: int, layout: str, length: int
) -> None:
    scorer = OnnxImageScorer(_clip_redness_model(tmp_path / "x3d.onnx", shape, colour_axis))

    red = scorer.score(_window(RED, frames=12))
    grey = scorer.score(_window(GREY, frames=12))
    short = scorer.score(_window(RED, frames=2))  # fewer frames than a clip: repeated
    empty = scorer.score(ScoringWindow(0.0, 2.0))

    assert scorer.layout == layout
    assert red.risk > 0.9 and short.risk > 0.9
    assert grey.risk < 0.3
    assert empty.risk == 0.0 and empty.features == (0.0, 0.0)
    assert red.scorer == "model:x3d"
    assert len(red.features) == len(scorer.feature_names) == 2
    assert red.features == (red.risk, red.risk)
    assert len(red.evidence["frame_times"]) == length  # type: ignore[arg-type]
    assert short.evidence["frame_times"] == (0.0,) * (length // 2) + (0.5,) * (length // 2)


def test_clip_frames_are_spread_over_the_window_in_time_order(tmp_path: Path) -> None:
    scorer = OnnxImageScorer(_reddening_model(tmp_path / "reddening.onnx", 4))

    turns_red = scorer.score(_coloured([GREY] * 19 + [RED]))
    turns_grey = scorer.score(_coloured([RED] + [GREY] * 19))
    steady = scorer.score(_coloured([GREY] * 20))

    assert turns_red.risk > 0.9  # the window's last frame ends the clip, its first begins it
    assert turns_grey.risk < 0.1
    assert 0.4 < steady.risk < 0.6
    assert turns_red.evidence["frame_times"] == (0.0, 1.5, 3.25, 4.75)  # frames 0, 6, 13, 19
    assert turns_red.evidence["frame_time"] == 0.0


def test_clip_of_a_window_with_few_frames_keeps_their_order(tmp_path: Path) -> None:
    scorer = OnnxImageScorer(_reddening_model(tmp_path / "reddening.onnx", "T"))

    turns_red = scorer.score(_coloured([GREY, RED]))
    turns_grey = scorer.score(_coloured([RED, GREY]))

    assert turns_red.risk > 0.9 and turns_grey.risk < 0.1
    assert turns_red.evidence["frame_times"] == (0.0,) * 4 + (0.25,) * 4


def test_clip_model_feeds_a_trained_head_as_a_picture_model_does(
    tmp_path: Path, redness_model: Path
) -> None:
    clip = OnnxImageScorer(_clip_redness_model(tmp_path / "x3d.onnx", ["N", 3, "T", 16, 16], 1))
    picture = OnnxImageScorer(redness_model)
    windows = [_window(RED), _window(GREY), _window(RED), _window(GREY)]
    features = np.vstack([window_features([clip], w) for w in windows])
    head = fit_logistic_head(
        features, np.asarray([True, False, True, False]), clip.feature_names, ScorerSpec()
    )

    scored = HeadScorer(head, [clip])

    assert clip.feature_names == picture.feature_names
    assert scored.score(_window(RED)).risk > 0.5 > scored.score(_window(GREY)).risk
    assert scored.score(_window(RED)).evidence["model:x3d"]["frame_times"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        (["N", 4, 8, 16, 16], "neither dimension 1 nor 2 is 3 colour channels"),
        (["N", 3, 3, 16, 16], "ambiguous"),
        (["N", "C", "C", 16, 16], "ambiguous"),
        ([2, 3, 8, 16, 16], "one clip at a time"),
        (["N", 8, 16, 16], "a picture model must take N×3×H×W"),
        (["N", 3, 8, 8, 16, 16], "must take an N×3×H×W picture batch or an N×3×T×H×W"),
    ],
)
def test_input_shape_that_is_no_picture_or_clip_is_refused_with_a_reason(
    tmp_path: Path, shape: list[int | str], reason: str
) -> None:
    with pytest.raises(ModelInvalid, match=reason):
        OnnxImageScorer(_any_input_model(tmp_path / "odd.onnx", shape))


def test_model_with_several_inputs_is_refused(tmp_path: Path) -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3, 8, 16, 16])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3, 8, 16, 16])
    y = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 3, 8, 16, 16])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "two", [a, b], [y])

    with pytest.raises(ModelInvalid, match="takes 2 inputs"):
        OnnxImageScorer(_save_model(graph, tmp_path / "two.onnx"))


@dataclass(frozen=True)
class Scripted:
    """A scorer that reads out a fixed sequence of risks, or raises."""

    risks: tuple[float, ...]
    name: str = "scripted"
    feature_names: tuple[str, ...] = ()

    def score(self, window: ScoringWindow) -> RiskScore:
        step = round(window.end_s / 2.0) - 1
        risk = self.risks[min(step, len(self.risks) - 1)]
        if risk < 0:
            raise RuntimeError("model crashed")
        return RiskScore(self.name, risk)


def _assess_all(watch: RiskWatch, steps: int) -> list[Escalation | ScorerFault]:
    out: list[Escalation | ScorerFault] = []
    for i in range(1, steps + 1):
        out += watch.assess(2.0 * i)
    return out


def test_one_odd_window_goes_to_review_but_sustained_risk_is_alerted() -> None:
    settings = Settings(live_risk_smoothing=0.5, live_escalation={"review": 0.4, "alert": 0.8})

    blip = _assess_all(RiskWatch([Scripted((0.0, 0.9, 0.0, 0.0))], settings), 4)
    sustained = _assess_all(RiskWatch([Scripted((0.0, 0.9, 0.9, 0.9, 0.9))], settings), 5)

    assert [e.level for e in blip if isinstance(e, Escalation)] == ["review"]
    assert [e.level for e in sustained if isinstance(e, Escalation)] == ["review", "alert"]


def test_failing_scorer_is_reported_then_left_out() -> None:
    settings = Settings(live_scorer_max_faults=2)
    watch = RiskWatch([Scripted((-1.0,))], settings)

    outcomes = _assess_all(watch, 6)

    assert all(isinstance(o, ScorerFault) for o in outcomes)
    assert len(outcomes) == 3  # reported each time until it was left out


def _grey_then_red(media_dir: Path) -> Path:
    media = media_dir / "grey-then-red.mp4"
    if not media.exists():
        ffmpeg(
            *("-f", "lavfi", "-i", "mandelbrot=size=320x180:rate=25,hue=s=0,trim=duration=8"),
            *("-f", "lavfi", "-i", "color=c=0xE01010:size=320x180:rate=25:duration=8"),
            "-filter_complex",
            "[0:v]format=yuv420p[a];[1:v]noise=alls=10:allf=t,format=yuv420p[b];"
            "[a][b]concat=n=2:v=1[v]",
            *("-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", media),
        )
    return media


def test_escalation_policy_runs_each_levels_actions_in_order(
    redness_model: Path, media_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        live_policy={"review": ["delay", "notify"], "alert": ["cut", "notify", "absent"]},
    )
    fb = Firebreak(settings)
    done: list[tuple[str, str]] = []

    def act(name: str) -> Callable[[LiveEvent], None]:
        return lambda event: done.append((event.level, name))

    session = LiveSession(
        str(_grey_then_red(media_dir)),
        fb,
        settings,
        lambda event: None,
        realtime=False,
        scorers=[OnnxImageScorer(redness_model)],
        actions={name: act(name) for name in ("cut", "delay", "notify")},
    )
    session.run()
    fb.close()

    assert done == [
        ("review", "delay"),
        ("review", "notify"),
        ("alert", "cut"),
        ("alert", "notify"),
    ]
    assert [a.actions for a in session.alerts] == [
        {"delay": "done", "notify": "done"},
        {"cut": "done", "notify": "done"},
    ]


def test_stream_showing_the_models_class_is_alerted_on_when_it_appears(
    redness_model: Path, media_dir: Path, tmp_path: Path
) -> None:
    media = _grey_then_red(media_dir)
    fb = Firebreak(Settings(home=tmp_path / "home"))
    events: list[LiveEvent] = []
    session = LiveSession(
        str(media),
        fb,
        fb.settings,
        events.append,
        realtime=False,
        scorers=[OnnxImageScorer(redness_model)],
    )

    session.run()
    fb.close()

    alerts = [e for e in events if e.event == "alert"]
    assert [(a.source, a.level) for a in alerts] == [
        ("model:redness", "review"),
        ("model:redness", "alert"),
    ]
    assert all(8.0 <= a.stream_time <= 14.0 for a in alerts)
    assert events[-1].state == "ended"


def test_a_crashing_scorer_does_not_stop_the_watch_or_its_matching(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    fb = Firebreak(Settings(home=tmp_path / "home"))
    fb.create_bank("attacks")
    fb.bank_file("attacks", clips["bikes.mp4"])
    events: list[LiveEvent] = []
    session = LiveSession(
        str(clips["bikes.mp4"]),
        fb,
        fb.settings,
        events.append,
        realtime=False,
        scorers=[Scripted((-1.0,))],
    )

    session.run()
    fb.close()

    assert any(e.detail and "scorer scripted failed" in e.detail for e in events)
    assert [e.item for e in events if e.event == "alert"] == ["bikes.mp4"]
    assert events[-1].state == "ended"
