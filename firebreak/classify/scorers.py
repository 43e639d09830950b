"""Building the scorers a live session or a head training uses, from what the operator names."""

from __future__ import annotations

from pathlib import Path

from firebreak.classify.base import Scorer
from firebreak.classify.head import DetectorHead, HeadScorer, ScorerSpec
from firebreak.classify.impulse import ImpulseScorer
from firebreak.classify.motion import MotionScorer
from firebreak.classify.ocr import OcrScorer, load_watch_list
from firebreak.classify.onnx_model import OnnxImageScorer


def build_scorers(spec: ScorerSpec) -> list[Scorer]:
    """The scorers `spec` names, in a fixed order (a head's features depend on it)."""
    scorers: list[Scorer] = []
    if spec.impulse:
        scorers.append(ImpulseScorer())
    if spec.motion:
        scorers.append(MotionScorer())
    if spec.model:
        scorers.append(OnnxImageScorer(Path(spec.model)))
    if spec.watch_list:
        scorers.append(OcrScorer(load_watch_list(spec.watch_list)))
    return scorers


def head_scorer(path: Path) -> HeadScorer:
    """A trained head and the scorers that feed it, as one scorer."""
    head = DetectorHead.load(path)
    return HeadScorer(head, build_scorers(head.scorers))
