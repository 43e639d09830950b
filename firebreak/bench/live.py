"""Live-stream benchmarks: how soon banked content spliced into a stream is alerted on, and how
many streams one CPU core keeps up with.

Latency: streams are published with `ffmpeg -re … -c copy -f flv` to a real nginx-rtmp server on
loopback, as an encoder would, and watched by LiveSessions through the same URLs. Each stream is
benign footage, then a banked clip (plain or manipulated), then a few benign seconds; two more
streams are benign throughout. A case's latency is wall-clock, from the moment the banked part
began on the publisher's clock to the alert on its item: relay, player buffering, sampling,
hashing and matching are all in it. The streams carry no sound, so that the pictures alone are
measured (a banked soundtrack would match whatever the pictures went through).

Streams per core: N sessions on threads of one process pinned to one CPU play the same local 720p
file at real time. N is sustained when every session reaches the end of the file within a margin
of its duration, i.e. when one core keeps up with N live streams.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firebreak.bench.rtmp_server import RtmpServer, running_rtmp_server
from firebreak.bench.variants import run_ffmpeg
from firebreak.errors import FirebreakError
from firebreak.live.session import LiveEvent, LiveSession, LockedMatcher
from firebreak.media import probe_media
from firebreak.service import Firebreak
from firebreak.settings import Settings

BANK = "live-bench"
BANKED_CLIPS = ("cockatoo.mp4", "bikes.mp4", "bigbuckbunny.mp4")
LAVFI_SOURCES = frozenset({"mandelbrot", "life", "testsrc2", "cellauto"})
# Benign lead-ins: synthetic footage and real clips that are never banked (short ones loop).
LEAD_INS = ("mandelbrot", "carphone_pristine.mp4", "life", "testsrc2", "realshort.mp4", "cellauto")
BENIGN_STREAMS = (
    ("benign-1", ("testsrc2", "carphone_pristine.mp4", "cellauto", "realshort.mp4")),
    ("benign-2", ("life", "realshort.mp4", "mandelbrot", "carphone_pristine.mp4")),
)
BENIGN_PART_S = 10.0
TAIL_S = 4.0
"""Benign seconds after the banked part: a stream goes on after the content, so that a slow alert
is measured rather than cut off by the end of the stream."""
WIDTH, HEIGHT, FPS = 640, 360, 25
CONCURRENT_STREAMS = 3
WATCHER_HEAD_START_S = 1.0
"""The watcher connects this long before the publisher starts; nginx-rtmp holds a player until
the stream is published, as happens when a platform starts its watcher on a stream's announcement."""
SUSTAIN_MARGIN_S = 1.5


class LiveBenchFailed(FirebreakError):
    pass


@dataclass(frozen=True)
class StreamEdit:
    """What happens to the banked part of a stream: a filter, or a lossy re-encode first."""

    name: str
    video_filter: str | None = None
    reencode: tuple[str, ...] = ()


EDITS = (
    StreamEdit("plain"),
    StreamEdit("mirrored", "hflip"),
    StreamEdit("cropped_mirrored", "crop=iw*0.85:ih*0.85,hflip"),
    StreamEdit(
        "low_quality",
        reencode=("-vf", "scale=-2:240", "-c:v", "libx264", "-preset", "veryfast", "-crf", "36"),
    ),
    StreamEdit("letterboxed", "scale=iw*0.8:-2,pad=iw/0.8:ih/0.8:(ow-iw)/2:(oh-ih)/2"),
)


@dataclass(frozen=True)
class LatencyCase:
    """One spliced stream and what its watcher saw."""

    name: str
    item: str
    edit: str
    lead_in: str
    splice_s: float
    latency_s: float | None
    """Wall seconds from the start of the banked part (publisher's clock) to the alert on its
    item; None when the item was never alerted on: a miss."""
    stream_lag_s: float | None
    """Seconds of banked footage the watcher had read when it alerted."""
    score: float | None
    false_alerts: tuple[str, ...]
    """Alerts on other items, or on the right item before its footage was on air."""
    ended: str
    """How the watch ended (the session's last state and detail, or the publisher's failure)."""

    @property
    def missed(self) -> bool:
        return self.latency_s is None


