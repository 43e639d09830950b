"""The upload path at scale: uploads on a Redis stream, two hasher and two matcher processes on
PostgreSQL, workers killed with SIGKILL mid-run, and every upload acted on exactly once.

Redis and PostgreSQL run on loopback (FIREBREAK_TEST_REDIS names another Redis); every test uses
its own stream prefix, so tests can run side by side (pytest -n 2).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

from firebreak.scale.queue import (
    DEAD,
    HASHED,
    RESULTS,
    UPLOADS,
    WORKERS,
    RedisStreamsQueue,
)
from firebreak.scale.workers import (
    WorkerConfig,
    decode_query,
    encode_query,
    match_query,
    run_worker,
    submit_upload,
)
from firebreak.service import Firebreak
from firebreak.settings import ActionRule, Settings
from firebreak.signals import hash_query_file
from firebreak.store.scale import NewUploadHashes, UploadLedger

from .conftest import ffmpeg

REDIS_URL = os.environ.get("FIREBREAK_TEST_REDIS", "redis://127.0.0.1:6379/0")
RULES = [
    ActionRule(bank="watch", verdict="match", actions=["hold"]),
    ActionRule(verdict="match", actions=["block"]),
    ActionRule(verdict="review", actions=["hold"]),
]
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A stream prefix of this test's own, removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}", pytrace=False)
    name = f"fbtest-{secrets.token_hex(4)}"
    yield name
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small distinct clips (2 s, 160×120, 15 fps): some banked, one a re-encoded copy of a
    banked one, one not a video at all."""
    folder = tmp_path_factory.mktemp("scale-media")
    sources = {
        "a": "mandelbrot=size=160x120:rate=15",
        "b": "life=size=160x120:rate=15:seed=7:mold=10",
        "c": "cellauto=size=160x120:rate=15:rule=110:seed=3",
        "d": "testsrc2=size=160x120:rate=15",
        "e": "gradients=size=160x120:rate=15:seed=5:speed=0.05",
        "f": "life=size=160x120:rate=15:seed=99:ratio=0.3",
        "g": "mandelbrot=size=160x120:rate=15:start_scale=1.5",
    }
    paths = {}
    for name, source in sources.items():
        paths[name] = folder / f"{name}.mp4"
        ffmpeg("-f", "lavfi", "-i", source, "-t", "2", "-pix_fmt", "yuv420p", paths[name])
    paths["a2"] = folder / "a2.mp4"
    ffmpeg("-i", paths["a"], "-crf", "32", paths["a2"])
    paths["bad"] = folder / "bad.mp4"
    paths["bad"].write_bytes(b"not a video, only its name says so" * 10)
    return paths


# The queue


def test_unacknowledged_events_are_redelivered_to_another_consumer(prefix: str) -> None:
    queue = RedisStreamsQueue(REDIS_URL, prefix, visibility_timeout_s=0.3, claim_every_s=0.0)
    queue.ensure_group(UPLOADS, "g")
    queue.ensure_group(UPLOADS, "g")  # a second time: nothing happens
    ids = [queue.publish(UPLOADS, {"event_id": f"e{n}"}) for n in range(3)]

    first = queue.consume(UPLOADS, "g", "dies", 10, 0.1)  # read, never acknowledged
    too_soon = queue.consume(UPLOADS, "g", "lives", 10, 0.05)
    time.sleep(0.4)
    again = queue.consume(UPLOADS, "g", "lives", 10, 0.05)
    for delivery in again[:2]:
        queue.ack(delivery)
    queue.dead_letter(again[2], "drill")
    after = queue.consume(UPLOADS, "g", "lives", 10, 0.05)

    assert [d.message_id for d in first] == ids
    assert [d.event["event_id"] for d in first] == ["e0", "e1", "e2"]
    assert {d.attempts for d in first} == {1}
    assert too_soon == []  # still within the first consumer's visibility timeout
    assert [d.message_id for d in again] == ids and {d.attempts for d in again} == {2}
    assert after == [] and queue.pending(UPLOADS, "g") == 0
    dead = queue.read(DEAD)
    assert len(dead) == 1 and dead[0][1]["event"] == {"event_id": "e2"}
    assert dead[0][1]["reason"] == "drill" and dead[0][1]["attempts"] == 2
    queue.close()


