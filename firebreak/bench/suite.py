"""`firebreak bench variants`: the manipulation suite run through Firebreak and its anchors.

1. Make every edit of the suite of every source (banked and distractor) with ffmpeg, cached by
   source and manipulation, in parallel.
2. Bank the banked sources into a fresh FIREBREAK_HOME; hash them for the anchors (vPDQ, TMK).
3. Match every variant with each system, in worker processes (one Firebreak per process over the
   same store), and add the results up (`report.summarise`).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from firebreak.bench.anchors import (
    TMK,
    VPDQ,
    AnchorScores,
    VpdqHash,
    load_tmk,
    save_tmk,
    tmk_hash,
    tmk_matches,
    tmk_scores,
    vpdq_hash,
    vpdq_matches,
    vpdq_scores,
)
from firebreak.bench.clips import fetch_real_clips
from firebreak.bench.report import (
    FIREBREAK,
    BenchRun,
    RunTiming,
    SystemOutcome,
    VariantOutcome,
    summarise,
)
from firebreak.bench.variants import (
    SUITE,
    Edit,
    FfmpegFailed,
    SourceClip,
    VariantPlan,
    file_digest,
    ken_burns_clip,
    lavfi_clip,
    materialise_variant,
    plan_variant,
    probe_source,
    quick_suite,
)
from firebreak.errors import FirebreakError
from firebreak.service import Firebreak
from firebreak.settings import Settings

BENCH_BANK = "bench-known"
SYSTEMS = (FIREBREAK, VPDQ, TMK)
MEDIA_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")

# The default run: real filmed clips, plus clips made with ffmpeg from real photographs (a slow
# zoom and pan, as news footage of a still is made) and from lavfi's generators.
DEFAULT_BANKED_CLIPS = ("bikes.mp4", "cockatoo.mp4", "bigbuckbunny.mp4")
DEFAULT_DISTRACTOR_CLIPS = ("carphone_pristine.mp4", "realshort.mp4")
QUICK_BANKED_CLIPS = ("bikes.mp4",)
QUICK_DISTRACTOR_CLIPS = ("carphone_pristine.mp4",)

ProgressFn = Callable[[str, int, int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class BenchConfig:
    banked: tuple[Path, ...]
    distractors: tuple[Path, ...]
    edits: tuple[Edit, ...]
    cache_dir: Path
    settings: Settings
    workers: int = 2


def suite_edits(quick: bool) -> tuple[Edit, ...]:
    return quick_suite() if quick else SUITE


def media_files(folder: Path) -> tuple[Path, ...]:
    """The videos in `folder`, by name."""
    return tuple(
        sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    )


def default_sources(
    clips_dir: Path, cache_dir: Path, quick: bool
) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """Banked and distractor sources of the default run, fetching and making what is missing."""
    clips = fetch_real_clips(clips_dir)
    if quick:
        return (
            tuple(clips[n] for n in QUICK_BANKED_CLIPS),
            tuple(clips[n] for n in QUICK_DISTRACTOR_CLIPS),
        )
    made = cache_dir / "sources"
    made.mkdir(parents=True, exist_ok=True)

    def make(name: str, maker: Callable[[Path], Path]) -> Path:
        path = made / name
        if not path.exists():
            partial = made / f"part-{name}"
            maker(partial)
            partial.replace(path)
        return path

    banked = (
        *(clips[n] for n in DEFAULT_BANKED_CLIPS),
        make("astronaut-pan.mp4", lambda p: ken_burns_clip(clips["astronaut.png"], 12, p)),
        make("mandelbrot.mp4", lambda p: lavfi_clip("mandelbrot", 12, p)),
    )
    distractors = (
        *(clips[n] for n in DEFAULT_DISTRACTOR_CLIPS),
        make("chelsea-pan.mp4", lambda p: ken_burns_clip(clips["chelsea.png"], 10, p)),
        make("life.mp4", lambda p: lavfi_clip("life", 10, p)),
    )
    return banked, distractors


def plan_suite(
    edits: Sequence[Edit],
    banked: Sequence[SourceClip],
    distractors: Sequence[SourceClip],
    filler: Callable[[], SourceClip],
) -> list[VariantPlan]:
    """Every edit of every source. Other footage (picture-in-picture, stacks, compilations) is a
    distractor, never the source itself, so a banked item only ever appears in its own variants;
    `filler` makes some when there is no other distractor."""
    plans = []
    for index, source in enumerate((*banked, *distractors)):
        others = [d for d in distractors if d.digest != source.digest]
        for edit in edits:
            other = None
            if edit.needs_other:
                other = others[index % len(others)] if others else filler()
            plans.append(plan_variant(edit, source, other))
    return plans


def run_variant_bench(config: BenchConfig, on_progress: ProgressFn | None = None) -> BenchRun:
    """Make, bank, match and add up (see the module docstring)."""
    report = on_progress or (lambda stage, done, total: None)
    started = time.monotonic()
    banked = [probe_source(p) for p in config.banked]
    distractors = [probe_source(p) for p in config.distractors]
    names = [s.name for s in banked]
    if len(set(names)) != len(names):
        raise FirebreakError(f"banked sources need distinct file names: {', '.join(names)}")
    filler_cache: list[SourceClip] = []

    def filler() -> SourceClip:
        if not filler_cache:
            path = config.cache_dir / "sources" / "filler-cellauto.mp4"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                lavfi_clip("cellauto", 10, path)
            filler_cache.append(probe_source(path))
        return filler_cache[0]

    plans = plan_suite(config.edits, banked, distractors, filler)
    variants, failed = _make_variants(plans, config, report)
    made = time.monotonic()

    anchors_dir = config.cache_dir / "anchors"
    with tempfile.TemporaryDirectory(prefix="firebreak-bench-") as home:
        # review_score 0: Firebreak lists every item it scores, so the zero-FP threshold sees the
        # weak scores negatives get; verdicts still follow match_score.
        settings = config.settings.model_copy(update={"home": Path(home), "review_score": 0.0})
        _bank_sources(settings, banked, report)
        context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        with ProcessPoolExecutor(config.workers, mp_context=context) as pool:
            references = _run_all(
                pool,
                [(_hash_reference, s, anchors_dir) for s in banked],
                report,
                "hashing banked clips for the anchors",
            )
            banked_at = time.monotonic()
            setup = _WorkerSetup(
                settings=settings,
                anchors_dir=anchors_dir,
                vpdq_items={s.name: r[0] for s, r in zip(banked, references, strict=True)},
                tmk_items={
                    s.name: (s.digest, r[1]) for s, r in zip(banked, references, strict=True)
                },
            )
            banked_digests = {s.digest for s in banked}
            jobs = [
                _Job(
                    plan.name,
                    path,
                    plan.source.name if plan.source.digest in banked_digests else None,
                )
                for plan, path in variants
            ]
            answers = _run_all(pool, [(_evaluate, job, setup) for job in jobs], report, "matching")
    finished = time.monotonic()

    outcomes = tuple(
        VariantOutcome(
            variant=plan.name,
            family=plan.edit.family,
            strength=plan.edit.strength,
            source=plan.source.name,
            expected_item=job.expected_item,
            true_query_segment=plan.query_segment if job.expected_item else None,
            true_item_segment=plan.item_segment if job.expected_item else None,
            systems=answer,
        )
        for (plan, _), job, answer in zip(variants, jobs, answers, strict=True)
    )
    families = tuple(dict.fromkeys(e.family for e in config.edits))
    return BenchRun(
        date=dt.date.today().isoformat(),
        banked=tuple(names),
        distractors=tuple(s.name for s in distractors),
        systems=SYSTEMS,
        families=families,
        outcomes=outcomes,
        summaries=tuple(summarise(outcomes, system, families) for system in SYSTEMS),
        timing=RunTiming(
            making_variants_s=round(made - started, 1),
            banking_s=round(banked_at - made, 1),
            matching_s=round(finished - banked_at, 1),
            total_s=round(finished - started, 1),
        ),
        failed_variants=failed,
        settings=_settings_summary(config),
    )


def _bank_sources(settings: Settings, banked: Sequence[SourceClip], report: ProgressFn) -> None:
    fb = Firebreak(settings)
    try:
        fb.create_bank(BENCH_BANK)
        for i, source in enumerate(banked):
            report("banking", i, len(banked))
            fb.bank_file(BENCH_BANK, source.path)
        report("banking", len(banked), len(banked))
    finally:
        fb.close()


def _make_variants(
    plans: list[VariantPlan], config: BenchConfig, report: ProgressFn
) -> tuple[list[tuple[VariantPlan, Path]], dict[str, str]]:
    """Each plan's file (made by ffmpeg in threads: the work is in the subprocesses)."""
    made: dict[int, Path] = {}
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(config.workers) as pool:
        futures = {
            pool.submit(materialise_variant, plan, config.cache_dir): i
            for i, plan in enumerate(plans)
        }
        for done, future in enumerate(as_completed(futures), start=1):
            report("making variants", done, len(plans))
            i = futures[future]
            try:
                made[i] = future.result()
            except FfmpegFailed as exc:
                failed[plans[i].name] = str(exc)
    return [(plans[i], made[i]) for i in sorted(made)], failed


