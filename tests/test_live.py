"""Live streams through a real RTMP server on loopback: alerts, their latency, cuts, incidents.

A publisher (`ffmpeg -re`) sends a stream that switches from unrelated footage to a banked clip;
latency is measured from the publisher's clock: from the moment the banked clip's first frame went
out to the alert's wall time.
"""

from __future__ import annotations

import functools
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from firebreak.actions.cut import NginxRtmpCutter
from firebreak.bench.rtmp_server import RtmpServer, running_rtmp_server
from firebreak.incidents import IncidentDesk
from firebreak.live.session import LiveEvent, LiveSession, LockedMatcher
from firebreak.match import Verdict
from firebreak.service import Firebreak
from firebreak.settings import Settings

from .conftest import ffmpeg

BANK = "attacks"
LEAD_IN_S = 8.0  # unrelated footage before the banked clip appears
MAX_LATENCY_S = 6.0  # the p95 bound, held by every single run here


@pytest.fixture(scope="module")
def rtmp() -> Iterator[RtmpServer]:
    with running_rtmp_server() as server:
        yield server


@pytest.fixture(scope="module")
def live_home(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("live") / "home"
    fb = Firebreak(Settings(home=home))
    fb.create_bank(BANK)
    fb.bank_file(BANK, clips["cockatoo.mp4"])
    fb.close()
    return home


@pytest.fixture
def live_fb(live_home: Path, tmp_path: Path) -> Iterator[Firebreak]:
    home = tmp_path / "home"
    shutil.copytree(live_home, home)
    fb = Firebreak(_live_settings(home))
    yield fb
    fb.close()


def _live_settings(home: Path) -> Settings:
    return Settings(home=home, live_reconnect_attempts=0, live_read_timeout_s=5.0)


def _spliced(clip: Path, dest: Path, clip_filter: str = "null") -> Path:
    """LEAD_IN_S of unrelated footage and noise, then 8 s of `clip` edited by `clip_filter`."""
    if dest.exists():
        return dest
    ffmpeg(
        *("-f", "lavfi", "-i", f"mandelbrot=size=640x360:rate=25,trim=duration={LEAD_IN_S}"),
        *("-f", "lavfi", "-i", f"anoisesrc=a=0.05:d={LEAD_IN_S}:r=44100"),
        *("-t", "8", "-i", clip),
        "-filter_complex",
        f"[2:v]{clip_filter},scale=640:360,setsar=1,fps=25[clip];"
        "[0:v]format=yuv420p[lead];[clip]format=yuv420p[main];"
        "[lead][main]concat=n=2:v=1:a=0[v];"
        "[2:a]aresample=44100[clipa];[1:a][clipa]concat=n=2:v=0:a=1[a]",
        *("-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast", "-g", "25"),
        *("-c:a", "aac", "-b:a", "96k", dest),
    )
    return dest


@dataclass
class Watched:
    publish_started: float
    publisher_exit: int
    publish_s: float
    events: list[LiveEvent] = field(default_factory=list)

    @property
    def alerts(self) -> list[LiveEvent]:
        return [e for e in self.events if e.event == "alert"]


def _watch_while_publishing(
    fb: Firebreak,
    url: str,
    media: Path,
    session_options: dict[str, object] | None = None,
    publish_options: tuple[str, ...] = ("-re",),
) -> Watched:
    """Watch `url` in a session thread while ffmpeg publishes `media` to it."""
    events: list[LiveEvent] = []
    connecting = threading.Event()

    def emit(event: LiveEvent) -> None:
        events.append(event)
        if event.state == "connecting":
            connecting.set()

    session = LiveSession(url, LockedMatcher(fb), fb.settings, emit, **session_options or {})  # type: ignore[arg-type]
    watcher = threading.Thread(target=session.run, daemon=True)
    watcher.start()
    assert connecting.wait(10)
    started = time.time()
    publisher = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            *publish_options,
            "-i",
            str(media),
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ],
        capture_output=True,
        check=False,
    )
    publish_s = time.time() - started
    watcher.join(timeout=90)
    assert not watcher.is_alive(), "the session did not see the stream end"
    return Watched(started, publisher.returncode, publish_s, events)


