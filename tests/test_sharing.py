"""Two Firebreak instances on loopback sharing a bank: A publishes a signed feed over HTTP, B pulls
it into an import bank, follows it during an incident, and sends opinions back; tampered,
replayed and wrongly signed batches are refused; a pull killed half-way resumes exactly once."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firebreak.api.app import create_app
from firebreak.exchange.feed import BatchRefused, public_key_pem
from firebreak.incidents import IncidentDesk
from firebreak.live.session import LiveEvent
from firebreak.match import Verdict
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.sharing import Fetch, Puller
from firebreak.store.feed import FeedRefused, Subscription

from .conftest import ffmpeg

TOKEN_ENV = "FIREBREAK_TEST_PARTNER_TOKEN"


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, Firebreak]]:
    """Instance A: the API served by uvicorn on a free loopback port."""
    app = create_app(settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "instance A did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app.state.fb
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(params=["sqlite", "postgresql"])
def a(
    request: pytest.FixtureRequest, tmp_path: Path, clips: dict[str, Path]
) -> Iterator[tuple[str, Firebreak]]:
    """Instance A, on SQLite and on PostgreSQL."""
    database = request.getfixturevalue("postgres_db") if request.param == "postgresql" else None
    settings = Settings(
        home=tmp_path / "a", database_url=database, exchange_false_positives_to_disable=1
    )
    with serving(settings) as (url, fb):
        fb.create_bank("attacks")
        fb.bank_file("attacks", clips["cockatoo.mp4"])
        fb.bank_file("attacks", clips["bikes.mp4"])
        fb.create_bank("private")
        fb.store.configure_bank("attacks", "admin", shared=True)
        yield url, fb


@pytest.fixture
def b(tmp_path: Path) -> Iterator[Firebreak]:
    fb = Firebreak(Settings(home=tmp_path / "b"))
    yield fb
    fb.close()


def _subscribe(
    a: tuple[str, Firebreak],
    b: Firebreak,
    monkeypatch: pytest.MonkeyPatch,
    bank: str = "attacks",
    key: str | None = None,
    fetch: Any = None,
) -> Puller:
    url, fb_a = a
    token = fb_a.store.keys.create(f"{b.settings.home.name}-{bank}", "partner", "admin", [bank])[1]
    monkeypatch.setenv(TOKEN_ENV, token)
    from firebreak.sharing import Publisher

    puller = Puller(b, fetch)
    puller.subscribe(f"a-{bank}", url, bank, key or Publisher(fb_a).public_key, TOKEN_ENV)
    return puller


@pytest.fixture(scope="module")
def copy(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sharing") / "reupload.mp4"
    ffmpeg("-i", clips["cockatoo.mp4"], "-t", "10", "-vf", "hflip,scale=480:-2", "-crf", "30", path)
    return path


def test_partner_pulls_a_shared_bank_and_blocks_its_copies(
    a: tuple[str, Firebreak], b: Firebreak, copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    puller = _subscribe(a, b, monkeypatch)

    first = puller.pull("a-attacks")
    result = b.match_file(copy)
    a[1].remove_item("attacks", "bikes.mp4")
    second = puller.pull("a-attacks")
    third = puller.pull("a-attacks")

    assert (first.added, first.removed) == (2, 0)
    assert result.verdict is Verdict.MATCH and result.matches[0].item.bank == "attacks"
    assert result.matches[0].item.metadata["origin"]["subscription"] == "a-attacks"
    assert (second.added, second.removed) == (0, 1)
    assert (third.added, third.removed, third.cursor) == (0, 0, second.cursor)
    assert [i.name for i in b.store.items("attacks")] == ["cockatoo.mp4"]


def test_partner_key_pulls_only_the_banks_shared_with_it(
    a: tuple[str, Firebreak], b: Firebreak, monkeypatch: pytest.MonkeyPatch
) -> None:
    a[1].store.configure_bank("private", "admin", shared=True)
    puller = _subscribe(a, b, monkeypatch)  # the token is scoped to "attacks"
    key = b.store.subscriptions.get("a-attacks").publisher_key
    b.store.subscriptions.add("a-private", a[0], "private", "private", key, TOKEN_ENV, "t")

    with pytest.raises(FeedRefused, match="HTTP 403"):
        puller.pull("a-private")


def test_confirmed_incident_reaches_a_following_partner_within_10_s(
    a: tuple[str, Firebreak],
    b: Firebreak,
    clips: dict[str, Path],
    copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fb_a = a[1]
    fb_a.create_bank("incidents")
    fb_a.store.configure_bank("incidents", "admin", shared=True)
    puller = _subscribe(a, b, monkeypatch, bank="incidents")
    stop = threading.Event()
    follower = threading.Thread(target=puller.follow, args=("a-incidents", stop, 5.0))
    follower.start()
    recording = tmp_path / "stream.ts"
    ffmpeg("-i", clips["cockatoo.mp4"], "-c", "copy", "-f", "mpegts", recording)
    desk = IncidentDesk(fb_a)
    desk.record_alert(
        "stream-1", LiveEvent("alert", "rtmp://a/live/1", 4.0, time.time(), "report"), recording
    )
    try:
        desk.confirm("stream-1", "incidents", "moderator-a")
        confirmed = time.monotonic()
        while not b.store.bank_rules().get("incidents") or not b.store.items("incidents"):
            assert time.monotonic() - confirmed < 10.0, "the incident did not reach B in 10 s"
            time.sleep(0.1)
        delay = time.monotonic() - confirmed
    finally:
        stop.set()
        follower.join(15)

    print(f"incident reached B in {delay:.2f} s")
    assert delay < 10.0
    assert b.match_file(copy).verdict is Verdict.MATCH


def test_partner_false_positive_reaches_the_publisher_and_disables_the_item(
    a: tuple[str, Firebreak], b: Firebreak, copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    puller = _subscribe(a, b, monkeypatch)
    puller.pull("a-attacks")

    answer = puller.send_opinion("a-attacks", "cockatoo.mp4", "false_positive", "a zoo video")
    item = a[1].store.item("attacks", "cockatoo.mp4")

    assert answer["disabled"] is True
    assert a[1].store.feed.opinions(item.id)[0]["opinion"] == "false_positive"
    assert not item.enabled
    assert a[1].match_file(copy).verdict is Verdict.NO_MATCH  # until a person decides
    assert puller.pull("a-attacks").opinions == 1  # the opinion is in the feed too


class Tamper(Fetch):
    """Fetches for real, then changes what came back."""

    def __init__(self, change: Any) -> None:
        self.change = change
        self.seen: list[object] = []

    def __call__(self, subscription: Subscription, after: int, wait_s: float) -> object:
        envelope = super().__call__(subscription, after, wait_s)
        self.seen.append(envelope)
        return self.change(envelope, self.seen)


def test_tampered_replayed_unsigned_and_wrongly_signed_batches_are_refused(
    a: tuple[str, Firebreak], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def altered(envelope: dict[str, str], _: Any) -> object:
        return envelope | {"batch": envelope["batch"].replace("cockatoo", "cockatoX")}

    def unsigned(envelope: dict[str, str], _: Any) -> object:
        return envelope | {"signature": ""}

    def replayed(envelope: object, seen: list[object]) -> object:
        return seen[0]  # the first batch, again

    cases = {"altered": (altered, "signature"), "unsigned": (unsigned, "unsigned")}
    for name, (change, reason) in cases.items():
        fb = Firebreak(Settings(home=tmp_path / name))
        puller = _subscribe(a, fb, monkeypatch, fetch=Tamper(change))
        with pytest.raises(BatchRefused, match=reason):
            puller.pull("a-attacks")
        assert fb.store.subscriptions.get("a-attacks").last_cursor == 0
        fb.close()

    fb = Firebreak(Settings(home=tmp_path / "replay"))
    puller = _subscribe(a, fb, monkeypatch, fetch=Tamper(replayed))
    with pytest.raises(BatchRefused, match="replayed"):
        puller.pull("a-attacks")  # the first batch applies; its replay is refused
    assert len(fb.store.items("attacks")) == 2
    fb.close()

    fb = Firebreak(Settings(home=tmp_path / "wrong-key"))
    stranger = public_key_pem(Ed25519PrivateKey.generate())
    puller = _subscribe(a, fb, monkeypatch, key=stranger)
    with pytest.raises(BatchRefused, match="signature"):
        puller.pull("a-attacks")
    fb.close()


def test_pull_killed_half_way_resumes_and_applies_each_event_once(
    a: tuple[str, Firebreak], b: Firebreak, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a[1].bank_file("attacks", clips["bigbuckbunny.mp4"])
    puller = _subscribe(a, b, monkeypatch)
    real_add = b.store.add_item
    calls = {"n": 0}

    def dying_add(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed mid-pull")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(b.store, "add_item", dying_add)
    with pytest.raises(KeyboardInterrupt):
        puller.pull("a-attacks")
    assert len(b.store.items("attacks")) == 1
    monkeypatch.setattr(b.store, "add_item", real_add)

    restarted = Puller(b).pull("a-attacks")

    names = [i.name for i in b.store.items("attacks")]
    assert sorted(names) == ["bigbuckbunny.mp4", "bikes.mp4", "cockatoo.mp4"]
    assert restarted.added == 2
    audit = [json.dumps(e.evidence) for e in b.store.audit.entries("bank:attacks")]
    assert sum('"item": "cockatoo.mp4"' in e for e in audit) == 1


def test_partner_process_killed_mid_pull_applies_everything_exactly_once_on_restart(
    a: tuple[str, Firebreak], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from firebreak.store import SignalValue

    _, fb_a = a
    rng = np.random.default_rng(5)
    for n in range(200):
        fb_a.add_hashes("attacks", f"hash-{n:03d}", [SignalValue("pdq", rng.bytes(32).hex())], "t")
    home = tmp_path / "b-process"
    b = Firebreak(Settings(home=home))
    _subscribe(a, b, monkeypatch)
    b.close()
    env = {**os.environ, "FIREBREAK_HOME": str(home)}
    command = [sys.executable, "-m", "firebreak.cli", "exchange", "pull", "a-attacks"]

    def banked() -> int:
        fb = Firebreak(Settings(home=home))
        try:
            return len(fb.store.items("attacks")) if "attacks" in fb.store.bank_rules() else 0
        finally:
            fb.close()

    puller = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while banked() < 20:
        assert puller.poll() is None, "the pull ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(puller.pid, signal.SIGKILL)
    puller.wait(10)
    applied_before = banked()
    restarted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    fb = Firebreak(Settings(home=home))
    names = [i.name for i in fb.store.items("attacks")]
    cursor = fb.store.subscriptions.get("a-attacks").last_cursor
    fb.close()
    assert 20 <= applied_before < 202
    assert restarted.returncode == 0, restarted.stderr
    assert len(names) == len(set(names)) == 202  # the two clips and the 200 hashes, once each
    assert cursor == max(e.cursor for e in fb_a.store.feed.events("attacks", 0, 1000))
