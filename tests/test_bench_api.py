"""The HTTP API load test: a short run against a real `firebreak serve` on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firebreak.bench.api import (
    _HIST_EDGES,
    ApiBenchFailed,
    _percentile_s,
    _slope_per_s,
    bench_codes,
    run_api_bench,
)


def test_short_run_reports_lookups_latency_and_memory(tmp_path: Path) -> None:
    report = run_api_bench(tmp_path, seconds=5.0, codes=2000, clients=2)

    assert report.lookups > 0
    assert report.errors == 0, report.error_samples
    assert report.wrong == 0  # near-duplicates match, random codes do not
    assert 0 < report.hits < report.lookups
    assert report.raw_lookups > 0 and report.v1_lookups > 0
    assert report.lookups_per_s > 0
    assert 0 < report.latency_ms["p50"] <= report.latency_ms["p99"] <= report.latency_ms["max"]
    assert report.server_cpu_s > 0 and report.lookups_per_cpu_s > 0
    measured = [s for s in report.rss_samples if s[0] >= 0]
    assert len(measured) >= 5
    assert report.rss_start_mb > 0 and report.rss_max_mb >= report.rss_end_mb > 0
    # The server is stopped and reaped.
    assert not Path(f"/proc/{report.server_pid}").exists()
    # The home is kept for the next run, and the report is plain JSON.
    assert (tmp_path / "home-2000-seed0" / "bench-ready.json").exists()
    assert json.loads(json.dumps(report.to_json()))["rss_samples"]


def test_a_server_that_cannot_start_ends_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("firebreak.bench.api.READY_TIMEOUT_S", 20.0)
    monkeypatch.setattr("firebreak.bench.api.sys.executable", "/bin/false")
    with pytest.raises(ApiBenchFailed, match="exited with status"):
        run_api_bench(tmp_path, seconds=1.0, codes=10, clients=1)


def test_codes_are_reproducible() -> None:
    assert bench_codes(3, 7) == bench_codes(3, 7)
    assert bench_codes(3, 7) != bench_codes(3, 8)


def test_percentiles_and_slope() -> None:
    counts = [0] * (len(_HIST_EDGES) + 1)
    counts[100] = 99
    counts[200] = 1
    assert _percentile_s(counts, 50) == _HIST_EDGES[100]
    assert _percentile_s(counts, 99) == _HIST_EDGES[100]
    assert _percentile_s(counts, 100) == _HIST_EDGES[200]
    assert _percentile_s([0] * len(counts), 99) == 0.0
    assert _slope_per_s([(0.0, 10.0), (10.0, 11.0), (20.0, 12.0)]) == pytest.approx(0.1)
    assert _slope_per_s([(0.0, 10.0)]) == 0.0
