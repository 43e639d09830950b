"""The matcher index at scale: Firebreak's MIH against faiss's flat and multi-hash indices, side by
side in one run, at 1 M and 10 M 256-bit codes, on random and on clustered codes.

Each (size, codes, index) is measured in its own child process, so that memory figures are its
own: the parent makes the codes from a seed and saves them; the child loads them, builds the
index, and reports its build time, the growth of its resident memory (VmRSS after the build minus
before; peak = VmHWM reset before the build), per-query latency (one query a call, single-threaded:
faiss is set to one OpenMP thread, the MIH kernel uses one core; wall-clock, and CPU time of the
thread, which leaves out waits for a core when other processes share the machine), the batch cost
a query, and its answers on a sample for recall. The truth is faiss's flat index (exhaustive and
exact), timed on fewer queries (it scans everything: over 1 ms a query a million codes).

Codes:
- random: uniform 256-bit codes (the worst case for any index: no structure to use; also how
  NOTES.md's faiss figures were taken);
- clustered: like a bank of video frames. Codes come in "shots" of consecutive frames (sizes
  geometric, mean ~20, up to 600) within a few bits (mostly ≤ 8) of the shot's centre; 5 % of the
  centres are themselves within 16–40 bits of one of 200 popular "template" frames (black frames,
  studio backdrops, logos), so some substrings are far more common than others.

Queries (per workload, the same for every index): 50 % noisy copies of a banked code at a
distance spread evenly over 0–31 bits (the edge of the radius included), 10 % near misses at
32–40 bits from a banked code, 40 % fresh random codes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from firebreak.errors import FirebreakError

RADIUS = 31
INDICES = ("faiss-flat", "firebreak-mih", "faiss-mih-12x21")  # the flat index first: the truth
WORKLOADS = ("random", "clustered")
Codes = npt.NDArray[np.uint8]


class IndexBenchFailed(FirebreakError):
    """A measuring child process failed."""


@dataclass(frozen=True)
class Job:
    """One measurement: which codes, which index, how many queries."""

    size: int
    workload: str
    index: str
    seed: int
    timed_queries: int
    recall_queries: int


# --- the codes ---------------------------------------------------------------------------------


def make_codes(workload: str, n: int, seed: int) -> Codes:
    """`n` codes of a workload, the same for the same seed."""
    rng = np.random.default_rng(seed)
    if workload == "random":
        return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    if workload == "clustered":
        return _clustered_codes(rng, n)
    raise ValueError(f"unknown workload {workload}")


def _clustered_codes(rng: np.random.Generator, n: int) -> Codes:
    sizes = np.minimum(rng.geometric(1 / 20, size=n // 10 + 16), 600)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    sizes = sizes[sizes > 0]
    centres = rng.integers(0, 256, size=(len(sizes), 32), dtype=np.uint8)
    templates = rng.integers(0, 256, size=(200, 32), dtype=np.uint8)
    popular = rng.random(len(sizes)) < 0.05
    n_popular = int(popular.sum())
    centres[popular] = _flip(
        rng, templates[rng.integers(0, 200, n_popular)], rng.integers(16, 41, n_popular), False
    )
    codes = np.repeat(centres, sizes, axis=0)
    flips = np.minimum(rng.geometric(1 / 3, size=n) - 1, 12)
    return _flip(rng, codes, flips, distinct=False)


def _flip(
    rng: np.random.Generator, codes: Codes, counts: npt.NDArray[np.int64], distinct: bool = True
) -> Codes:
    """Each row with `counts[row]` random bits flipped: distinct bits (the exact distance; an
    N × 256 draw, for query sets), or bits drawn independently, a repeat undoing a flip (for
    millions of banked frames, where "within a few bits" is all that matters)."""
    out = codes.copy()
    counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(rng.random((len(out), 256)), axis=1) if distinct else None
    for slot in range(int(counts.max(initial=0))):
        rows = np.nonzero(counts > slot)[0]
        bits = order[rows, slot] if order is not None else rng.integers(0, 256, size=len(rows))
        out[rows, bits >> 3] ^= (1 << (7 - (bits & 7))).astype(np.uint8)
    return out


def make_queries(codes: Codes, n: int, seed: int) -> tuple[Codes, npt.NDArray[np.int64]]:
    """Queries and the distance each was planted at from a banked code (-1: fresh random)."""
    rng = np.random.default_rng(seed + 1)
    n_copy = n // 2
    n_near = n // 10
    n_fresh = n - n_copy - n_near
    copy_d = np.arange(n_copy) % (RADIUS + 1)
    near_d = 32 + np.arange(n_near) % 9
    planted = np.concatenate([copy_d, near_d]).astype(np.int64)
    sources = codes[rng.integers(0, len(codes), size=len(planted))]
    queries = np.concatenate(
        [_flip(rng, sources, planted), rng.integers(0, 256, size=(n_fresh, 32), dtype=np.uint8)]
    )
    planted = np.concatenate([planted, np.full(n_fresh, -1, dtype=np.int64)])
    order = rng.permutation(n)
    return queries[order], planted[order]


# --- one measurement, in a child process -------------------------------------------------------


def _rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def measure(job: Job, data: Path) -> dict[str, Any]:
    """In a fresh process: build one index over the workload saved in `data`, measure it."""
    import faiss

    from firebreak.index.mih import Layout, MIHIndex

    faiss.omp_set_num_threads(1)
    codes = np.load(data / "codes.npy")
    queries = np.load(data / "queries.npy")
    ids = np.arange(job.size, dtype=np.int64)
    warm = np.random.default_rng(0).integers(0, 256, size=(4, 32), dtype=np.uint8)
    if job.index == "firebreak-mih":  # load the compiled kernels before the baseline
        tiny = MIHIndex(delta_limit=0, layout=Layout.even(16))
        tiny_codes = np.random.default_rng(1).integers(0, 256, size=(4096, 32), dtype=np.uint8)
        tiny.add(np.arange(4096, dtype=np.int64), tiny_codes)
        tiny.search(warm, RADIUS)
        del tiny
    gc.collect()
    rss_before, _ = _rss_mb()
    _reset_peak()
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    search: Callable[[Codes], tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]
    if job.index == "firebreak-mih":
        mih = MIHIndex()
        mih.add(ids, codes)
        mih.merge()
        build_s = time.perf_counter() - started
        layout = mih.layout
        extra["layout_bits"] = list(layout.bits) if layout else []
        extra["structure_mb"] = round(mih.nbytes / 2**20, 1)

        def search(q: Codes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
            result = mih.search(q, RADIUS)
            return result.query_rows, result.ids
    else:
        index: Any
        if job.index == "faiss-flat":
            index = faiss.IndexBinaryFlat(256)
        else:
            index = faiss.IndexBinaryMultiHash(256, 12, 21)
            index.nflip = 1
        index.add(codes)
        build_s = time.perf_counter() - started

        def search(q: Codes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
            # faiss keeps distances strictly below the radius it is given.
            limits, _, labels = index.range_search(q, RADIUS + 1)
            rows = np.repeat(np.arange(len(q)), np.diff(limits.astype(np.int64)))
            return rows.astype(np.int64), labels.astype(np.int64)

    rss_after, peak = _rss_mb()
    del codes
    search(warm)  # compile or warm caches
    latencies, cpu = _latencies(search, queries[: job.timed_queries])
    sample = queries[: job.recall_queries]
    t = time.perf_counter()
    rows, found = search(sample)
    batch_ms = (time.perf_counter() - t) * 1e3 / max(1, len(sample))
    if job.index == "firebreak-mih":
        extra |= _save_and_load(mih, queries[: job.timed_queries], sample, rows, found)
    return {
        **asdict(job),
        "build_s": round(build_s, 2),
        "rss_delta_mb": round(rss_after - rss_before, 1),
        "peak_rss_delta_mb": round(peak - rss_before, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 4),
        "p99_ms": round(float(np.percentile(latencies, 99)), 4),
        "mean_ms": round(float(latencies.mean()), 4),
        # CPU time of the searching thread: the same without the waits for a core that other
        # processes on a busy machine add to wall-clock latency.
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 4),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 4),
        "batch_ms_per_query": round(batch_ms, 4),
        "load_avg": list(os.getloadavg()),
        "sample_rows": rows,
        "sample_ids": found,
        **extra,
    }


def _latencies(
    search: Callable[[Codes], object], queries: Codes
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Milliseconds a query, one query a call: wall-clock and the thread's CPU time."""
    wall = []
    cpu = []
    for q in queries:
        tick = time.perf_counter_ns()
        cpu_tick = time.thread_time_ns()
        search(q[None])
        cpu.append(time.thread_time_ns() - cpu_tick)
        wall.append(time.perf_counter_ns() - tick)
    return np.array(wall) / 1e6, np.array(cpu) / 1e6