@dataclass(frozen=True)
class BenignStream:
    """A stream with no banked content, and the alerts (all false) raised on it."""

    name: str
    duration_s: float
    false_alerts: tuple[str, ...]
    ended: str


@dataclass(frozen=True)
class LatencyReport:
    date: str
    concurrency: int
    cpus: int
    load_average: float
    """The 1-minute load average when the benchmark started: other work on the CPUs adds noise."""
    cases: tuple[LatencyCase, ...]
    benign: tuple[BenignStream, ...]
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    missed: int
    false_alerts: int
    """Alerts on benign streams, plus alerts on a wrong item (or too early) in spliced ones."""
    wall_s: float

    def lines(self) -> list[str]:
        """A human-readable summary: one line per stream, then the figures."""
        lines = [
            f"Live alert latency over nginx-rtmp ({self.date}): {len(self.cases)} spliced and "
            f"{len(self.benign)} benign streams, {self.concurrency} at a time, in {self.wall_s:.0f} s",
            f"{'case':<36} {'lead-in':<26} {'latency':>8} {'lag':>6} {'score':>6}  ended",
        ]
        for c in self.cases:
            lead = f"{c.lead_in} {c.splice_s:g} s"
            latency = "missed" if c.latency_s is None else f"{c.latency_s:.2f} s"
            lag = "" if c.stream_lag_s is None else f"{c.stream_lag_s:.1f} s"
            score = "" if c.score is None else f"{c.score:.2f}"
            wrong = f"  FALSE: {', '.join(c.false_alerts)}" if c.false_alerts else ""
            lines.append(
                f"{c.name:<36} {lead:<26} {latency:>8} {lag:>6} {score:>6}  {c.ended}{wrong}"
            )
        for b in self.benign:
            alerts = ", ".join(b.false_alerts) if b.false_alerts else "no alerts"
            lines.append(f"{b.name:<36} {f'benign {b.duration_s:.0f} s':<26} {alerts}  {b.ended}")
        lines.append(
            "latency: wall seconds from the banked part's start (publisher's clock) to its alert; "
            "lag: seconds of banked footage the watcher had read by then"
        )
        lines.append(
            f"latency p50 {_seconds(self.p50_s)}, p95 {_seconds(self.p95_s)}, "
            f"max {_seconds(self.max_s)}; missed {self.missed} of {len(self.cases)}; "
            f"false alerts {self.false_alerts}"
        )
        lines.append(_load_note(self.load_average, self.cpus))
        return lines


@dataclass(frozen=True)
class StreamsTrial:
    """N sessions at once on one core: the slowest one's wall time and the CPU they used."""

    streams: int
    slowest_s: float
    cpu_s: float
    cpu_per_stream_s: float
    """CPU seconds spent per second of one stream."""
    sustained: bool


@dataclass(frozen=True)
class StreamsPerCoreReport:
    date: str
    cpu: int
    """The CPU the sessions were pinned to."""
    cpus: int
    load_average: float
    file: str
    duration_s: float
    live_fps: float
    margin_s: float
    trials: tuple[StreamsTrial, ...]
    sustained_streams: int
    """The most streams one core kept up with (0: not even one)."""
    cpu_per_stream_s: float
    """CPU seconds per stream-second at that many streams (at one, when none was sustained)."""

    def lines(self) -> list[str]:
        """A human-readable summary: one line per trial, then the figures."""
        lines = [
            f"Streams per core ({self.date}): {Path(self.file).name}, {self.duration_s:g} s at real "
            f"time, live_fps {self.live_fps:g}, pinned to CPU {self.cpu}; sustained = every "
            f"session done within {self.margin_s:g} s of the end",
        ]
        for t in self.trials:
            lines.append(
                f"  {t.streams:>3} streams: slowest {t.slowest_s:.1f} s, {t.cpu_s:.1f} CPU s, "
                f"{t.cpu_per_stream_s:.3f} CPU s per stream-second, "
                f"{'sustained' if t.sustained else 'fell behind'}"
            )
        lines.append(
            f"streams per core: {self.sustained_streams}; "
            f"{self.cpu_per_stream_s:.3f} CPU s per stream-second"
        )
        lines.append(_load_note(self.load_average, self.cpus))
        return lines


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _load_note(load: float, cpus: int) -> str:
    note = f"1-minute load average at start {load:.1f} on {cpus} CPUs"
    # Over half the machine busy beforehand: the sessions shared their cores with other work.
    return note + " (other work was running: figures are noisy)" if load > cpus / 2 else note


