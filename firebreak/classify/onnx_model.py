"""A picture or clip classifier the operator supplies as an ONNX file, run with onnxruntime.

Firebreak ships no attack-classifier weights; a platform that has trained one (on first-person
attack footage and the benign footage that looks like it: games, paintball, hunting) exports it
to ONNX and points Firebreak at it. The model takes one float32 input of RGB pixels, normalised
per channel, and gives a score per class (logits or probabilities) or one logit. Its input's
shape says what kind of model it is:

- N×3×H×W (NCHW): a picture classifier. A few frames spread over each scoring window are scored
  as one batch, and the window's risk is the highest of their probabilities.
- N×3×T×H×W (NCTHW: X3D, R(2+1)D, SlowFast-style) or N×T×3×H×W (NTCHW: VideoMAE,
  TimeSformer-style): a clip classifier. T frames spread evenly over each window, in time order
  (repeated when the window has fewer), make one clip, and the window's risk is the model's
  probability for it. T is the model's when its shape fixes it, else `clip_frames`.

The channel dimension is the one that is 3 (or named "C"); a 5-D shape where neither dimension 1
nor 2 is, or where both could be, is refused, as is a model with several inputs. H and W are the
model's when fixed, else 224. Either kind gives the same features (`model_max`, `model_mean`:
for a clip model both are the clip's probability), so a trained head can take either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
from PIL import Image

from firebreak.classify.base import RiskScore, ScoringWindow
from firebreak.errors import FirebreakError

_DEFAULT_SIDE = 224  # when the model leaves its input size open

Layout = Literal["NCHW", "NCTHW", "NTCHW"]


class ModelInvalid(FirebreakError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class OnnxImageScorer:
    """Scores a window by the model's probability of `positive_class`.

    A picture model looks at a few of the window's frames, and the window's risk is the highest
    probability among them: one clear frame of an attack is enough to look closer, and smoothing
    over windows damps single-frame flukes. A clip model looks at the window as one clip."""

    path: Path
    positive_class: int = 1
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    frames_per_window: int = 4
    """How many frames a picture model scores per window (at most)."""
    clip_frames: int = 8
    """How many frames make a clip when a clip model leaves its T open."""
    _session: Any = field(init=False, repr=False, compare=False)
    _input: str = field(init=False, repr=False, compare=False)
    _layout: Layout = field(init=False, repr=False, compare=False)
    _length: int = field(init=False, repr=False, compare=False)
    _side: tuple[int, int] = field(init=False, repr=False, compare=False)
    _batch: int | None = field(init=False, repr=False, compare=False)
    """The batch size the model is fixed to (exported with a static batch), else None."""

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
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelInvalid(
                self.path,
                f"the model takes {len(inputs)} inputs ({names}); it must take one: an N×3×H×W "
                "picture batch or an N×3×T×H×W / N×T×3×H×W clip",
            )
        shape = list(inputs[0].shape)
        layout, length = _layout_of(self.path, shape, self.clip_frames)
        height, width = shape[-2:]
        side = (
            height if _fixed(height) else _DEFAULT_SIDE,
            width if _fixed(width) else _DEFAULT_SIDE,
        )
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_input", inputs[0].name)
        object.__setattr__(self, "_layout", layout)
        object.__setattr__(self, "_length", length)
        object.__setattr__(self, "_side", side)
        object.__setattr__(self, "_batch", shape[0] if _fixed(shape[0]) else None)

    @property
    def name(self) -> str:
        return f"model:{self.path.stem}"

    @property
    def layout(self) -> Layout:
        """How the model takes its input: "NCHW" pictures, or "NCTHW" / "NTCHW" clips."""
        return self._layout

    @property
    def feature_names(self) -> tuple[str, ...]:
        return ("model_max", "model_mean")

    def score(self, window: ScoringWindow) -> RiskScore:
        if not window.frames:
            return RiskScore(self.name, 0.0, (0.0, 0.0), {})
        if self._layout != "NCHW":
            return self._score_clip(window)
        frames = _spread(window.frames, self.frames_per_window)
        probabilities = self.probabilities([pixels for _, pixels in frames])
        best = int(np.argmax(probabilities))
        return RiskScore(
            self.name,
            float(probabilities[best]),
            (float(probabilities.max()), float(probabilities.mean())),
            {"frame_time": frames[best][0], "probability": round(float(probabilities[best]), 4)},
        )

    def probabilities(self, pictures: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float64]:
        """The model's probability of the positive class for each RGB picture (picture models)."""
        if self._layout != "NCHW":
            raise FirebreakError(f"{self.path}: a clip model scores clips, not pictures")
        batch = np.stack([self._prepare(p) for p in pictures])
        size = self._batch
        if size is None:
            return self._run(batch, len(pictures))
        # A model exported with a static batch takes exactly that many: run in slices of it,
        # the last one padded by repeating its last picture.
        results = []
        for start in range(0, len(batch), size):
            part = batch[start : start + size]
            rows = len(part)
            if rows < size:
                part = np.concatenate([part, np.repeat(part[-1:], size - rows, axis=0)])
            results.append(self._run(np.ascontiguousarray(part), size)[:rows])
        return np.concatenate(results)

    def clip_probability(self, clip: Sequence[npt.NDArray[np.uint8]]) -> float:
        """The model's probability of the positive class for RGB frames in time order, as many
        as the model's clip length (clip models)."""
        if self._layout == "NCHW":
            raise FirebreakError(f"{self.path}: a picture model scores pictures, not clips")
        if len(clip) != self._length:
            raise ValueError(f"the model takes clips of {self._length} frames, not {len(clip)}")
        frames = np.stack([self._prepare(p) for p in clip])  # T×C×H×W
        if self._layout == "NCTHW":
            frames = frames.transpose(1, 0, 2, 3)
        batch = np.ascontiguousarray(frames[np.newaxis], dtype=np.float32)
        return float(self._run(batch, 1)[0])

    def _score_clip(self, window: ScoringWindow) -> RiskScore:
        frames = _pick(window.frames, self._length)
        probability = self.clip_probability([pixels for _, pixels in frames])
        times = tuple(t for t, _ in frames)
        return RiskScore(
            self.name,
            probability,
            (probability, probability),
            {
                "frame_time": times[0],
                "frame_times": times,
                "probability": round(probability, 4),
            },
        )

    def _run(self, batch: npt.NDArray[np.float32], rows: int) -> npt.NDArray[np.float64]:
        """The positive class's probability for each of the batch's `rows` items."""
        outputs = self._session.run(None, {self._input: batch})
        scores = np.asarray(outputs[0], dtype=np.float64).reshape(rows, -1)
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


