"""The store, the service and the API on a real PostgreSQL server: migrations, banks and the index
version, incidents and the append-only audit log, keys, matching real clips, several processes on
one database, and the API suites of test_api and test_incidents run again on PostgreSQL.

Each test gets an empty database (`postgres_db` in conftest); without a server these tests fail,
unless FIREBREAK_TEST_NO_POSTGRES=1 leaves them out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Connection, DateTime, create_engine, inspect, text
from sqlalchemy.exc import DatabaseError

from firebreak.api.app import create_app
from firebreak.errors import BankExists, BankNotFound, ItemNotFound
from firebreak.match import Verdict
from firebreak.service import INDEXED_SIGNAL_TYPES, Firebreak
from firebreak.settings import Settings
from firebreak.store import IncidentAlert, NewItem, SignalValue, Store
from firebreak.store.keys import KeyRefused

# The API and incident suites again, on PostgreSQL: their `api` and `fb` fixtures resolve to
# this module's, which stand on an empty PostgreSQL database.
from .test_api import (  # noqa: F401
    Api,
    media,
    test_allow_list_match_suppresses_block_list_matches,
    test_bank_settings_and_item_metadata_come_back_on_read,
    test_disabled_bank_matches_nothing,
    test_every_route_refuses_a_missing_or_bad_key,
    test_hma_routes_keep_hmas_shapes,
    test_reviewers_work_the_incident_queue,
    test_roles_grant_only_their_permissions,
    test_scan_blocks_a_manipulated_copy_and_audits_it,
)
from .test_incidents import (  # noqa: F401
    recording,
    test_alerts_of_a_stream_gather_in_one_incident,
    test_confirming_banks_the_recording_so_every_later_copy_is_blocked,
    test_decisions_follow_the_lifecycle_and_are_audited,
    test_evidence_package_is_signed_and_detects_tampering,
    test_review_queue_puts_alerts_first_then_higher_risk,
    test_the_audit_log_cannot_be_rewritten,
)


@pytest.fixture
def settings(pg_settings: Settings) -> Settings:
    """conftest's `fb` (used by the incident suite) on PostgreSQL."""
    return pg_settings


@pytest.fixture
def api(pg_settings: Settings) -> Iterator[Api]:
    api = Api(pg_settings)
    with api.client:
        yield api


@pytest.fixture
def store(postgres_db: str) -> Iterator[Store]:
    store = Store(postgres_db, INDEXED_SIGNAL_TYPES)
    yield store
    store.close()


def _alembic(connection: Connection | None) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("firebreak.store") / "migrations")
    )
    config.attributes["connection"] = connection
    return config


def _pdq(n: int) -> str:
    return f"{n:064x}"


def _new(name: str, sha: str, metadata: dict[str, object] | None = None) -> NewItem:
    """A video item of an md5 and three frame hashes (at 0, 1 and 2 s), told apart by `sha`."""
    frames = tuple(
        SignalValue("pdq", _pdq(1000 * int(sha[:4], 16) + i), 90, float(i)) for i in range(3)
    )
    signals = (SignalValue("md5", sha[:32]), *frames)
    return NewItem(name, "video", 3.0, signals, source_sha256=sha, metadata=metadata or {})


# Schema


def test_migrations_bring_an_empty_database_to_head_and_back(postgres_db: str) -> None:
    Store(postgres_db, INDEXED_SIGNAL_TYPES).close()
    Store(postgres_db, INDEXED_SIGNAL_TYPES).close()  # at head already: nothing to do
    engine = create_engine(postgres_db)
    try:
        head = ScriptDirectory.from_config(_alembic(None)).get_current_head()
        with engine.connect() as db:
            assert db.scalar(text("SELECT version_num FROM alembic_version")) == head
            tables = set(inspect(db).get_table_names())
            assert {"banks", "items", "signals", "counters", "audit_log", "api_keys"} <= tables
            assert db.scalar(text("SELECT value FROM counters WHERE name = 'index_version'")) == 0
            trigger = "SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_log_append_only'"
            assert db.scalar(text(trigger)) == 1
            columns = {c["name"]: c for c in inspect(db).get_columns("signals")}
            assert str(columns["id"]["type"]) == "BIGINT"  # ids past 2**31 frames
            at = {c["name"]: c for c in inspect(db).get_columns("audit_log")}["at"]
            assert isinstance(at["type"], DateTime) and at["type"].timezone  # timestamptz

        with engine.begin() as db:
            command.downgrade(_alembic(db), "base")
        with engine.connect() as db:
            assert set(inspect(db).get_table_names()) <= {"alembic_version"}
            assert db.scalar(text(trigger)) == 0
        with engine.begin() as db:
            command.upgrade(_alembic(db), "head")
        with engine.connect() as db:
            assert db.scalar(text("SELECT version_num FROM alembic_version")) == head
    finally:
        engine.dispose()