def _run_all(
    pool: ProcessPoolExecutor,
    calls: Sequence[tuple[Any, ...]],
    report: ProgressFn,
    stage: str,
) -> list[Any]:
    """Results of `fn(*args)` for each call, in order, reporting progress as they finish."""
    futures: dict[Future[Any], int] = {pool.submit(c[0], *c[1:]): i for i, c in enumerate(calls)}
    results: list[Any] = [None] * len(calls)
    report(stage, 0, len(calls))
    for done, future in enumerate(as_completed(futures), start=1):
        results[futures[future]] = future.result()
        report(stage, done, len(calls))
    return results


def _settings_summary(config: BenchConfig) -> dict[str, object]:
    s = config.settings
    return {
        "match_score": s.match_score,
        "review_score": 0.0,
        "thresholds": dict(s.thresholds),
        "query_fps": s.query_fps,
        "bank_fps": s.bank_fps,
        "workers": config.workers,
        "edits": len(config.edits),
    }


# What runs in the worker processes.


@dataclass(frozen=True)
class _Job:
    variant: str
    path: Path
    expected_item: str | None


@dataclass(frozen=True)
class _WorkerSetup:
    settings: Settings
    anchors_dir: Path
    vpdq_items: dict[str, VpdqHash]
    tmk_items: dict[str, tuple[str, Path | None]]