def test_trimming_drops_only_what_every_group_acknowledged(prefix: str) -> None:
    queue = RedisStreamsQueue(REDIS_URL, prefix)
    queue.ensure_group(UPLOADS, "hashers")
    queue.ensure_group(UPLOADS, "auditors")
    for n in range(5):
        queue.publish(UPLOADS, {"event_id": f"e{n}"})
    for delivery in queue.consume(UPLOADS, "hashers", "h", 5, 0.05):
        queue.ack(delivery)
    audited = queue.consume(UPLOADS, "auditors", "a", 3, 0.05)
    queue.ack(audited[0])
    queue.ack(audited[2])  # e1 stays pending; e3, e4 not yet read by the auditors

    dropped = queue.trim(UPLOADS)
    left = [event["event_id"] for _, event in queue.read(UPLOADS)]
    for delivery in queue.consume(UPLOADS, "auditors", "a", 5, 0.05):
        queue.ack(delivery)
    queue.ack(audited[1])
    dropped_later = queue.trim(UPLOADS)

    assert (dropped, left) == (1, ["e1", "e2", "e3", "e4"])
    assert dropped_later == 4 and queue.length(UPLOADS) == 0
    assert queue.trim("no-such-stream") == 0
    queue.close()


# Signals on the wire, the ledger


def test_signals_survive_the_store_exactly_and_match_as_the_file_does(
    fb: Firebreak, media: dict[str, Path]
) -> None:
    fb.create_bank("attacks")
    fb.bank_file("attacks", media["a"])
    query = hash_query_file(media["a2"], fb.settings)

    decoded = decode_query(encode_query(query), str(media["a2"]))
    by_queue = match_query(fb, decoded, str(media["a2"]))
    by_file = fb.match_file(media["a2"])

    assert decoded.views == query.views and decoded.digests == query.digests
    assert all(
        (x.vector == y.vector).all() and x.timestamp == y.timestamp
        for x, y in zip(decoded.thumb_views, query.thumb_views, strict=True)
    )
    assert by_queue.to_json() | {"elapsed_s": 0} == by_file.to_json() | {"elapsed_s": 0}
    assert by_queue.verdict.value == "match"