def _save_and_load(
    mih: Any,
    timed: Codes,
    sample: Codes,
    rows: npt.NDArray[np.int64],
    found: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """Snapshot to disk, map it back, check the mapped index answers the same, and time it once
    its pages are in memory (a first pass over the queries touches them)."""
    from firebreak.index.mih import MIHIndex

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.mih"
        t = time.perf_counter()
        mih.save(path)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        loaded = MIHIndex.load(path)
        load_s = time.perf_counter() - t
        again = loaded.search(sample, RADIUS)
        same = bool(np.array_equal(again.query_rows, rows) and np.array_equal(again.ids, found))
        loaded.search(timed, RADIUS)
        wall, cpu = _latencies(lambda q: loaded.search(q, RADIUS), timed)
        size_mb = path.stat().st_size / 2**20
    return {
        "save_s": round(save_s, 2),
        "load_s": round(load_s, 3),
        "file_mb": round(size_mb, 1),
        "loaded_answers_same": same,
        "mapped_p50_ms": round(float(np.percentile(wall, 50)), 4),
        "mapped_p99_ms": round(float(np.percentile(wall, 99)), 4),
        "mapped_cpu_p50_ms": round(float(np.percentile(cpu, 50)), 4),
        "mapped_cpu_p99_ms": round(float(np.percentile(cpu, 99)), 4),
    }


def compare_layouts(
    size: int, tables: tuple[int, ...] = (16, 13, 12, 11), queries: int = 1000, seed: int = 8
) -> list[dict[str, Any]]:
    """The substring layouts side by side on random codes in this process (how `choose_layout`
    was chosen): build time, bytes, probes a query, per-query CPU time at radius 31."""
    from firebreak.index.mih import Layout, MIHIndex

    codes = make_codes("random", size, seed)
    bank_queries, _ = make_queries(codes, queries, seed)
    ids = np.arange(size, dtype=np.int64)
    found = []
    for m in tables:
        layout = Layout.even(m)
        index = MIHIndex(delta_limit=0, layout=layout)
        t = time.perf_counter()
        index.add(ids, codes)
        build_s = time.perf_counter() - t
        index.search(bank_queries[:4], RADIUS)
        _, cpu = _latencies(functools.partial(index.search, max_distance=RADIUS), bank_queries)
        found.append(
            {
                "size": size,
                "bits": list(layout.bits),
                "radii": list(layout.radii(RADIUS)),
                "expected_lookups_and_candidates": round(layout.probe_cost(RADIUS, size)),
                "build_s": round(build_s, 2),
                "structure_mb": round(index.nbytes / 2**20, 1),
                "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 4),
                "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 4),
            }
        )
        del index
        gc.collect()
    return found


# --- the run -----------------------------------------------------------------------------------


def child_main() -> None:
    """Entry point of the measuring child: `JOB-JSON DATA-DIR`; writes result.json and
    sample.npz into DATA-DIR (nothing is printed: the parent reports)."""
    job = Job(**json.loads(sys.argv[1]))
    data = Path(sys.argv[2])
    result = measure(job, data)
    np.savez(data / "sample.npz", rows=result.pop("sample_rows"), ids=result.pop("sample_ids"))
    (data / "result.json").write_text(json.dumps(result))


def _measure_in_child(job: Job, data: Path) -> tuple[dict[str, Any], dict[int, set[int]]]:
    for name in ("result.json", "sample.npz"):
        (data / name).unlink(missing_ok=True)
    command = "from firebreak.bench.index_scale import child_main; child_main()"
    done = subprocess.run(
        [sys.executable, "-c", command, json.dumps(asdict(job)), str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise IndexBenchFailed(f"{job.index} on {job.size:,} {job.workload} codes: {tail[0]}")
    result = json.loads((data / "result.json").read_text())
    with np.load(data / "sample.npz") as sample:
        answers = _by_query(sample["rows"], sample["ids"], job.recall_queries)
    return result, answers


def run_index_bench(
    sizes: tuple[int, ...] = (1_000_000, 10_000_000),
    queries: int = 2000,
    out_dir: Path | None = Path("bench/results"),
    progress: Callable[[str], None] | None = None,
    workloads: tuple[str, ...] = WORKLOADS,
    flat_queries: int | None = None,
    recall_queries: int = 300,
    seed: int = 8,
) -> dict[str, Any]:
    """Measure every (size, workload, index) in turn; write index-<date>.json into `out_dir`.

    faiss's flat index is timed on `flat_queries` queries (default: about 10^8 / size, at least
    the recall sample, so ~1 s a workload); its answers on the recall sample are the truth."""
    say = progress or (lambda _: None)
    n_recall = min(recall_queries, queries)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for size in sizes:
        for workload in workloads:
            with tempfile.TemporaryDirectory(prefix="firebreak-index-bench-") as tmp:
                data = Path(tmp)
                t = time.perf_counter()
                codes = make_codes(workload, size, seed)
                bank_queries, planted = make_queries(codes, queries, seed)
                np.save(data / "codes.npy", codes)
                np.save(data / "queries.npy", bank_queries)
                del codes
                say(f"{size:,} {workload} codes made in {time.perf_counter() - t:.1f} s")
                truth: dict[int, set[int]] = {}
                for name in INDICES:
                    timed = queries
                    if name == "faiss-flat":
                        timed = flat_queries or max(n_recall, min(queries, 10**8 // size))
                    job = Job(size, workload, name, seed, timed, n_recall)
                    result, answers = _measure_in_child(job, data)
                    if name == "faiss-flat":
                        truth = answers
                    result |= _recall(truth, answers, planted[:n_recall])
                    say(
                        f"  {name}: build {result['build_s']} s, +{result['rss_delta_mb']} MB, "
                        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                        f"recall {result['recall']:.4f}"
                    )
                    rows.append(result)
    today = dt.date.today().isoformat()
    report: dict[str, Any] = {
        "date": today,
        "radius": RADIUS,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "elapsed_s": round(time.perf_counter() - started, 1),
        "results": rows,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"index-{today}.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        report["path"] = str(path)
    return report


def _by_query(
    rows: npt.NDArray[np.int64], ids: npt.NDArray[np.int64], n: int
) -> dict[int, set[int]]:
    answers: dict[int, set[int]] = {q: set() for q in range(n)}
    for q, i in zip(rows.tolist(), ids.tolist(), strict=True):
        answers[q].add(i)
    return answers


def _recall(
    truth: dict[int, set[int]], answers: dict[int, set[int]], planted: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Share of true (query, code) pairs found; `exact` when the answers are the same sets;
    recall of the planted copies by their planted distance band (where a partial index fails)."""
    expected = sum(len(v) for v in truth.values())
    found = sum(len(truth[q] & answers.get(q, set())) for q in truth)
    extra = sum(len(answers.get(q, set()) - truth[q]) for q in truth)
    queries_missed = sum(1 for q in truth if truth[q] - answers.get(q, set()))
    bands: dict[str, float] = {}
    for low, high in ((0, 23), (24, 31)):
        pairs = [q for q in truth if low <= planted[q] <= high]
        want = sum(len(truth[q]) for q in pairs)
        got = sum(len(truth[q] & answers.get(q, set())) for q in pairs)
        bands[f"{low}-{high}"] = round(got / want, 4) if want else 1.0
    return {
        "recall": found / expected if expected else 1.0,
        "recall_by_planted_distance": bands,
        "true_pairs": expected,
        "false_pairs": extra,
        "queries_with_misses": queries_missed,
        "exact": found == expected and extra == 0,
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table, one line per (size, workload, index)."""
    header = (
        f"{'codes':>11} {'workload':<10} {'index':<16} {'build s':>8} {'RSS MB':>8} "
        f"{'peak MB':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'cpu p99':>8} "
        f"{'batch ms':>9} {'recall':>7}"
    )
    lines = [f"radius {report['radius']}, {report['machine']['cores']} cores", header]
    for r in report["results"]:
        lines.append(
            f"{r['size']:>11,} {r['workload']:<10} {r['index']:<16} {r['build_s']:>8.1f} "
            f"{r['rss_delta_mb']:>8.0f} {r['peak_rss_delta_mb']:>8.0f} {r['p50_ms']:>8.3f} "
            f"{r['p99_ms']:>8.3f} {r.get('cpu_p50_ms', float('nan')):>8.3f} "
            f"{r.get('cpu_p99_ms', float('nan')):>8.3f} {r['batch_ms_per_query']:>9.3f} "
            f"{r['recall']:>7.4f}"
        )
    if "path" in report:
        lines.append(f"written to {report['path']}")
    return "\n".join(lines)