class _WorkerState:
    """What a worker keeps between jobs: its Firebreak and the banked items' TMK features."""

    def __init__(self, setup: _WorkerSetup) -> None:
        import faiss  # one thread a process: the processes already share out the cores

        faiss.omp_set_num_threads(1)
        self.fb = Firebreak(setup.settings)
        self.tmk_items = {
            name: (digest, load_tmk(path))
            for name, (digest, path) in setup.tmk_items.items()
            if path is not None
        }


_state: dict[Path, _WorkerState] = {}


def _worker_state(setup: _WorkerSetup) -> _WorkerState:
    home = setup.settings.home
    if home not in _state:
        _state[home] = _WorkerState(setup)
    return _state[home]


def _hash_reference(source: SourceClip, anchors_dir: Path) -> tuple[VpdqHash, Path | None]:
    """A banked source's vPDQ hash and TMK feature file (None when TMK cannot hash it)."""
    vpdq = vpdq_hash(source.path, source.digest, anchors_dir)
    tmk_path = anchors_dir / f"{source.digest}.tmk.npz"
    if not tmk_path.exists():
        features = tmk_hash(source.path)
        if features is None:
            return vpdq, None
        save_tmk(features, tmk_path)
    return vpdq, tmk_path


def _evaluate(job: _Job, setup: _WorkerSetup) -> dict[str, SystemOutcome]:
    state = _worker_state(setup)
    digest = file_digest(job.path)
    vpdq = vpdq_scores(job.path, digest, setup.vpdq_items, setup.anchors_dir)
    tmk = tmk_scores(job.path, digest, state.tmk_items, setup.anchors_dir)
    return {
        FIREBREAK: _firebreak_outcome(state.fb, job),
        VPDQ: _anchor_outcome(vpdq, vpdq_matches),
        TMK: _anchor_outcome(tmk, tmk_matches),
    }


def _firebreak_outcome(fb: Firebreak, job: _Job) -> SystemOutcome:
    started = time.monotonic()
    try:
        result = fb.match_file(job.path).to_json()
    except FirebreakError as exc:
        return SystemOutcome({}, (), time.monotonic() - started, error=str(exc))
    seconds = time.monotonic() - started
    matches = result["matches"]
    assert isinstance(matches, list)
    scores: dict[str, float] = {}
    segments: dict[str, tuple[Any, Any]] = {}
    for m in matches:
        if m["score"] > scores.get(m["item"], -1.0):
            scores[m["item"]] = float(m["score"])
            segments[m["item"]] = (m["query_segment"], m["item_segment"])
    flagged: tuple[str, ...] = ()
    if result["verdict"] == "match":
        flagged = tuple(n for n, s in scores.items() if s >= fb.settings.match_score)
    found_query, found_item = segments.get(job.expected_item or "", (None, None))
    return SystemOutcome(scores, flagged, seconds, _segment(found_query), _segment(found_item))


def _segment(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


def _anchor_outcome(answer: AnchorScores, matches: Callable[[float], bool]) -> SystemOutcome:
    flagged = tuple(name for name, score in answer.scores.items() if matches(score))
    return SystemOutcome(answer.scores, flagged, answer.seconds)
