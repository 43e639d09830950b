"""A picture classifier the operator supplies as an ONNX file, run with onnxruntime.

Firebreak ships no attack-classifier weights; a platform that has trained one (on first-person
attack footage and the benign footage that looks like it: games, paintball, hunting) exports it
to ONNX and points Firebreak at it. The model takes a batch of RGB pictures, NCHW float32,
normalised per channel, and gives a score per class (logits or probabilities) or one logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
from PIL import Image

from firebreak.classify.base import RiskScore, ScoringWindow
from firebreak.errors import FirebreakError

_DEFAULT_SIDE = 224  # when the model leaves its input size open


class ModelInvalid(FirebreakError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class OnnxImageScorer:
    """Scores a window by the model's probability of `positive_class` on a few of its frames.

    The window's risk is the highest probability among the frames looked at: one clear frame of
    an attack is enough to look closer, and smoothing over windows damps single-frame flukes."""

    path: Path
    positive_class: int = 1
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    frames_per_window: int = 4
    _session: Any = field(init=False, repr=False, compare=False)
    _input: str = field(init=False, repr=False, compare=False)
    _side: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.path.is_file():
            raise ModelInvalid(self.path, "no such model file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # many streams share the cores
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelInvalid(self.path, f"not a usable ONNX model ({exc})") from None
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, "C"):
            raise ModelInvalid(self.path, "the model must take one N×3×H×W picture batch")
        height, width = inputs[0].shape[2:]
        side = (
            height if isinstance(height, int) else _DEFAULT_SIDE,
            width if isinstance(width, int) else _DEFAULT_SIDE,
        )
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_input", inputs[0].name)
        object.__setattr__(self, "_side", side)

    @property
    def name(self) -> str:
        return f"model:{self.path.stem}"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return ("model_max", "model_mean")

    def score(self, window: ScoringWindow) -> RiskScore:
        frames = _spread(window.frames, self.frames_per_window)
        if not frames:
            return RiskScore(self.name, 0.0, (0.0, 0.0), {})
        probabilities = self.probabilities([pixels for _, pixels in frames])
        best = int(np.argmax(probabilities))
        return RiskScore(
            self.name,
            float(probabilities[best]),
            (float(probabilities.max()), float(probabilities.mean())),
            {"frame_time": frames[best][0], "probability": round(float(probabilities[best]), 4)},
        )

    def probabilities(self, pictures: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float64]:
        """The model's probability of the positive class for each RGB picture."""
        batch = np.stack([self._prepare(p) for p in pictures])
        outputs = self._session.run(None, {self._input: batch})
        scores = np.asarray(outputs[0], dtype=np.float64).reshape(len(pictures), -1)
        if scores.shape[1] == 1:  # one logit, or one probability
            column = scores[:, 0]
            inside = bool(np.all((column >= 0) & (column <= 1)))
            return column if inside else 1.0 / (1.0 + np.exp(-column))
        if self.positive_class >= scores.shape[1]:
            raise ModelInvalid(self.path, f"no class {self.positive_class} in its output")
        rows_sum_to_one = np.allclose(scores.sum(axis=1), 1.0, atol=1e-3) and scores.min() >= 0
        if rows_sum_to_one:
            return scores[:, self.positive_class]
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(shifted[:, self.positive_class] / shifted.sum(axis=1))

    def _prepare(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        height, width = self._side
        image = Image.fromarray(pixels).convert("RGB").resize((width, height))
        scaled = np.asarray(image, dtype=np.float32) / 255.0
        normalised = (scaled - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


def _spread(
    frames: Sequence[tuple[float, npt.NDArray[np.uint8]]], count: int
) -> list[tuple[float, npt.NDArray[np.uint8]]]:
    """At most `count` frames, evenly spread over the window."""
    if len(frames) <= count:
        return list(frames)
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in picks]