def _latency(watched: Watched, item: str) -> float:
    alerts = [a for a in watched.alerts if a.item == item]
    assert alerts, f"no alert on {item}: {[e.to_json() for e in watched.events]}"
    return alerts[0].wall_time - (watched.publish_started + LEAD_IN_S)


def test_banked_clip_in_a_stream_alerts_within_seconds(
    live_fb: Firebreak, rtmp: RtmpServer, clips: dict[str, Path], media_dir: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")

    watched = _watch_while_publishing(live_fb, rtmp.stream_url("plain"), media)

    latency = _latency(watched, "cockatoo.mp4")
    assert 0.0 <= latency <= MAX_LATENCY_S
    first = next(a for a in watched.alerts if a.item == "cockatoo.mp4")
    assert first.stream_time >= LEAD_IN_S - 0.1  # never before the banked clip appeared
    assert first.bank == BANK and first.score is not None and first.score >= 0.5
    assert watched.events[-1].state == "ended"


def test_mirrored_cropped_copy_in_a_stream_alerts_within_seconds(
    live_fb: Firebreak, rtmp: RtmpServer, clips: dict[str, Path], media_dir: Path
) -> None:
    media = _spliced(
        clips["cockatoo.mp4"], media_dir / "live-mirror-crop.mp4", "crop=iw*0.85:ih*0.85,hflip"
    )

    watched = _watch_while_publishing(live_fb, rtmp.stream_url("mirrored"), media)

    assert 0.0 <= _latency(watched, "cockatoo.mp4") <= MAX_LATENCY_S


def test_two_minute_benign_stream_raises_no_alert(
    live_fb: Firebreak, rtmp: RtmpServer, clips: dict[str, Path], media_dir: Path
) -> None:
    media = media_dir / "live-benign.mp4"
    parts = [
        "mandelbrot=size=640x360:rate=25",
        "life=size=640x360:rate=25:mold=10:ratio=0.1",
        "testsrc2=size=640x360:rate=25",
        "cellauto=size=640x360:rate=25:rule=110",
    ]
    inputs: list[str | Path] = []
    for source in parts:
        inputs += ["-f", "lavfi", "-t", "24", "-i", source]
    inputs += ["-stream_loop", "5", "-t", "12", "-i", clips["carphone_pristine.mp4"]]
    inputs += ["-stream_loop", "9", "-t", "12", "-i", clips["realshort.mp4"]]
    inputs += ["-f", "lavfi", "-i", "anoisesrc=a=0.05:d=120:r=44100:c=pink"]
    scaled = "".join(
        f"[{i}:v]scale=640:360,setsar=1,fps=25,format=yuv420p[v{i}];" for i in range(6)
    )
    ffmpeg(
        *inputs,
        "-filter_complex",
        scaled + "".join(f"[v{i}]" for i in range(6)) + "concat=n=6:v=1:a=0[v]",
        *("-map", "[v]", "-map", "6:a", "-c:v", "libx264", "-preset", "veryfast", "-g", "25"),
        *("-c:a", "aac", "-shortest", media),
    )

    # Two minutes of stream, published at four times real time: what is matched is the same.
    watched = _watch_while_publishing(
        live_fb, rtmp.stream_url("benign"), media, publish_options=("-readrate", "4")
    )

    assert watched.alerts == []
    assert watched.events[-1].stream_time >= 110.0  # the whole stream was looked at


def test_alert_cuts_the_stream_through_the_servers_control_endpoint(
    live_fb: Firebreak, rtmp: RtmpServer, clips: dict[str, Path], media_dir: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")
    url = rtmp.stream_url("cut-me")
    cutter = NginxRtmpCutter(rtmp.control_url)
    actions = {"cut": lambda event: cutter.cut(event.stream, "test")}

    watched = _watch_while_publishing(live_fb, url, media, {"actions": actions})

    assert watched.alerts[0].actions == {"cut": "done"}
    assert watched.publisher_exit != 0  # the server dropped the publisher mid-stream
    assert watched.publish_s < LEAD_IN_S + 8.0 - 1.0


def test_confirmed_incident_blocks_a_later_upload_of_the_recording(
    live_fb: Firebreak, rtmp: RtmpServer, clips: dict[str, Path], media_dir: Path, tmp_path: Path
) -> None:
    # bigbuckbunny is in no bank: a new incident, confirmed while it streams.
    media = media_dir / "live-new-incident.mp4"
    if not media.exists():
        ffmpeg(
            *("-stream_loop", "2", "-i", clips["bigbuckbunny.mp4"], "-t", "14"),
            *("-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-c:a", "aac", media),
        )
    recording = tmp_path / "recordings" / "incident.ts"
    url = rtmp.stream_url("incident")
    watched = _watch_while_publishing(live_fb, url, media, {"record_to": recording})
    assert watched.alerts == []

    # A viewer reports it; a reviewer confirms: the recording is banked into the incident bank.
    desk = IncidentDesk(live_fb)
    desk.report("incident-1", url, recording, "viewer-report", "looks like an attack")
    confirmed = desk.confirm("incident-1", "incidents", "moderator-1")
    upload = tmp_path / "upload.mp4"
    ffmpeg("-i", recording, "-vf", "scale=480:-2,hflip", "-crf", "30", upload)
    result = live_fb.match_file(upload)

    assert confirmed.status == "confirmed"
    assert (confirmed.banked_bank, confirmed.banked_item) == ("incidents", "incident-1")
    assert result.verdict is Verdict.MATCH
    assert result.matches[0].item.bank == "incidents"
    assert result.matches[0].item.name == "incident-1"
    actions = [e.action for e in live_fb.store.audit.entries("incident:incident-1")]
    assert actions == ["incident.confirm", "incident.open"]


def test_watch_prints_one_json_line_per_event(
    live_home: Path, clips: dict[str, Path], media_dir: Path, tmp_path: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")
    home = tmp_path / "home"
    shutil.copytree(live_home, home)
    env = {"FIREBREAK_HOME": str(home), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "firebreak.cli",
            "live",
            "watch",
            str(media),
            "--json",
            "--no-realtime",
            "--incident-bank",
            "incidents",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["state"] for e in events if e["event"] == "state"] == ["connecting", "live", "ended"]
    alerts = [e for e in events if e["event"] == "alert"]
    assert [a["item"] for a in alerts] == ["cockatoo.mp4"]
    alert = alerts[0]
    assert {"stream", "stream_time", "wall_time", "source", "bank", "score"} <= alert.keys()
    assert alert["source"] == "match" and alert["stream"] == str(media)
    assert alert["stream_time"] >= LEAD_IN_S - 0.1
    assert alert["actions"] == {}  # nothing to cut or tell in these settings
    fb = Firebreak(Settings(home=home))
    try:
        banked = next(i.name for i in fb.store.items("incidents"))
        incident = fb.store.incidents.get(banked)
    finally:
        fb.close()
    # The alert opened an incident with its frame grab; the rule confirmed and banked it.
    assert banked.startswith("live-plain")
    assert incident.status == "confirmed" and incident.decided_by == "rule:incident-bank"
    assert incident.banked_bank == "incidents" and incident.item == "cockatoo.mp4"
    assert incident.alerts[0].frame is not None
    assert (home / "incidents" / banked / incident.alerts[0].frame).is_file()


def test_session_that_cannot_connect_reports_failure_and_ends(live_fb: Firebreak) -> None:
    events: list[LiveEvent] = []
    settings = Settings(
        home=live_fb.settings.home,
        live_open_timeout_s=1.0,
        live_reconnect_attempts=1,
        live_backoff_s=0.1,
    )
    session = LiveSession("rtmp://127.0.0.1:9/live/nobody", live_fb, settings, events.append)

    session.run()

    assert [e.state for e in events] == ["connecting", "reconnecting", "failed"]
    assert events[-1].detail


def test_stream_source_that_is_missing_or_not_media_fails_with_a_reason(
    live_fb: Firebreak, tmp_path: Path
) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 100)
    for source in (str(tmp_path / "missing.mp4"), str(text)):
        events: list[LiveEvent] = []

        LiveSession(source, live_fb, live_fb.settings, events.append).run()

        assert events[-1].state == "ended"
        assert events[-1].detail and events[-1].detail != "stream ended"


def test_hls_stream_with_a_banked_clip_alerts(
    live_fb: Firebreak, clips: dict[str, Path], media_dir: Path, tmp_path: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")
    hls = tmp_path / "hls"
    hls.mkdir()
    ffmpeg(
        "-i",
        media,
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_list_size",
        "0",
        hls / "index.m3u8",
    )
    handler = functools.partial(_QuietFiles, directory=str(hls))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
    events: list[LiveEvent] = []
    try:
        LiveSession(url, live_fb, live_fb.settings, events.append).run()
    finally:
        server.shutdown()

    alerts = [e for e in events if e.event == "alert"]
    assert [a.item for a in alerts] == ["cockatoo.mp4"]
    assert alerts[0].stream_time >= LEAD_IN_S - 0.1
    assert events[-1].state == "ended"


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_stream_that_stalls_mid_way_ends_the_session_with_a_reason(
    live_fb: Firebreak, rtmp: RtmpServer, clips: dict[str, Path], media_dir: Path
) -> None:
    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")
    url = rtmp.stream_url("stalls")
    settings = Settings(
        home=live_fb.settings.home,
        live_reconnect_attempts=1,
        live_backoff_s=0.1,
        live_read_timeout_s=2.0,
        live_open_timeout_s=2.0,
    )
    events: list[LiveEvent] = []
    live = threading.Event()

    def emit(event: LiveEvent) -> None:
        events.append(event)
        if event.state == "live":
            live.set()

    session = LiveSession(url, live_fb, settings, emit)
    watcher = threading.Thread(target=session.run, daemon=True)
    watcher.start()
    publisher = subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-i",
            str(media),
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ],
    )
    try:
        assert live.wait(20)
        publisher.send_signal(signal.SIGSTOP)  # the publisher hangs: the connection stays open
        watcher.join(timeout=30)
    finally:
        publisher.kill()
        publisher.wait()

    assert not watcher.is_alive()
    states = [e.state for e in events if e.event == "state"]
    assert states[:2] == ["connecting", "live"] and "reconnecting" in states
    assert states[-1] in ("ended", "failed") and events[-1].detail != "stopped"


def test_stream_watched_through_the_api_opens_an_incident_and_banks_it(
    live_home: Path, rtmp: RtmpServer, clips: dict[str, Path], media_dir: Path, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from firebreak.api.app import create_app

    media = _spliced(clips["cockatoo.mp4"], media_dir / "live-plain.mp4")
    home = tmp_path / "home"
    shutil.copytree(live_home, home)
    app = create_app(_live_settings(home))
    fb: Firebreak = app.state.fb
    key = {"Authorization": f"Bearer {fb.store.keys.create('ingest', 'service', 'test')[1]}"}
    moderator = {"Authorization": f"Bearer {fb.store.keys.create('mod', 'moderator', 'test')[1]}"}
    url = rtmp.stream_url("via-api")

    with TestClient(app) as client:
        refused = client.post("/v1/live", json={"source": "/etc/passwd"}, headers=key)
        started = client.post(
            "/v1/live", json={"source": url, "incident_bank": "incidents"}, headers=key
        ).json()
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(media)]  # noqa: RUF005
            + ["-c", "copy", "-f", "flv", url],
            capture_output=True,
            check=False,
        )
        deadline = time.time() + 30
        while client.get(f"/v1/live/{started['id']}", headers=key).json()["running"]:
            assert time.time() < deadline, "the watched stream did not end"
            time.sleep(0.5)
        watched = client.get(f"/v1/live/{started['id']}", headers=key).json()
        incidents = client.get(
            "/v1/incidents", params={"status": "confirmed"}, headers=moderator
        ).json()

    assert refused.status_code == 422
    assert watched["alerts"] == 1 and watched["state"] == "ended"
    assert [e["item"] for e in watched["events"] if e["event"] == "alert"] == ["cockatoo.mp4"]
    assert [i["name"] for i in incidents] == [started["incident"]]
    assert incidents[0]["banked"]["bank"] == "incidents"