def _fixed(dim: object) -> bool:
    """Whether an input dimension has a set size (else it is named, or unknown)."""
    return isinstance(dim, int) and dim > 0


def _layout_of(path: Path, shape: list[object], clip_frames: int) -> tuple[Layout, int]:
    """The input's layout and clip length (1 for pictures), from its shape."""
    shown = "×".join(str(d) if d is not None else "?" for d in shape)
    if len(shape) == 4:
        if shape[1] in (3, "C"):
            return "NCHW", 1
        raise ModelInvalid(path, f"its input is {shown}; a picture model must take N×3×H×W")
    if len(shape) != 5:
        raise ModelInvalid(
            path,
            f"its input is {shown}; it must take an N×3×H×W picture batch "
            "or an N×3×T×H×W / N×T×3×H×W clip",
        )
    first, second = shape[1], shape[2]
    first_channels, second_channels = first in (3, "C"), second in (3, "C")
    if first_channels and second_channels:
        # Both could be the channels: a dimension named "C" says which, else there is no telling.
        first_channels, second_channels = first == "C" != second, second == "C" != first
        if first_channels == second_channels:
            raise ModelInvalid(
                path,
                f"its input is {shown}: ambiguous, dimension 1 and 2 could both be the colour "
                "channels (name one of them C, or fix the clip length to other than 3)",
            )
    elif not first_channels and not second_channels:
        raise ModelInvalid(
            path,
            f"its input is {shown}: neither dimension 1 nor 2 is 3 colour channels, so it is "
            "neither an N×3×T×H×W nor an N×T×3×H×W clip",
        )
    layout: Layout = "NCTHW" if first_channels else "NTCHW"
    frames = second if first_channels else first
    if isinstance(shape[0], int) and shape[0] > 1:
        raise ModelInvalid(path, f"its input is {shown}: a clip model must take one clip at a time")
    if isinstance(frames, int) and frames > 0:
        return layout, frames
    if clip_frames < 1:
        raise ModelInvalid(path, f"clip length {clip_frames}: a clip needs at least one frame")
    return layout, clip_frames


def _spread(
    frames: Sequence[tuple[float, npt.NDArray[np.uint8]]], count: int
) -> list[tuple[float, npt.NDArray[np.uint8]]]:
    """At most `count` frames, evenly spread over the window."""
    if len(frames) <= count:
        return list(frames)
    return _pick(frames, count)


def _pick(
    frames: Sequence[tuple[float, npt.NDArray[np.uint8]]], count: int
) -> list[tuple[float, npt.NDArray[np.uint8]]]:
    """Exactly `count` frames spread evenly over the window from its first to its last, in time
    order; frames are repeated when the window has fewer."""
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in picks]