# Latency


@dataclass(frozen=True)
class _Segment:
    source: str
    """A lavfi source name, or a clip's path."""
    seconds: float | None
    """How long it plays (a short clip loops); None: the whole clip, once."""
    video_filter: str | None = None


@dataclass(frozen=True)
class _Stream:
    name: str
    path: Path
    duration_s: float
    item: str | None
    """The banked item shown from `splice_s` on; None for a benign stream."""
    splice_s: float = 0.0
    edit: str = ""
    lead_in: str = ""


@dataclass(frozen=True)
class _Watched:
    published_at: float
    alerts: tuple[LiveEvent, ...]
    ended: str


def measure_live_latency(clips_dir: Path, work_dir: Path, cases: int = 12) -> LatencyReport:
    """Publish `cases` spliced streams and two benign ones over RTMP, watch each with a session,
    and report alert latency, misses and false alerts.

    Banks cockatoo, bikes and bigbuckbunny in a fresh home under `work_dir`; the streams are made
    once with ffmpeg and kept in `work_dir`. Streams run `CONCURRENT_STREAMS` at a time.
    """
    started = time.monotonic()
    load = os.getloadavg()[0]
    streams_dir = work_dir / "streams"
    streams_dir.mkdir(parents=True, exist_ok=True)
    spliced = [_spliced_stream(i, clips_dir, streams_dir) for i in range(cases)]
    benign = [_benign_stream(name, parts, clips_dir, streams_dir) for name, parts in BENIGN_STREAMS]
    home = work_dir / "latency-home"
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home, live_reconnect_attempts=0, live_read_timeout_s=5.0)
    fb = Firebreak(settings)
    try:
        fb.create_bank(BANK)
        for clip in BANKED_CLIPS:
            fb.bank_file(BANK, clips_dir / clip)
        matcher = LockedMatcher(fb)
        with (
            running_rtmp_server() as server,
            ThreadPoolExecutor(CONCURRENT_STREAMS, thread_name_prefix="live-bench") as pool,
        ):
            # The long benign streams go first, so that they overlap the spliced ones.
            order = benign + spliced
            watched = list(
                pool.map(lambda s: _publish_and_watch(server, s, matcher, settings), order)
            )
    finally:
        fb.close()
    results = dict(zip((s.name for s in order), watched, strict=True))
    case_results = tuple(_case_result(s, results[s.name]) for s in spliced)
    benign_results = tuple(
        BenignStream(
            s.name,
            s.duration_s,
            tuple(_alert_name(a) for a in results[s.name].alerts),
            results[s.name].ended,
        )
        for s in benign
    )
    latencies = [c.latency_s for c in case_results if c.latency_s is not None]
    return LatencyReport(
        date=dt.date.today().isoformat(),
        concurrency=CONCURRENT_STREAMS,
        cpus=os.cpu_count() or 1,
        load_average=round(load, 2),
        cases=case_results,
        benign=benign_results,
        p50_s=float(np.percentile(latencies, 50)) if latencies else None,
        p95_s=float(np.percentile(latencies, 95)) if latencies else None,
        max_s=max(latencies) if latencies else None,
        missed=sum(c.missed for c in case_results),
        false_alerts=sum(len(c.false_alerts) for c in case_results)
        + sum(len(b.false_alerts) for b in benign_results),
        wall_s=time.monotonic() - started,
    )