_START = """
import sys
from firebreak.store import Store
print("ready", flush=True)
sys.stdin.readline()  # then all migrate at once
Store(sys.argv[1], ("pdq",)).close()
"""


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_processes_starting_together_on_an_empty_database_all_come_up(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Several API processes started at once each run the migrations: one migrates, the others
    wait for it, and none fails on the tables another has just made (SQLite too)."""
    url = (
        request.getfixturevalue("postgres_db")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'firebreak.db'}"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _START, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    errors = [proc.communicate(timeout=60)[1] for proc in procs]

    assert [proc.returncode for proc in procs] == [0] * 3, "\n".join(errors)


# The store


def test_banks_items_signals_and_the_index_version(store: Store) -> None:
    bank = store.create_bank("attacks", metadata={"source": "GIFCT"})
    with pytest.raises(BankExists):
        store.create_bank("attacks")
    assert bank.item_count == 0 and bank.metadata == {"source": "GIFCT"}
    assert bank.created_at.tzinfo is not None
    assert abs(bank.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert store.index_version() == 0

    first = store.add_item("attacks", _new("clip.mp4", "a" * 64, metadata={"n": 1}), "tester")
    again = store.add_item("attacks", _new("clip.mp4", "a" * 64), "tester")
    second = store.add_item("attacks", _new("clip.mp4", "b" * 64), "tester")
    digests_only = NewItem("x.bin", "other", 0.0, (SignalValue("md5", "c" * 32),))
    third = store.add_item("attacks", digests_only, "tester")

    assert first.created and not again.created and again.item.id == first.item.id
    assert second.item.name == "clip.mp4 (2)"  # a second file of the same name
    assert [e.signal_type for e in first.change.added] == ["pdq"] * 3  # md5 is not indexed
    assert (first.change.index_version, again.change.index_version) == (1, 1)
    assert second.change.index_version == 2
    assert third.change.index_version == 2 and third.change.added == ()  # nothing indexed
    assert store.index_version() == 2
    assert first.item.metadata == {"n": 1} and first.item.added_at.tzinfo is not None
    assert store.get_bank("attacks").item_count == 3
    assert [i.name for i in store.items("attacks")] == ["clip.mp4", "clip.mp4 (2)", "x.bin"]

    ids = [e.id for e in first.change.added]
    resolved = store.resolve_signals([*ids, 10**12])
    assert sorted(resolved) == sorted(ids)  # unknown ids left out
    assert {s.item.name for s in resolved.values()} == {"clip.mp4"}
    assert sorted(s.timestamp for s in resolved.values()) == [0.0, 1.0, 2.0]
    times = store.frame_times([first.item.id], ["pdq"], 50)
    assert sorted(times[first.item.id]) == [0.0, 1.0, 2.0]
    batches = list(store.iter_indexed_signals(["pdq"], batch=2))
    assert [len(b) for b in batches] == [2, 2, 2]
    found = store.find_items_by_signal("md5", "a" * 32)
    assert [(i.bank, i.name) for i in found] == [("attacks", "clip.mp4")]
    assert [v.signal_type for v in store.item_signals(first.item.id)] == ["md5"] + ["pdq"] * 3

    removed = store.remove_item("attacks", "clip.mp4", "tester")
    assert sorted(e.id for e in removed.removed) == sorted(ids)
    assert removed.index_version == 3
    with pytest.raises(ItemNotFound):
        store.item("attacks", "clip.mp4")
    assert store.resolve_signals(ids) == {}
    assert store.find_items_by_signal("md5", "a" * 32) == []

    deleted = store.delete_bank("attacks", "tester")
    assert len(deleted.removed) == 3 and deleted.index_version == 4
    with pytest.raises(BankNotFound):
        store.get_bank("attacks")
    actions = [e.action for e in store.audit.entries("bank:attacks")]
    assert actions == [
        "bank.delete",
        "bank.remove",
        "bank.add",
        "bank.add",
        "bank.add",
        "bank.create",
    ]


def test_bank_settings_are_configured_and_read_as_rules(store: Store) -> None:
    store.create_bank("attacks")
    store.create_bank("news", "allow")

    changed = store.configure_bank(
        "attacks", "admin", enabled=False, match_score=0.7, metadata={"label": "terror"}
    )
    cleared = store.configure_bank("attacks", "admin", match_score=None, review_score=0.3)

    assert (changed.enabled, changed.match_score, changed.metadata) == (
        False,
        0.7,
        {"label": "terror"},
    )
    assert (cleared.match_score, cleared.review_score, cleared.enabled) == (None, 0.3, False)
    rules = store.bank_rules()
    assert (rules["attacks"].enabled, rules["attacks"].review_score) == (False, 0.3)
    assert (rules["news"].kind, rules["news"].enabled, rules["news"].match_score) == (
        "allow",
        True,
        None,
    )
    with pytest.raises(ValueError):
        store.configure_bank("attacks", "admin", match_score=1.5)
    configured = store.audit.entries("bank:attacks")[0]
    assert configured.action == "bank.configure"
    assert configured.evidence == {"match_score": None, "review_score": 0.3}


def test_incidents_queue_and_decisions(store: Store) -> None:
    incidents = store.incidents

    def alert(t: float, score: float, level: str) -> IncidentAlert:
        return IncidentAlert(t, time.time(), "match", level, "attacks", "clip.mp4", score)

    incidents.record_alert("low", "u1", None, alert(1.0, 0.5, "review"), "live")
    incidents.record_alert("high", "u2", None, alert(1.0, 0.8, "review"), "live")
    incidents.record_alert("matched", "u3", "rec.ts", alert(1.0, 0.6, "alert"), "live")
    grown = incidents.record_alert("low", "u1", None, alert(4.0, 0.7, "alert"), "live")

    assert grown.level == "alert" and grown.max_score == pytest.approx(0.7)
    assert [a.stream_time for a in grown.alerts] == [1.0, 4.0]
    assert [i.name for i in incidents.queue()] == ["low", "matched", "high"]
    decided = incidents.decide("high", "rejected", "moderator-1", "a film")
    assert decided.decided_at is not None and decided.decided_at.tzinfo is not None
    assert [i.name for i in incidents.queue()] == ["low", "matched"]
    assert [i.name for i in incidents.queue(("rejected",))] == ["high"]
    assert [(e.action, e.actor, e.reason) for e in store.audit.entries("incident:high")] == [
        ("incident.reject", "moderator-1", "a film"),
        ("incident.open", "live", "review from match"),
    ]


def test_the_audit_log_refuses_update_delete_and_truncate(store: Store) -> None:
    store.audit.append("moderator-1", "bank.add", "bank:attacks", "confirmed upload", {"n": 1})

    for statement in (
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DatabaseError, match="append-only"), store.engine.begin() as db:
            db.execute(text(statement))

    entries = store.audit.entries()
    assert [(e.actor, e.evidence) for e in entries] == [("moderator-1", {"n": 1})]
    assert entries[0].at.tzinfo is not None


def test_api_keys_are_made_verified_and_revoked(store: Store) -> None:
    made, key = store.keys.create("ops", "admin", "root")

    assert store.keys.verify(key) == made and made.active
    assert store.keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.keys.verify("fbk_00000000_nothing") is None
    with pytest.raises(KeyRefused):
        store.keys.create("ops", "admin", "root")
    with pytest.raises(KeyRefused):
        store.keys.create("x", "emperor", "root")
    revoked = store.keys.revoke("ops", "root")
    assert revoked.revoked_at is not None and not revoked.active
    assert store.keys.verify(key) is None
    assert [k.name for k in store.keys.list()] == ["ops"]
    assert [e.action for e in store.audit.entries("key:ops")] == ["key.revoke", "key.create"]


def test_item_names_are_told_apart_as_written(store: Store) -> None:
    """Second files of one name get `(2)`: names with LIKE's special characters (a backslash is
    PostgreSQL's escape) are matched literally, and the longest names still fit their column."""
    store.create_bank("b")
    names = ["C:\\clips\\x.mp4", "50%_off.mp4", "n" * 500]

    made = [
        store.add_item("b", NewItem(name, "other", 0.0, (), source_sha256=f"{i:064x}"), "t")
        for i, name in enumerate(names * 2)
    ]

    assert [m.item.name for m in made] == [
        *names,
        "C:\\clips\\x.mp4 (2)",
        "50%_off.mp4 (2)",
        "n" * 496 + " (2)",
    ]


def test_text_postgresql_cannot_hold_is_refused_as_bad_input(
    store: Store, pg_settings: Settings
) -> None:
    """NUL characters (which PostgreSQL text cannot hold) and over-long values are a ValueError,
    as other bad input is, and so a 4xx from the API rather than a 500."""
    store.create_bank("b")
    with pytest.raises(ValueError, match="NUL"):
        store.get_bank("b\x00")
    with pytest.raises(ValueError, match="NUL"):
        store.create_bank("a\x00b")
    with pytest.raises(ValueError, match="too long"):
        store.create_bank("b" * 201)
    assert store.keys.verify("fbk_0000000\x00_secret") is None
    with pytest.raises(KeyRefused):
        store.keys.create("k" * 197, "admin", "t")  # `key:NAME` must fit the actor columns
    key = store.keys.create("k" * 196, "admin", "t")[1]
    store.close()

    app = create_app(pg_settings)
    with TestClient(app) as client:
        bank = client.get("/v1/banks/b%00", headers={"Authorization": f"Bearer {key}"})
        created = client.post(
            "/v1/banks", json={"name": "fine"}, headers={"Authorization": f"Bearer {key}"}
        )
        nul_key = client.get("/v1/banks", headers={"Authorization": "Bearer fbk_0000000\x00_x"})

    assert bank.status_code == 422 and "NUL" in bank.json()["detail"]
    assert created.status_code == 201, created.text  # audited as `key:` and 196 characters
    assert nul_key.status_code == 401


def test_a_store_outlives_the_server_dropping_its_connections(
    store: Store, postgres_db: str
) -> None:
    """A restart of the server (or a proxy closing idle connections) leaves no broken
    connection in the pool for the next request to fail on."""
    store.create_bank("attacks")
    database = postgres_db.rsplit("/", 1)[1]
    with psycopg.connect(postgres_db.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )

    assert [b.name for b in store.list_banks()] == ["attacks"]


# The service and the API


@pytest.fixture(scope="module")
def manipulated(media: dict[str, Path]) -> Path:  # noqa: F811 (the fixture imported above)
    """test_api's manipulated copy of the cockatoo clip: mirrored, shrunk, re-encoded."""
    return media["copy"]


def test_a_banked_clip_matches_its_manipulated_copy(
    pg_fb: Firebreak, clips: dict[str, Path], manipulated: Path
) -> None:
    pg_fb.create_bank("attacks")
    pg_fb.bank_file("attacks", clips["cockatoo.mp4"])

    matched = pg_fb.match_file(manipulated)
    other = pg_fb.match_file(clips["bikes.mp4"])

    assert matched.verdict is Verdict.MATCH
    assert (matched.matches[0].item.bank, matched.matches[0].item.name) == (
        "attacks",
        "cockatoo.mp4",
    )
    assert other.verdict is Verdict.NO_MATCH


def test_content_banked_by_one_process_is_matched_by_another_at_once(
    pg_settings: Settings, tmp_path: Path, clips: dict[str, Path], manipulated: Path
) -> None:
    """Two Firebreaks on one database, each with its own home (its own index files), as API
    processes on two machines: the other's index catches up at its next query, by the store's
    index version."""
    first = Firebreak(pg_settings)
    second = Firebreak(pg_settings.model_copy(update={"home": tmp_path / "other-home"}))
    try:
        first.create_bank("attacks")
        assert second.match_file(manipulated).verdict is Verdict.NO_MATCH  # its index is built now
        first.bank_file("attacks", clips["cockatoo.mp4"])

        started = time.monotonic()
        assert len(second.indexes["frames"]) > 0  # caught up by this one access
        caught_up = time.monotonic() - started
        matched = second.match_file(manipulated)
        assert matched.verdict is Verdict.MATCH
        assert caught_up < 1.0, f"the other process took {caught_up:.2f} s to catch up"
        assert second.index.version == first.index.version == first.store.index_version()

        first.remove_item("attacks", "cockatoo.mp4")
        assert second.match_file(manipulated).verdict is Verdict.NO_MATCH
    finally:
        first.close()
        second.close()


def test_api_banks_an_upload_and_scans_on_postgres(
    pg_settings: Settings, clips: dict[str, Path], manipulated: Path
) -> None:
    app = create_app(pg_settings)
    _, key = app.state.fb.store.keys.create("k", "admin", "test")
    auth = {"Authorization": f"Bearer {key}"}
    clip = clips["cockatoo.mp4"]

    with TestClient(app) as client:
        created = client.post("/v1/banks", json={"name": "attacks"}, headers=auth)
        added = client.post(
            "/v1/banks/attacks/items",
            files={"file": (clip.name, clip.read_bytes())},
            data={"metadata": json.dumps({"label": "terror"})},
            headers=auth,
        )
        scanned = client.post(
            "/v1/scan", files={"file": (manipulated.name, manipulated.read_bytes())}, headers=auth
        )
        banks = client.get("/v1/banks", headers=auth)

    assert created.status_code == 201, created.text
    assert added.status_code == 201, added.text
    assert added.json()["name"] == "cockatoo.mp4" and added.json()["metadata"] == {
        "label": "terror"
    }
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["verdict"] == "match"
    assert scanned.json()["matches"][0]["item"] == "cockatoo.mp4"
    assert [(b["name"], b["item_count"]) for b in banks.json()] == [("attacks", 1)]
