"""What a benchmark run found, what it adds up to, and the files it is written to.

Each variant gets, from each system, a score for every banked item. A variant of a banked source
is a positive (its item should match); a variant of a distractor is a negative (nothing should).

- Recall at zero false positives: the threshold is the highest score any negative gets for any
  item; a positive counts when its own item scores above it. One threshold per system, for all
  families: a deployment runs one operating point, not one per kind of edit.
- At the default rule (Firebreak: verdict "match"; vPDQ: ≥ 80 % of query frames; TMK: level-1 and
  level-2 ≥ 0.7): false positives are negatives flagged at all, recall counts positives whose own
  item is flagged.
- Segment accuracy (excerpts and compilations, systems that report segments): a positive is
  within 1 s when every end of the reported query and item segments is within 1 s of the truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

FIREBREAK = "Firebreak"
SEGMENT_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class SystemOutcome:
    """One system on one variant: a score per item (absent: 0), the items its default rule
    flags, seconds spent hashing and matching, and where it placed the expected item if it says."""

    scores: dict[str, float]
    flagged: tuple[str, ...]
    seconds: float
    query_segment: tuple[float, float] | None = None
    item_segment: tuple[float, float] | None = None
    error: str | None = None

    @property
    def best_score(self) -> float:
        return max(self.scores.values(), default=0.0)


@dataclass(frozen=True)
class VariantOutcome:
    """A variant, what it should match (None: a distractor's variant), and each system's answer."""

    variant: str
    family: str
    strength: str
    source: str
    expected_item: str | None
    true_query_segment: tuple[float, float] | None
    true_item_segment: tuple[float, float] | None
    systems: dict[str, SystemOutcome]

    @property
    def positive(self) -> bool:
        return self.expected_item is not None

    def score(self, system: str) -> float:
        """The expected item's score for a positive; the best score of any item for a negative."""
        outcome = self.systems[system]
        if self.expected_item is None:
            return outcome.best_score
        return outcome.scores.get(self.expected_item, 0.0)


@dataclass(frozen=True)
class SegmentAccuracy:
    variants: int
    located: int
    within_tolerance: float
    mean_error_s: float | None


@dataclass(frozen=True)
class SystemSummary:
    system: str
    positives: int
    negatives: int
    zero_fp_threshold: float
    recall_at_zero_fp: float
    recall_by_family: dict[str, float]
    recall_at_default: float
    false_positives_at_default: int
    mean_seconds_per_variant: float
    segments: SegmentAccuracy | None


@dataclass(frozen=True)
class RunTiming:
    making_variants_s: float
    banking_s: float
    matching_s: float
    total_s: float


@dataclass(frozen=True)
class BenchRun:
    date: str
    banked: tuple[str, ...]
    distractors: tuple[str, ...]
    systems: tuple[str, ...]
    families: tuple[str, ...]
    outcomes: tuple[VariantOutcome, ...]
    summaries: tuple[SystemSummary, ...]
    timing: RunTiming
    failed_variants: dict[str, str] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)


def zero_fp_threshold(negative_scores: Iterable[float]) -> float:
    """The score a positive must beat for no negative to be flagged (0 with no negatives)."""
    return max(negative_scores, default=0.0)


def recall_at_zero_fp(positive_scores: Sequence[float], threshold: float) -> float:
    """Share of positives scoring strictly above `threshold` (0 with no positives)."""
    if not positive_scores:
        return 0.0
    return sum(1 for s in positive_scores if s > threshold) / len(positive_scores)


def segment_error(
    true_query: tuple[float, float],
    true_item: tuple[float, float],
    found_query: tuple[float, float],
    found_item: tuple[float, float],
) -> float:
    """The largest distance, in seconds, between an end of a reported segment and the truth."""
    pairs = zip((*true_query, *true_item), (*found_query, *found_item), strict=True)
    return max(abs(t - f) for t, f in pairs)


def summarise(
    outcomes: Sequence[VariantOutcome], system: str, families: Sequence[str]
) -> SystemSummary:
    """Every metric of one system over a run's outcomes."""
    positives = [o for o in outcomes if o.positive]
    negatives = [o for o in outcomes if not o.positive]
    threshold = zero_fp_threshold(o.score(system) for o in negatives)
    by_family = {
        family: recall_at_zero_fp(
            [o.score(system) for o in positives if o.family == family], threshold
        )
        for family in families
        if any(o.family == family for o in positives)
    }
    flagged_right = sum(1 for o in positives if o.expected_item in o.systems[system].flagged)
    seconds = [o.systems[system].seconds for o in outcomes]
    return SystemSummary(
        system=system,
        positives=len(positives),
        negatives=len(negatives),
        zero_fp_threshold=threshold,
        recall_at_zero_fp=recall_at_zero_fp([o.score(system) for o in positives], threshold),
        recall_by_family=by_family,
        recall_at_default=flagged_right / len(positives) if positives else 0.0,
        false_positives_at_default=sum(1 for o in negatives if o.systems[system].flagged),
        mean_seconds_per_variant=sum(seconds) / len(seconds) if seconds else 0.0,
        segments=segment_accuracy(positives, system),
    )


def segment_accuracy(positives: Sequence[VariantOutcome], system: str) -> SegmentAccuracy | None:
    """How well `system` placed excerpts and compilations; None when it never reports segments."""
    if all(o.systems[system].item_segment is None for o in positives):
        return None
    cases = [
        o for o in positives if o.true_query_segment is not None and o.true_item_segment is not None
    ]
    if not cases:
        return None
    errors = []
    for o in cases:
        found = o.systems[system]
        if found.query_segment is None or found.item_segment is None:
            continue
        assert o.true_query_segment is not None and o.true_item_segment is not None
        errors.append(
            segment_error(
                o.true_query_segment, o.true_item_segment, found.query_segment, found.item_segment
            )
        )
    within = sum(1 for e in errors if e <= SEGMENT_TOLERANCE_S)
    return SegmentAccuracy(
        variants=len(cases),
        located=len(errors),
        within_tolerance=within / len(cases),
        mean_error_s=sum(errors) / len(errors) if errors else None,
    )


def write_json(run: BenchRun, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(run), indent=1) + "\n")
    return path


def write_chart(run: BenchRun, path: Path) -> Path:
    """Bars of recall at zero false positives per family (and overall), one colour a system."""
    summaries = run.summaries
    families = [f for f in run.families if f in summaries[0].recall_by_family] + ["overall"]
    fig = Figure(figsize=(max(10.0, 0.55 * len(families) + 2), 5.2), dpi=110)
    ax = fig.add_subplot()
    width = 0.8 / len(summaries)
    colours = ("#d9480f", "#1c7ed6", "#5c940d", "#7048e8")
    for i, summary in enumerate(summaries):
        values = [summary.recall_by_family.get(f, 0.0) for f in families[:-1]]
        values.append(summary.recall_at_zero_fp)
        xs = [x + (i - (len(summaries) - 1) / 2) * width for x in range(len(families))]
        ax.bar(xs, values, width, label=summary.system, color=colours[i % len(colours)])
    ax.set_xticks(range(len(families)), families, rotation=55, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall at zero false positives")
    positives = summaries[0].positives
    negatives = summaries[0].negatives
    ax.set_title(
        f"Manipulated copies: {positives} of banked clips, {negatives} of distractors ({run.date})",
        fontsize=10,
        pad=24,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        fontsize=8,
        ncols=len(summaries),
        frameon=False,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