def _spliced_stream(i: int, clips_dir: Path, streams_dir: Path) -> _Stream:
    """Case `i`: banked clip, edit, lead-in source and lead-in length all vary with `i`."""
    clip = BANKED_CLIPS[i % len(BANKED_CLIPS)]
    edit = EDITS[i % len(EDITS)]
    # Offset by i // 3 so that a lead-in source is not tied to one banked clip.
    lead = LEAD_INS[(i + i // 3) % len(LEAD_INS)]
    lead_s = 4.0 + (5 * i) % 9  # 4 to 12 s, in a scattered order
    banked = clips_dir / clip
    if edit.reencode:
        banked = _cached(
            streams_dir, f"{Path(clip).stem}-{edit.name}", ["-i", str(banked), *edit.reencode]
        )
    segments = [
        _Segment(_source(lead, clips_dir), lead_s),
        _Segment(str(banked), None, edit.video_filter),
        _Segment(_source(lead, clips_dir), TAIL_S),
    ]
    name = f"{i + 1:02d}-{Path(clip).stem}-{edit.name}"
    path = _splice(segments, streams_dir, name)
    return _Stream(name, path, _duration(path), clip, lead_s, edit.name, Path(lead).stem)


def _benign_stream(
    name: str, parts: tuple[str, ...], clips_dir: Path, streams_dir: Path
) -> _Stream:
    segments = [_Segment(_source(part, clips_dir), BENIGN_PART_S) for part in parts]
    path = _splice(segments, streams_dir, name)
    return _Stream(name, path, _duration(path), None)


def _source(name: str, clips_dir: Path) -> str:
    return name if name in LAVFI_SOURCES else str(clips_dir / name)


def _splice(segments: list[_Segment], streams_dir: Path, name: str) -> Path:
    """The segments one after the other at 640x360, 25 fps, H.264 with a keyframe a second (as
    live encoders send), no sound; each segment starts exactly where the previous ones end."""
    inputs: list[str] = []
    chains: list[str] = []
    for k, seg in enumerate(segments):
        if seg.source in LAVFI_SOURCES:
            inputs += ["-f", "lavfi", "-t", f"{seg.seconds}"]
            inputs += ["-i", f"{seg.source}=size={WIDTH}x{HEIGHT}:rate={FPS}"]
        elif seg.seconds is not None:
            inputs += ["-stream_loop", "-1", "-t", f"{seg.seconds}", "-i", seg.source]
        else:
            inputs += ["-i", seg.source]
        steps = [f"fps={FPS}"]
        if seg.seconds is not None:
            steps.append(f"trim=duration={seg.seconds}")
        steps.append("setpts=PTS-STARTPTS")
        if seg.video_filter:
            steps.append(seg.video_filter)
        steps += [
            f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease:force_divisible_by=2",
            f"pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2",
            "setsar=1",
            "format=yuv420p",
        ]
        chains.append(f"[{k}:v]{','.join(steps)}[v{k}]")
    joined = "".join(f"[v{k}]" for k in range(len(segments)))
    graph = ";".join(chains) + f";{joined}concat=n={len(segments)}:v=1:a=0[out]"
    return _cached(
        streams_dir,
        name,
        [
            *inputs,
            *("-filter_complex", graph, "-map", "[out]", "-an"),
            *("-c:v", "libx264", "-preset", "veryfast", "-g", f"{FPS}", "-pix_fmt", "yuv420p"),
        ],
    )


def _cached(folder: Path, stem: str, args: list[str]) -> Path:
    """`ffmpeg ARGS OUT.mp4`, made once: the file's name carries a digest of the arguments."""
    digest = hashlib.sha256(json.dumps(args).encode()).hexdigest()[:10]
    dest = folder / f"{stem}-{digest}.mp4"
    if not dest.exists():
        partial = dest.with_suffix(".part.mp4")
        run_ffmpeg([*args, str(partial)])
        partial.replace(dest)
    return dest


def _duration(path: Path) -> float:
    return probe_media(path, Settings()).duration_s


def _publish_and_watch(
    server: RtmpServer, stream: _Stream, matcher: LockedMatcher, settings: Settings
) -> _Watched:
    """Start a watcher on the stream's URL, publish the file to it at real time, and return the
    alerts once the watcher has seen the stream end."""
    url = server.stream_url(stream.name)
    states: list[LiveEvent] = []
    crashed: list[str] = []
    session = LiveSession(
        url, matcher, settings, lambda e: states.append(e) if e.event == "state" else None
    )
    stop = threading.Event()

    def watch() -> None:
        try:
            session.run(stop)
        except Exception as exc:  # a bug in the session: reported with the case, not fatal
            crashed.append(f"crashed: {exc!r}")

    watcher = threading.Thread(target=watch, name=f"watch-{stream.name}", daemon=True)
    watcher.start()
    time.sleep(WATCHER_HEAD_START_S)
    published_at = time.time()
    try:
        publisher = subprocess.run(
            [
                *("ffmpeg", "-hide_banner", "-loglevel", "error", "-re"),
                *("-i", str(stream.path), "-c", "copy", "-f", "flv", url),
            ],
            capture_output=True,
            text=True,
            timeout=stream.duration_s + 60,
            check=False,
        )
        published = (
            None
            if publisher.returncode == 0
            else f"publisher failed: {publisher.stderr.strip()[-200:]}"
        )
    except subprocess.TimeoutExpired:
        published = "publisher still running long after the stream's end"
    # The watcher sees the end of the stream when nginx tells it, or at the read timeout.
    watcher.join(timeout=settings.live_read_timeout_s + 10)
    if watcher.is_alive():
        stop.set()
        watcher.join(timeout=settings.live_read_timeout_s + 5)
    last = states[-1] if states else None
    ended = published or (crashed[0] if crashed else None)
    if ended is None:
        ended = "still watching" if watcher.is_alive() or last is None else last.state or ""
        if last is not None and last.detail:
            ended += f" ({last.detail})"
    return _Watched(published_at, tuple(session.alerts), ended)


def _case_result(stream: _Stream, watched: _Watched) -> LatencyCase:
    right = [
        a for a in watched.alerts if a.item == stream.item and a.stream_time >= stream.splice_s
    ]
    first = min(right, key=lambda a: a.wall_time) if right else None
    false_alerts = tuple(_alert_name(a) for a in watched.alerts if a not in right)
    return LatencyCase(
        name=stream.name,
        item=stream.item or "",
        edit=stream.edit,
        lead_in=stream.lead_in,
        splice_s=stream.splice_s,
        latency_s=None
        if first is None
        else round(first.wall_time - (watched.published_at + stream.splice_s), 3),
        stream_lag_s=None if first is None else round(first.stream_time - stream.splice_s, 3),
        score=None if first is None or first.score is None else round(first.score, 4),
        false_alerts=false_alerts,
        ended=watched.ended,
    )


def _alert_name(alert: LiveEvent) -> str:
    return f"{alert.item} at {alert.stream_time:.1f} s"


# Streams per core

_CHILD = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})  # before numpy and faiss size their thread pools
from firebreak.bench.live import streams_child
streams_child(sys.argv[2])
"""


def measure_streams_per_core(
    work_dir: Path,
    candidates: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24),
    duration_s: float = 30.0,
) -> StreamsPerCoreReport:
    """The most concurrent live sessions one CPU core keeps up with, trying `candidates` in
    order until one falls behind, and the CPU seconds a stream-second costs.

    Each trial runs in a child process pinned to one CPU: N sessions on threads play a made 720p
    30 fps H.264 + AAC file of `duration_s` at real time (`live_fps` 1), against a home with one
    banked clip. Raises LiveBenchFailed when a session ends other than at the end of the file.
    """
    load = os.getloadavg()[0]
    work_dir.mkdir(parents=True, exist_ok=True)
    video = _cached(
        work_dir,
        f"testsrc2-noise-720p30-{duration_s:g}s",
        [
            *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"),
            *("-t", f"{duration_s}", "-vf", "noise=alls=8:allf=t"),
            *("-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-b:a", "96k"),
        ],
    )
    banked = _cached(
        work_dir,
        "life-6s",
        [
            *("-f", "lavfi", "-t", "6", "-i", f"life=size={WIDTH}x{HEIGHT}:rate={FPS}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
        ],
    )
    home = work_dir / "per-core-home"
    shutil.rmtree(home, ignore_errors=True)
    fb = Firebreak(Settings(home=home))
    try:
        fb.create_bank(BANK)
        fb.bank_file(BANK, banked)
    finally:
        fb.close()
    cpu = max(os.sched_getaffinity(0))
    live_fps = 1.0
    trials: list[StreamsTrial] = []
    for streams in candidates:
        trial = _streams_trial(cpu, home, video, streams, duration_s, live_fps)
        trials.append(trial)
        if not trial.sustained:
            break
    sustained = [t for t in trials if t.sustained]
    best = sustained[-1] if sustained else trials[0]
    return StreamsPerCoreReport(
        date=dt.date.today().isoformat(),
        cpu=cpu,
        cpus=os.cpu_count() or 1,
        load_average=round(load, 2),
        file=str(video),
        duration_s=duration_s,
        live_fps=live_fps,
        margin_s=SUSTAIN_MARGIN_S,
        trials=tuple(trials),
        sustained_streams=best.streams if sustained else 0,
        cpu_per_stream_s=best.cpu_per_stream_s,
    )


def _streams_trial(
    cpu: int, home: Path, video: Path, streams: int, duration_s: float, live_fps: float
) -> StreamsTrial:
    request = {"home": str(home), "video": str(video), "streams": streams, "live_fps": live_fps}
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(cpu), json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=3 * duration_s + 120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LiveBenchFailed(f"{streams} streams: the trial did not finish") from None
    if child.returncode != 0:
        raise LiveBenchFailed(f"{streams} streams: trial failed: {child.stderr.strip()[-500:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    if measured["failures"]:
        raise LiveBenchFailed(f"{streams} streams: {'; '.join(measured['failures'])}")
    slowest = max(float(s) for s in measured["seconds"])
    cpu_s = float(measured["cpu_s"])
    return StreamsTrial(
        streams=streams,
        slowest_s=round(slowest, 3),
        cpu_s=round(cpu_s, 3),
        cpu_per_stream_s=round(cpu_s / (streams * duration_s), 4),
        sustained=slowest <= duration_s + SUSTAIN_MARGIN_S,
    )


def streams_child(request_json: str) -> None:
    """In the pinned child: run the sessions, print one JSON line of their wall and CPU times."""
    request = json.loads(request_json)
    settings = Settings(
        home=Path(request["home"]), live_fps=float(request["live_fps"]), live_reconnect_attempts=0
    )
    fb = Firebreak(settings)
    try:
        matcher = LockedMatcher(fb)
        _ = fb.indexes  # loaded now, not inside the first session's timing
        count = int(request["streams"])
        seconds = [0.0] * count
        endings: list[list[LiveEvent]] = [[] for _ in range(count)]
        failures: list[str] = []

        def watch(k: int) -> None:
            session = LiveSession(
                request["video"], matcher, settings, endings[k].append, realtime=True
            )
            began = time.monotonic()
            try:
                session.run()
            except Exception as exc:  # reported to the parent, which fails the benchmark
                failures.append(f"session {k} crashed: {exc!r}")
            seconds[k] = time.monotonic() - began

        threads = [threading.Thread(target=watch, args=(k,)) for k in range(count)]
        cpu_before = time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu_s = time.process_time() - cpu_before
    finally:
        fb.close()
    for k, events in enumerate(endings):
        last = next((e for e in reversed(events) if e.event == "state"), None)
        if last is None or last.state != "ended" or last.detail != "stream ended":
            detail = "no state" if last is None else f"{last.state} ({last.detail})"
            failures.append(f"session {k} did not play to the end: {detail}")
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_s, "failures": failures}))
