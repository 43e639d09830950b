"""A trained detector head: logistic regression over the features the scorers measure.

No single scorer recognises an attack: gunfire-like sounds come from films and games too, camera
shake from sport. A head weighs all their features together, trained on a platform's own labelled
clips (`firebreak train`), and is itself a scorer. It is saved as a small versioned JSON file that
says which scorers feed it, so a live session can rebuild them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from firebreak.classify.base import RiskScore, Scorer, ScoringWindow
from firebreak.errors import FirebreakError

HEAD_FORMAT = "firebreak-head/1"


class HeadInvalid(FirebreakError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class ScorerSpec:
    """Which scorers feed a head, and with what: enough to build them again."""

    impulse: bool = True
    motion: bool = True
    model: str | None = None
    watch_list: str | None = None


@dataclass(frozen=True)
class DetectorHead:
    """Standardised features → weights → logistic probability that a window shows an attack."""

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    scorers: ScorerSpec = field(default_factory=ScorerSpec)
    metrics: Mapping[str, float] = field(default_factory=dict)
    trained_on: Mapping[str, int] = field(default_factory=dict)
    version: str = ""
    """When it was trained (UTC), so that alerts can say which head raised them."""

    def probability(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """P(attack) for each row of features (or for one feature vector)."""
        x = (np.atleast_2d(features) - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = x @ np.asarray(self.weights) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logits, -40, 40))))

    def save(self, path: Path) -> None:
        record = {"format": HEAD_FORMAT, **asdict(self)}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".part")
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True))
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> DetectorHead:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise HeadInvalid(path, f"cannot read a head ({exc})") from None
        if not isinstance(record, dict) or record.get("format") != HEAD_FORMAT:
            raise HeadInvalid(path, f"not a {HEAD_FORMAT} file")
        try:
            head = cls(
                feature_names=tuple(record["feature_names"]),
                mean=tuple(float(v) for v in record["mean"]),
                scale=tuple(float(v) for v in record["scale"]),
                weights=tuple(float(v) for v in record["weights"]),
                bias=float(record["bias"]),
                scorers=ScorerSpec(**record["scorers"]),
                metrics={k: float(v) for k, v in record.get("metrics", {}).items()},
                trained_on={k: int(v) for k, v in record.get("trained_on", {}).items()},
                version=str(record.get("version", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HeadInvalid(path, f"malformed head ({exc})") from None
        sizes = {len(head.feature_names), len(head.mean), len(head.scale), len(head.weights)}
        if len(sizes) != 1:
            raise HeadInvalid(path, "feature names, means, scales and weights differ in length")
        return head


def fit_logistic_head(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    feature_names: Sequence[str],
    scorers: ScorerSpec,
    l2: float = 1e-2,
    iterations: int = 3000,
) -> DetectorHead:
    """Fit a logistic regression (L2-regularised, classes weighted equally) by gradient descent."""
    if len(features) == 0 or labels.all() or not labels.any():
        raise FirebreakError("training needs windows of both attack and benign footage")
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x = (features - mean) / scale
    y = labels.astype(np.float64)
    # Each class weighs half, however many windows it has.
    sample_weight = np.where(labels, 0.5 / labels.sum(), 0.5 / (~labels).sum())
    weights = np.zeros(x.shape[1])
    bias = 0.0
    rate = 0.5
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights + bias, -40, 40)))
        error = (p - y) * sample_weight
        weights -= rate * (x.T @ error + l2 * weights)
        bias -= rate * float(error.sum())
    return DetectorHead(
        tuple(feature_names),
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in weights),
        float(bias),
        scorers,
        version=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


class HeadScorer:
    """A trained head as a scorer: its component scorers read the window, the head decides."""

    def __init__(self, head: DetectorHead, components: Sequence[Scorer]) -> None:
        names = tuple(n for scorer in components for n in scorer.feature_names)
        if names != head.feature_names:
            raise FirebreakError(
                f"the head was trained on features {head.feature_names}, the scorers give {names}"
            )
        self.head = head
        self.components = list(components)

    @property
    def name(self) -> str:
        return "head"

    @property
    def feature_names(self) -> tuple[str, ...]:
        return ("head_probability",)

    def score(self, window: ScoringWindow) -> RiskScore:
        readings = [scorer.score(window) for scorer in self.components]
        features = np.asarray([v for r in readings for v in r.features], dtype=np.float64)
        probability = float(self.head.probability(features)[0])
        evidence: dict[str, object] = {"head_version": self.head.version}
        for reading in readings:
            if reading.evidence:
                evidence[reading.scorer] = dict(reading.evidence)
        return RiskScore(self.name, probability, (probability,), evidence)


def window_features(scorers: Sequence[Scorer], window: ScoringWindow) -> npt.NDArray[np.float64]:
    """Every scorer's features of `window`, in the scorers' order."""
    return np.asarray(
        [v for scorer in scorers for v in scorer.score(window).features], dtype=np.float64
    )
