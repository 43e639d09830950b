"""Live SRT streams on loopback: alerts and their latency, and failures that end with a reason.

A publisher (`ffmpeg -re`) listens for SRT callers and sends a stream that switches from unrelated
footage to a banked clip; the session calls it. The publisher's clock starts when the session
connects, so latency is measured from the session's "connecting" event plus LEAD_IN_S (a bound
that can only overstate it) to the alert's wall time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from firebreak.errors import StreamFailed
from firebreak.live.session import LiveEvent, LiveSession, LockedMatcher
from firebreak.media.stream import read_stream
from firebreak.service import Firebreak
from firebreak.settings import Settings

from . import test_live
from .test_live import BANK, LEAD_IN_S, MAX_LATENCY_S, Watched, _latency, _spliced

# The RTMP tests' banked home and Firebreak over it, shared.
live_home = test_live.live_home
live_fb = test_live.live_fb


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _udp_bound(port: int) -> bool:
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as lines:
            next(lines)
            if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines):
                return True
    return False


def _ffmpeg_children() -> list[int]:
    """This process's ffmpeg children, zombies included: a reader left unreaped is a leak."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 1 :].split()[1])
        if ppid == os.getpid() and name == "ffmpeg":
            found.append(int(stat.parent.name))
    return found


@contextmanager
def _srt_publisher(media: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`ffmpeg -re` sending `media` as MPEG-TS to the first SRT caller on `port`."""
    publisher = subprocess.Popen(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re"),
            *("-i", str(media), "-c", "copy", "-f", "mpegts"),
            f"srt://127.0.0.1:{port}?mode=listener",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not _udp_bound(port):
            assert publisher.poll() is None, publisher.communicate()[1]
            assert time.monotonic() < deadline, "the publisher never listened"
            time.sleep(0.05)
        yield publisher
    finally:
        publisher.kill()
        publisher.communicate()


def _watch_srt(fb: Firebreak, media: Path) -> Watched:
    """Watch an SRT publisher of `media` in a session thread until the session ends."""
    port = _free_udp_port()
    events: list[LiveEvent] = []
    with _srt_publisher(media, port) as publisher:
        url = f"srt://127.0.0.1:{port}"
        session = LiveSession(url, LockedMatcher(fb), fb.settings, events.append)
        watcher = threading.Thread(target=session.run, daemon=True)
        started = time.monotonic()
        watcher.start()
        watcher.join(timeout=40)
        assert not watcher.is_alive(), "the session did not see the stream end"
        ran_s = time.monotonic() - started
        exit_code = publisher.wait(timeout=10)
    connecting = next(e.wall_time for e in events if e.state == "connecting")
    return Watched(connecting, exit_code, ran_s, events)


def test_banked_clip_in_an_srt_stream_alerts_within_seconds(
    live_fb: Firebreak, clips: dict[str, Path], media_dir: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")

    watched = _watch_srt(live_fb, media)

    latency = _latency(watched, "cockatoo.mp4")
    print(f"SRT alert latency: {latency:.2f} s")
    assert 0.0 <= latency <= MAX_LATENCY_S
    first = next(a for a in watched.alerts if a.item == "cockatoo.mp4")
    assert first.stream_time >= LEAD_IN_S - 0.1  # never before the banked clip appeared
    assert first.bank == BANK and first.score is not None and first.score >= 0.5
    states = [e.state for e in watched.events if e.event == "state"]
    assert states == ["connecting", "live", "ended"]
    assert watched.events[-1].detail == "stream ended"  # the publisher closed the connection
    assert watched.events[-1].stream_time >= LEAD_IN_S + 7.0  # the whole stream was looked at
    assert _ffmpeg_children() == []


def test_srt_url_that_nobody_serves_fails_with_a_reason(live_fb: Firebreak) -> None:
    settings = Settings(
        home=live_fb.settings.home,
        live_open_timeout_s=1.0,
        live_reconnect_attempts=1,
        live_backoff_s=0.1,
    )
    events: list[LiveEvent] = []
    session = LiveSession(f"srt://127.0.0.1:{_free_udp_port()}", live_fb, settings, events.append)
    watcher = threading.Thread(target=session.run, daemon=True)

    started = time.monotonic()
    watcher.start()
    watcher.join(timeout=20)

    assert not watcher.is_alive()
    assert time.monotonic() - started < 6.0  # two tries of 1 s and a back-off, with room
    assert [e.state for e in events] == ["connecting", "reconnecting", "failed"]
    assert (
        events[-1].detail
        == "cannot connect: no SRT listener answered within 1 s, or it refused the call"
    )
    assert _ffmpeg_children() == []


def test_srt_stream_that_stalls_ends_with_a_reason(
    live_fb: Firebreak, clips: dict[str, Path], media_dir: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")
    settings = Settings(
        home=live_fb.settings.home, live_reconnect_attempts=0, live_read_timeout_s=2.0
    )
    port = _free_udp_port()
    events: list[LiveEvent] = []
    live = threading.Event()

    def emit(event: LiveEvent) -> None:
        events.append(event)
        if event.state == "live":
            live.set()

    with _srt_publisher(media, port) as publisher:
        session = LiveSession(f"srt://127.0.0.1:{port}", live_fb, settings, emit)
        watcher = threading.Thread(target=session.run, daemon=True)
        watcher.start()
        assert live.wait(15)
        publisher.send_signal(signal.SIGSTOP)  # the publisher hangs: no data, no goodbye
        stalled = time.monotonic()
        watcher.join(timeout=20)
        assert not watcher.is_alive()
        assert time.monotonic() - stalled < 2.0 + 3.0

    assert [e.state for e in events] == ["connecting", "live", "ended"]
    assert events[-1].detail == "no data for 2 s (SRT read timed out)"
    assert _ffmpeg_children() == []


def test_stopping_a_session_ends_its_srt_reader(
    live_fb: Firebreak, clips: dict[str, Path], media_dir: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")
    port = _free_udp_port()
    stop = threading.Event()
    events: list[LiveEvent] = []

    def emit(event: LiveEvent) -> None:
        events.append(event)
        if event.state == "live":
            stop.set()

    with _srt_publisher(media, port) as publisher:
        session = LiveSession(f"srt://127.0.0.1:{port}", live_fb, live_fb.settings, emit)
        watcher = threading.Thread(target=session.run, args=(stop,), daemon=True)
        watcher.start()
        watcher.join(timeout=20)
        assert not watcher.is_alive()
        readers = [pid for pid in _ffmpeg_children() if pid != publisher.pid]

    assert readers == []
    assert [e.state for e in events] == ["connecting", "live", "ended"]
    assert events[-1].detail == "stream ended"  # ended by `stop`, not by a failure


def test_srt_without_an_ffmpeg_program_fails_with_a_reason(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(StreamFailed, match="needs the ffmpeg program"):
        next(read_stream("srt://127.0.0.1:9", settings, 5.0, 64, realtime=True))