def test_the_ledger_records_an_event_once_and_its_effects_with_it(fb: Firebreak) -> None:
    ledger = UploadLedger(fb.store.engine)
    hashes = NewUploadHashes("s" * 64, "p", "/x.mp4", {"k": 1}, {"format": 1})
    ran: list[str] = []

    def effect(_: Any) -> dict[str, object]:
        ran.append("effect")
        return {"review_id": 7}

    first, created = ledger.record_hashes("ev-1", "w1", hashes, {"status": "hashed"})
    second, again = ledger.record_hashes("ev-1", "w2", hashes, {"status": "other"})
    match, made = ledger.record("match", "ev-1", "w1", {"verdict": "match"}, effect)
    repeat, remade = ledger.record("match", "ev-1", "w2", {"verdict": "no"}, effect)

    assert (created, again, made, remade) == (True, False, True, False)
    assert second == first and second.worker == "w1" and second.outcome == {"status": "hashed"}
    assert ran == ["effect"]  # the repeat's effects never ran
    assert repeat.outcome == {"verdict": "match", "review_id": 7} == match.outcome
    assert ledger.count("hash") == 1 and ledger.count("match") == 1
    assert ledger.has_signals("s" * 64, "p") and ledger.signals("s" * 64, "p") == {"format": 1}
    assert [u.event_id for u in ledger.uploads_of_file("s" * 64)] == ["ev-1"]


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on a free loopback port."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_workers_fetch_urls_keep_to_the_media_root_and_set_aside_malformed_events(
    tmp_path: Path, media: dict[str, Path], prefix: str
) -> None:
    settings = Settings(home=tmp_path / "home", api_fetch_private=True)
    fb = Firebreak(settings)
    fb.create_bank("attacks")
    fb.bank_file("attacks", media["a"])
    outside = tmp_path / "elsewhere.mp4"
    shutil.copyfile(media["a"], outside)
    config = WorkerConfig(REDIS_URL, prefix, visibility_timeout_s=1.0, media_root=media["a"].parent)
    queue = RedisStreamsQueue(REDIS_URL, prefix)
    stop = threading.Event()
    threads = [
        threading.Thread(target=run_worker, args=(kind, settings, stop, config, kind))
        for kind in ("hasher", "matcher")
    ]
    for thread in threads:
        thread.start()
    results = Results(queue)
    try:
        with serving(media["a"].parent) as url:
            queue.publish(UPLOADS, {"event_id": "by-url", "url": f"{url}/a.mp4"})
            queue.publish(UPLOADS, {"event_id": "missing", "url": f"{url}/none.mp4"})
            submit_upload(queue, [outside, media["d"]], event_ids=["outside", "inside"])
            queue.publish(UPLOADS, {"path": str(media["a"])})  # no event id
            results.wait_for(4, 60, [])
            deadline = time.monotonic() + 10
            while not queue.read(DEAD) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)
    fb.close()
    got = {event_id: outcomes[0] for event_id, outcomes in results.by_event.items()}
    dead = queue.read(DEAD)
    queue.close()

    assert (got["by-url"]["verdict"], got["by-url"]["decision"]) == ("match", "block")
    assert got["by-url"]["file"].endswith("/a.mp4")
    assert got["missing"]["status"] == "rejected" and "HTTP 404" in got["missing"]["reason"]
    assert got["outside"]["status"] == "rejected" and "media root" in got["outside"]["reason"]
    assert got["inside"]["verdict"] == "no_match"
    assert [event["event"] for _, event in dead] == [{"path": str(media["a"])}]


