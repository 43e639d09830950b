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


def test_file_that_is_no_model_is_refused_with_a_reason(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("not a model")

    with pytest.raises(ModelInvalid, match="not a usable ONNX model"):
        OnnxImageScorer(fake)
    with pytest.raises(ModelInvalid, match="no such model file"):
        OnnxImageScorer(tmp_path / "missing.onnx")


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
