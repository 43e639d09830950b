"""The streams-per-core benchmark plays a made file at real time in a pinned child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from firebreak.bench.live import measure_streams_per_core


def test_streams_per_core_reports_one_trial_per_candidate_tried(tmp_path: Path) -> None:
    report = measure_streams_per_core(tmp_path, candidates=(1,), duration_s=6.0)

    assert [t.streams for t in report.trials] == [1]
    trial = report.trials[0]
    assert report.sustained_streams == (1 if trial.sustained else 0)
    assert trial.cpu_s > 0 and trial.slowest_s > 0
    assert report.cpu_per_stream_s == trial.cpu_per_stream_s
    assert trial.cpu_per_stream_s == pytest.approx(trial.cpu_s / 6.0, abs=1e-3)
    assert report.duration_s == 6.0 and report.live_fps == 1.0
    assert Path(report.file).is_file()
    assert report.lines()[-2].startswith(f"streams per core: {report.sustained_streams};")