def test_twins_racing_on_one_event_act_once_on_postgresql(pg_settings: Settings) -> None:
    fb = Firebreak(pg_settings)
    ledger = UploadLedger(fb.store.engine)
    barrier = threading.Barrier(2)
    ran: list[str] = []
    answers: dict[str, bool] = {}

    def effect(_: Any) -> None:
        ran.append("effect")
        time.sleep(0.3)  # the twin reaches the ledger row meanwhile, and waits on its key

    def twin(name: str) -> None:
        barrier.wait()
        answers[name] = ledger.record("match", "ev-race", name, {"by": name}, effect)[1]

    threads = [threading.Thread(target=twin, args=(n,)) for n in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    entry = ledger.processed("match", "ev-race")
    fb.close()

    assert sorted(answers.values()) == [False, True] and ran == ["effect"]
    assert entry is not None and entry.outcome == {"by": entry.worker}


# The acceptance test


def _start(
    kind: str, settings: Settings, stop: Any, config: WorkerConfig, name: str
) -> SpawnProcess:
    process = SPAWN.Process(
        target=run_worker, args=(kind, settings, stop, config, name), name=name, daemon=True
    )
    process.start()
    return process


class Results:
    """The results stream, read as it grows: every outcome by event id (repeats kept)."""

    def __init__(self, queue: RedisStreamsQueue) -> None:
        self.queue = queue
        self.last = "0"
        self.by_event: dict[str, list[dict[str, Any]]] = {}
        self.messages = 0

    def poll(self) -> int:
        while batch := self.queue.read(RESULTS, self.last, 1000):
            for message_id, event in batch:
                self.by_event.setdefault(event["event_id"], []).append(event)
                self.last = message_id
                self.messages += 1
        return len(self.by_event)

    def wait_for(self, count: int, timeout_s: float, alive: list[SpawnProcess]) -> None:
        deadline = time.monotonic() + timeout_s
        while self.poll() < count:
            if time.monotonic() > deadline:
                exits = {p.name: p.exitcode for p in alive}
                raise AssertionError(f"{len(self.by_event)}/{count} results; workers {exits}")
            time.sleep(0.1)


EXPECTED = {
    "a": ("match", "block"),
    "a2": ("match", "block"),
    "b": ("match", "block"),
    "c": ("match", "hold"),
    "d": ("no_match", "allow"),
    "e": ("no_match", "allow"),
    "f": ("no_match", "allow"),
    "bad": ("rejected", None),
}


def test_a_thousand_uploads_through_killed_workers_are_each_acted_on_once(
    postgres_db: str, tmp_path: Path, media: dict[str, Path], prefix: str
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=postgres_db, action_rules=RULES)
    fb = Firebreak(settings)
    fb.create_bank("attacks")
    fb.create_bank("watch")
    fb.bank_file("attacks", media["a"])
    fb.bank_file("attacks", media["b"])
    fb.bank_file("watch", media["c"])
    queue = RedisStreamsQueue(REDIS_URL, prefix)
    config = WorkerConfig(REDIS_URL, prefix, visibility_timeout_s=2.0, batch=8)
    stop = SPAWN.Event()
    workers = {
        "hasher-1": _start("hasher", settings, stop, config, "hasher-1"),
        "hasher-2": _start("hasher", settings, stop, config, "hasher-2"),
        # Kills itself with SIGKILL right after its 100th commit, before publishing or
        # acknowledging: the event is redelivered to a matcher that must not act again.
        "matcher-1": _start(
            "matcher",
            settings,
            stop,
            WorkerConfig(REDIS_URL, prefix, 2.0, batch=8, chaos_kill_after=100),
            "matcher-1",
        ),
        "matcher-2": _start("matcher", settings, stop, config, "matcher-2"),
    }
    names = list(EXPECTED)
    files = {f"ev-{n:04d}": names[n % len(names)] for n in range(1000)}
    results = Results(queue)
    ledger = UploadLedger(fb.store.engine)
    try:
        started = time.monotonic()
        submit_upload(queue, [media[f] for f in files.values()], {"test": 1}, list(files))
        while ledger.count("hash") < 300:
            assert time.monotonic() - started < 90, "the hashers made no progress"
            time.sleep(0.02)
        os.kill(workers["hasher-1"].pid or 0, signal.SIGKILL)  # kill -9, mid-run
        hashed_at_kill = ledger.count("hash")
        workers["hasher-1"].join(10)
        workers["matcher-1"].join(60)  # it dies on its 100th commit
        workers["matcher-3"] = _start("matcher", settings, stop, config, "matcher-3")
        while ledger.count("match") < 500:
            assert time.monotonic() - started < 90, "the matchers made no progress"
            time.sleep(0.02)
        first_matcher_2 = workers["matcher-2"]
        os.kill(first_matcher_2.pid or 0, signal.SIGKILL)  # kill -9 a busy matcher
        matched_at_kill = ledger.count("match")
        first_matcher_2.join(10)
        # Restarted under the same consumer name: it takes back its own pending events.
        workers["matcher-2"] = _start("matcher", settings, stop, config, "matcher-2")
        results.wait_for(1000, 120, list(workers.values()))
        all_done_s = time.monotonic() - started

        # A newly banked file is matched by the running matchers from the next event on.
        submit_upload(queue, [media["g"]], event_ids=["fresh-before"])
        results.wait_for(1001, 30, list(workers.values()))
        banked = time.monotonic()
        fb.bank_file("attacks", media["g"])
        before = UploadLedger(fb.store.engine).upload_hashes("fresh-before")
        assert before is not None
        queue.publish(
            HASHED,
            {
                "event_id": "fresh-after",
                "sha256": before.sha256,
                "params": before.params,
                "source": str(media["g"]),
                "media": str(media["g"]),
                "metadata": {},
            },
        )
        results.wait_for(1002, 30, list(workers.values()))
        fresh_s = time.monotonic() - banked
    finally:
        stop.set()
        for process in workers.values():
            process.join(20)
            if process.is_alive():
                process.kill()
    announcements = [event for _, event in queue.read(WORKERS, "0", 100)]
    pending = queue.pending(UPLOADS, "hashers") + queue.pending(HASHED, "matchers")
    with create_engine(postgres_db).connect() as db:
        audits: dict[str, int] = dict(
            db.execute(
                text(
                    "SELECT subject, count(*) FROM audit_log WHERE action LIKE 'scan.%' "
                    "GROUP BY subject"
                )
            ).all()
        )
        reviews = db.scalar(text("SELECT count(*) FROM reviews"))
        last_of_matcher_1 = db.scalar(
            text(
                "SELECT event_id FROM processed_events WHERE worker = 'matcher-1' "
                "ORDER BY processed_at DESC LIMIT 1"
            )
        )
        matched_by: dict[str, int] = dict(
            db.execute(
                text(
                    "SELECT worker, count(*) FROM processed_events WHERE stage = 'match' GROUP BY worker"
                )
            ).all()
        )
    fb.close()
    queue.close()

    print(
        f"1000 uploads through in {all_done_s:.1f} s (hasher killed at {hashed_at_kill} hashed, "
        f"matcher at {matched_at_kill} matched); "
        f"fresh bank → matched result in {fresh_s:.3f} s; results {results.messages} messages for "
        f"{len(results.by_event)} events; matches by worker {matched_by}; "
        f"ready {[(a['worker'], a['ready_s']) for a in announcements if 'ready_s' in a]}"
    )
    # Every event has a result, and they agree with one another and with the file.
    assert workers["hasher-1"].exitcode == -signal.SIGKILL and hashed_at_kill < 1000
    assert workers["matcher-1"].exitcode == -signal.SIGKILL
    assert first_matcher_2.exitcode == -signal.SIGKILL and matched_at_kill < 875
    for event_id, name in files.items():
        outcomes = results.by_event[event_id]
        assert all(o == outcomes[0] for o in outcomes), event_id  # repeats are the same
        verdict, decision = EXPECTED[name]
        got = outcomes[0]
        if verdict == "rejected":
            assert got["status"] == "rejected" and got["stage"] == "hash", got
            continue
        assert (got["verdict"], got["decision"]) == (verdict, decision), (event_id, got)
        assert (got["review_id"] is not None) == (decision == "hold")
    # Exactly once in effect: one ledger row per stage, one audit entry per acted-on upload,
    # one review per held upload, nothing left pending.
    acted = [e for e, name in files.items() if EXPECTED[name][1] in ("block", "hold")]
    held = [e for e, name in files.items() if EXPECTED[name][1] == "hold"]
    assert ledger.count("hash") == 1001 and ledger.count("match") == 1000 - 125 + 2
    assert {s: n for s, n in audits.items() if s.startswith("upload:ev-")} == {
        f"upload:{e}": 1 for e in acted
    }
    assert reviews == len(held) == len({results.by_event[e][0]["review_id"] for e in held})
    assert pending == 0
    assert matched_by.get("matcher-1") == 100  # what it committed before it died stands
    stopped = [a for a in announcements if a.get("stopped")]
    assert {a["worker"] for a in stopped} == {"hasher-2", "matcher-2", "matcher-3"}
    # matcher-1 died between committing its last event and publishing it: that result came
    # from the matcher that was handed the event again, which found it in the ledger.
    assert last_of_matcher_1 in results.by_event
    assert sum(a["dead"] for a in stopped) == 0
    # Freshness: the file banked a moment before its event is matched.
    assert results.by_event["fresh-before"][0]["verdict"] == "no_match"
    assert results.by_event["fresh-after"][0]["verdict"] == "match"
    assert any(a.get("worker") == "matcher-3" and a["ready_s"] > 0 for a in announcements)
