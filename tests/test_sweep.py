"""The retroactive sweep on Dask: a catalogue of past uploads searched for newly banked items.

100,000 stored-hash uploads with planted copies are swept on a local Dask cluster, interrupted
and resumed; real clips (one a mirrored re-encode of a banked clip) are swept by path and URL.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from distributed import LocalCluster

from firebreak.bench.variants import lavfi_clip
from firebreak.match import Judgement, Verdict
from firebreak.scale.sweep import (
    Sweep,
    SweepError,
    SweepProgress,
    make_catalogue,
    parse_entry,
    random_walk_frames,
    stored_query,
)
from firebreak.scale.workers import encode_query, hash_params
from firebreak.service import Firebreak
from firebreak.settings import ActionRule, Settings
from firebreak.signals import hash_query_file
from firebreak.store import SignalValue
from firebreak.store.scale import NewUploadHashes, UploadLedger
from tests.conftest import ffmpeg

BANK = "incident"
UPLOADS = 100_000
PARTITION = 5_000


def test_catalogue_lines_name_signals_as_the_store_and_hash_lists_do() -> None:
    frames = random_walk_frames(np.random.default_rng(4), 3)
    features = [f"{f.hex},{f.quality},{f.timestamp:.3f}" for f in frames]
    md5 = "0123456789abcdef" * 2

    video = parse_entry(json.dumps({"id": "v", "signals": {"vpdq": json.dumps(features)}}))
    listed = parse_entry(json.dumps({"id": "w", "video_md5": md5, "signals": {"video": features}}))
    picture = parse_entry(json.dumps({"id": 7, "signals": {"pdq": f"{frames[0].hex.upper()},88"}}))

    assert video.frames == listed.frames == tuple(frames) and video.is_video
    assert listed.md5 == md5
    assert (picture.id, picture.is_video, picture.frames[0].quality) == ("7", False, 88)
    assert picture.frames[0].code == frames[0].code
    assert parse_entry('{"id": "p", "path": "/uploads/p.mp4"}').source == "/uploads/p.mp4"
    for bad in (
        '{"path": "/a.mp4"}',
        '{"id": "x"}',
        '{"id": "x", "url": "ftp://host/a.mp4"}',
        '{"id": "x", "signals": {"video": ["abc,50,0"]}}',
        '{"id": "x", "signals": {"pdq": "' + "0" * 64 + ',101"}}',
        "[1, 2]",
    ):
        with pytest.raises(ValueError):
            parse_entry(bad)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A local Dask cluster of two single-threaded worker processes, on loopback only."""
    with LocalCluster(
        host="127.0.0.1",
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        yield cluster.scheduler_address


class Banked:
    """A home whose incident bank got 5 items, then (at `version`) 15 more, and a catalogue of
    100,000 stored-hash uploads holding two copies of each new item and one of each old one."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.catalogue = root / "catalogue.jsonl"
        rng = np.random.default_rng(8)
        fb = Firebreak(Settings(home=self.home))
        fb.create_bank(BANK)
        frames: dict[str, list] = {}
        for k in range(20):
            if k == 5:
                self.version = fb.store.index_version()
            name = f"{'old' if k < 5 else 'new'}-{k:02d}"
            frames[name] = random_walk_frames(rng, int(rng.integers(8, 40)))
            values = [SignalValue("video", f.hex, f.quality, f.timestamp) for f in frames[name]]
            fb.add_hashes(BANK, name, values, "test")
        fb.close()
        new = {n: f for n, f in frames.items() if n.startswith("new")}
        old = {n: f for n, f in frames.items() if n.startswith("old")}
        planted_new = make_catalogue(self.catalogue, UPLOADS, new, copies=2, seed=1)
        self.planted_new = planted_new
        # The old items' copies go in as well, over uploads no new item was planted in.
        lines = self.catalogue.read_text().splitlines(keepends=True)
        spare = root / "spare.jsonl"
        planted_old = make_catalogue(spare, len(old), old, copies=1, seed=2)
        free = [k for k in range(UPLOADS) if f"u{k:08d}" not in planted_new][: len(old)]
        self.planted_old: dict[str, str] = {}
        for k, line in zip(free, spare.read_text().splitlines(keepends=True), strict=True):
            record = json.loads(line)
            self.planted_old[f"u{k:08d}"] = planted_old[record["id"]]
            record["id"] = f"u{k:08d}"
            lines[k] = json.dumps(record) + "\n"
        self.catalogue.write_text("".join(lines))

    def firebreak(self) -> Firebreak:
        return Firebreak(Settings(home=self.home))


@pytest.fixture(scope="module")
def banked(tmp_path_factory: pytest.TempPathFactory) -> Banked:
    return Banked(tmp_path_factory.mktemp("sweep"))


def _entries(catalogue: Path, ids: set[str]) -> dict[str, str]:
    found = {}
    with catalogue.open() as f:
        for line in f:
            upload = line[8:17]  # '{"id": "u00000000"'
            if upload in ids:
                found[upload] = line
    return found


def test_a_sweep_of_100k_stored_uploads_finds_every_planted_copy_and_resumes(
    banked: Banked, scheduler: str
) -> None:
    fb = banked.firebreak()
    try:
        sweep = Sweep.open(
            fb,
            banked.catalogue,
            [BANK],
            since_version=banked.version,
            partition_size=PARTITION,
            sweep_id="after-incident",
        )
        assert sweep.definition.partitions == UPLOADS // PARTITION
        assert len(sweep.definition.items) == 15  # only the items banked since the version

        def interrupt_after_six(progress: SweepProgress) -> None:
            if progress.partitions_done == 6:
                raise KeyboardInterrupt  # as Ctrl-C in the driver

        with pytest.raises(KeyboardInterrupt):
            sweep.run(scheduler=scheduler, progress=interrupt_after_six)
        assert len(sweep.finished_partitions()) == 6
        acted_before = _sweep_audit(fb, "after-incident")
        assert sum(acted_before.values()) == sum(1 for _ in sweep.findings())

        heard: list[SweepProgress] = []
        resumed = Sweep.open(fb, banked.catalogue, [BANK], sweep_id="after-incident")
        summary = resumed.run(scheduler=scheduler, progress=heard.append)
        print(
            f"\nsweep of {summary.entries_this_run} stored uploads (resumed after "
            f"{summary.skipped} partitions): {summary.items_per_s:,.0f} uploads/s on 2 workers"
        )

        assert summary.complete
        assert summary.skipped == 6
        assert [p.partitions_done for p in heard] == list(range(7, 21))
        assert summary.entries == UPLOADS
        assert summary.entries_this_run == UPLOADS - 6 * PARTITION
        assert summary.items_per_s > 0
        assert summary.errors == 0
        findings = {f["id"]: f for f in resumed.findings()}
        assert set(findings) == set(banked.planted_new)  # every copy, nothing else
        for upload, item in banked.planted_new.items():
            assert findings[upload]["verdict"] == Verdict.MATCH.value
            assert findings[upload]["matches"][0]["item"] == item
        assert summary.matches == len(banked.planted_new)
        # Every upload acted on once, across the interruption: one audit entry, one decision.
        acted = _sweep_audit(fb, "after-incident")
        assert acted == Counter({f"upload:{u}": 1 for u in banked.planted_new})
        assert summary.acted == len(banked.planted_new) - sum(acted_before.values())

        again = Sweep.open(fb, banked.catalogue, [BANK], sweep_id="after-incident").run(
            scheduler=scheduler
        )
        assert (again.entries_this_run, again.acted, again.skipped) == (0, 0, 20)
        assert _sweep_audit(fb, "after-incident") == acted
    finally:
        fb.close()


def _sweep_audit(fb: Firebreak, sweep_id: str) -> Counter[str]:
    """How many times the sweep acted on each upload, by the audit log."""
    return Counter(
        e.subject
        for e in fb.store.audit.entries(limit=10_000)
        if e.action == "sweep.block" and e.evidence.get("sweep") == sweep_id
    )


def test_sweep_verdicts_agree_with_what_match_says_of_the_same_hashes(banked: Banked) -> None:
    fb = banked.firebreak()
    try:
        sweep = Sweep.open(
            fb, banked.catalogue, [BANK], partition_size=PARTITION, sweep_id="all-items"
        )
        index = sweep.build_index()
        assert len(index) == 20
        plain = {f"u{k:08d}" for k in range(0, UPLOADS, 9973)}
        plain -= set(banked.planted_new) | set(banked.planted_old)
        wanted = set(banked.planted_new) | set(banked.planted_old) | plain
        lines = _entries(banked.catalogue, wanted)
        queries = [stored_query(parse_entry(line), fb.settings) for line in lines.values()]
        judged = index.judge_many(queries)
        for query, sweep_judgement in zip(queries, judged, strict=True):
            evidence = fb.lookup_frames(query.views, ())
            found = fb.match_evidence(evidence, None, query.duration_s, query.is_video)
            expected = fb.judge(found)
            assert _summary(sweep_judgement) == _summary(expected), query.entry.id
        verdicts = Counter(j.verdict if j else Verdict.NO_MATCH for j in judged)
        assert verdicts[Verdict.MATCH] == len(banked.planted_new) + len(banked.planted_old)
        assert verdicts[Verdict.NO_MATCH] == len(plain)
    finally:
        fb.close()


def _summary(judged: Judgement | None) -> tuple[str, list[tuple[str, float, object]]]:
    if judged is None:
        return Verdict.NO_MATCH.value, []
    return judged.verdict.value, [
        (m.item.name, round(m.score, 6), m.query_segment) for m in judged.matches
    ]


def test_a_resumed_sweep_must_read_the_same_catalogue(tmp_path: Path) -> None:
    catalogue = tmp_path / "small.jsonl"
    catalogue.write_text('{"id": "first", "md5": "' + "cd" * 16 + '"}\n')
    fb = Firebreak(Settings(home=tmp_path / "home"))
    try:
        fb.create_bank(BANK)
        frames = random_walk_frames(np.random.default_rng(3), 10)
        values = [SignalValue("video", f.hex, f.quality, f.timestamp) for f in frames]
        fb.add_hashes(BANK, "clip", values, "test")
        with pytest.raises(SweepError, match="no items"):
            Sweep.open(fb, catalogue, [BANK], since_version=fb.store.index_version())
        Sweep.open(fb, catalogue, [BANK], sweep_id="s1")
        with catalogue.open("a") as f:
            f.write('{"id": "late", "sha256": "' + "ab" * 32 + '"}\n')
        with pytest.raises(SweepError, match="changed since it began"):
            Sweep.open(fb, catalogue, [BANK], sweep_id="s1")
        with pytest.raises(SweepError, match="a sweep id is"):
            Sweep.open(fb, catalogue, [BANK], sweep_id="../elsewhere")
    finally:
        fb.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback, and its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_sweep_over_media_paths_and_urls_finds_the_mirrored_copy(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    folder, base = served
    banked_clip = lavfi_clip("testsrc2", 5, folder / "banked.mp4", size="320x180")
    other = lavfi_clip("mandelbrot", 4, folder / "other.mp4", size="320x180")
    lavfi_clip("life", 4, folder / "life.mp4", size="320x180")
    mirrored = tmp_path / "mirrored.mp4"
    ffmpeg("-i", banked_clip, "-vf", "hflip", "-crf", "30", mirrored)
    settings = Settings(
        home=tmp_path / "home", action_rules=[ActionRule(verdict="match", actions=["hold"])]
    )
    fb = Firebreak(settings)
    try:
        fb.create_bank(BANK)
        fb.bank_file(BANK, banked_clip)
        catalogue = tmp_path / "uploads.jsonl"
        records = [
            {"id": "mirrored", "path": str(mirrored)},
            {"id": "other", "path": str(other)},
            {"id": "life", "url": f"{base}/life.mp4"},
            {"id": "same", "url": f"{base}/banked.mp4"},
            {"id": "gone", "path": str(tmp_path / "gone.mp4")},
        ]
        catalogue.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")

        sweep = Sweep.open(fb, catalogue, [BANK], partition_size=2)
        summary = sweep.run(workers=2)  # the default: a local cluster of its own

        assert summary.complete
        assert (summary.entries, summary.errors) == (6, 2)
        findings = {f["id"]: f for f in sweep.findings()}
        assert set(findings) == {"mirrored", "same"}
        expected = fb.match_file(mirrored)
        found = findings["mirrored"]
        assert found["verdict"] == expected.verdict.value == Verdict.MATCH.value
        assert found["matches"][0]["item"] == expected.matches[0].item.name == "banked.mp4"
        assert found["matches"][0]["score"] == pytest.approx(expected.matches[0].score, abs=1e-3)
        assert findings["same"]["matches"][0]["signals"]["md5"] == {"exact": True}
        errors = [e for r in sweep.partition_records() for e in r["errors"]]
        assert sorted(e["line"] for e in errors) == [5, 6]
        # The rules held both for review, the mirrored copy with its media kept for reviewers.
        held = {r.subject: r for r in fb.store.reviews.queue()}
        assert set(held) == {"mirrored", "same"}
        assert held["mirrored"].media is not None and Path(held["mirrored"].media).is_file()
    finally:
        fb.close()


_DRIVER = """
import sys, time
from pathlib import Path
from firebreak.scale.sweep import Sweep
from firebreak.service import Firebreak
from firebreak.settings import Settings

def main():
    home, catalogue, scheduler = sys.argv[1:4]
    fb = Firebreak(Settings(home=Path(home)))
    sweep = Sweep.open(fb, Path(catalogue), ["incident"], partition_size=1000, sweep_id="killed")
    sweep.run(scheduler=scheduler, progress=lambda p: time.sleep(0.3))

if __name__ == "__main__":
    main()
"""


def test_a_sweep_whose_driver_is_killed_goes_on_where_it_stopped(
    banked: Banked, scheduler: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(banked.home, home)
    catalogue = tmp_path / "first-20k.jsonl"
    with banked.catalogue.open() as source, catalogue.open("w") as dest:
        dest.writelines(line for _, line in zip(range(20_000), source, strict=False))
    planted = {**banked.planted_new, **banked.planted_old}
    expected = {u for u in planted if int(u[1:]) < 20_000}
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    parts = home / "sweeps" / "killed" / "parts"
    driver = subprocess.Popen(
        [sys.executable, str(script), str(home), str(catalogue), scheduler],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(parts.glob("*.json"))) < 3 and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before it was killed"
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)  # no chance to tidy up
    finally:
        driver.kill()
        driver.wait()
    done_before = len(list(parts.glob("*.json")))
    assert 3 <= done_before < 20

    fb = Firebreak(Settings(home=home))
    try:
        sweep = Sweep.open(fb, catalogue, [BANK], sweep_id="killed")
        summary = sweep.run(scheduler=scheduler)
        assert summary.complete
        assert summary.skipped == done_before
        assert summary.entries == 20_000
        assert {f["id"] for f in sweep.findings()} == expected
        assert _sweep_audit(fb, "killed") == Counter({f"upload:{u}": 1 for u in expected})
        assert summary.interrupted_actions == ()
    finally:
        fb.close()


def test_a_sweep_of_signals_stored_at_upload_finds_mirrored_copies_without_decoding(
    tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    """What hasher workers stored for each upload (every view, not only whole frames) is swept
    as it is: the mirrored copy is found from the database, its media long gone."""
    banked_clip = lavfi_clip("testsrc2", 5, tmp_path / "banked.mp4", size="320x180")
    mirrored = tmp_path / "mirrored.mp4"
    ffmpeg("-i", banked_clip, "-vf", "hflip", "-crf", "30", mirrored)
    other = lavfi_clip("mandelbrot", 4, tmp_path / "other.mp4", size="320x180")
    home = cli.home
    fb = Firebreak(Settings(home=home))
    try:
        ledger = UploadLedger(fb.store.engine)
        params = hash_params(fb.settings)
        for event_id, clip in (("e-mirrored", mirrored), ("e-other", other)):
            signals = hash_query_file(clip, fb.settings)
            hashes = NewUploadHashes(
                signals.digests.sha256, params, str(clip), {}, encode_query(signals)
            )
            ledger.record_hashes(event_id, "test-hasher", hashes, {})
        fb.create_bank(BANK)
        fb.bank_file(BANK, banked_clip)
        mirrored_sha = hash_query_file(mirrored, fb.settings).digests.sha256
    finally:
        fb.close()
    mirrored.unlink()  # nothing is decoded again: the media need not exist

    catalogue = tmp_path / "stored.jsonl"
    written = cli("worker", "catalogue", catalogue)
    assert written.code == 0, written.stderr
    assert len(catalogue.read_text().splitlines()) == 2
    swept = cli("sweep", catalogue, "--bank", BANK, "--workers", "1", "--json", timeout=300)
    assert swept.code == 0, swept.stderr
    summary = json.loads(swept.stdout.splitlines()[-1])
    assert summary["matches"] == 1 and summary["errors"] == 0, summary
    fb = Firebreak(Settings(home=home))
    try:
        (entry,) = [e for e in fb.store.audit.entries() if e.action.startswith("sweep.block")]
        assert entry.subject == f"upload:{mirrored_sha}"
    finally:
        fb.close()
