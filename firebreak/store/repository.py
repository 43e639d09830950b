"""The store: banks, items and signals behind one SQLAlchemy implementation (SQLite, PostgreSQL).

Every write is one transaction. Changes to indexed signals bump the `index_version` counter in the
same transaction, so an index saved beside the database can tell whether it is still current.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, func, select, text, update
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from firebreak.errors import BankExists, BankNotFound, ItemNotFound
from firebreak.store.feed import Feed, Subscriptions, lock_feed
from firebreak.store.incidents import AuditLog, Incidents, write_audit
from firebreak.store.keys import ApiKeys
from firebreak.store.models import (
    BankRow,
    CounterRow,
    FeedEventRow,
    IndexChangeRow,
    ItemRow,
    SignalRow,
)
from firebreak.store.orgs import Orgs
from firebreak.store.reviews import Reviews

INDEX_VERSION = "index_version"
_CHANGE_LOG = 10_000
"""Index versions the change log keeps; a process further behind rebuilds its index."""
_ITEM_NAME_LENGTH = 500  # items.name's length


class Unset:
    """The type of UNSET: "leave as it is", where None means "clear"."""


UNSET = Unset()
BANK_KINDS = ("block", "allow")


@dataclass(frozen=True)
class Bank:
    id: int
    name: str
    kind: str
    created_at: datetime
    item_count: int
    enabled: bool = True
    match_score: float | None = None
    """Score at which this bank's items match; the settings' `match_score` when None."""
    review_score: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    shared: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "shared": self.shared,
            "kind": self.kind,
            "enabled": self.enabled,
            "match_score": self.match_score,
            "review_score": self.review_score,
            "metadata": dict(self.metadata),
            "item_count": self.item_count,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class BankRule:
    """What matching needs of a bank: its kind, whether it is on, its own thresholds."""

    name: str
    kind: str
    enabled: bool
    match_score: float | None
    review_score: float | None
    label: str = ""
    """The bank's metadata `label`, which action rules can name."""


@dataclass(frozen=True)
class Item:
    id: int
    bank: str
    name: str
    media_kind: str
    duration_s: float
    source_file: str | None
    source_md5: str | None
    source_sha256: str | None
    added_by: str
    added_at: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "enabled": self.enabled,
            "bank": self.bank,
            "name": self.name,
            "media_kind": self.media_kind,
            "duration_s": self.duration_s,
            "md5": self.source_md5,
            "sha256": self.source_sha256,
            "added_by": self.added_by,
            "added_at": self.added_at.isoformat(),
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class SignalValue:
    """One signal of an item: a digest, a PDQ hash, or one frame of a video hash."""

    signal_type: str
    value: str
    quality: int | None = None
    timestamp: float | None = None


@dataclass(frozen=True)
class NewItem:
    """Everything needed to bank one item, computed before any write."""

    name: str
    media_kind: str
    duration_s: float
    signals: tuple[SignalValue, ...]
    source_file: str | None = None
    source_md5: str | None = None
    source_sha256: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexEntry:
    """An indexed signal: its id (the id the index stores), type and value."""

    id: int
    signal_type: str
    value: str


@dataclass(frozen=True)
class IndexChange:
    """What a write did to the indexed signals, and the index version it brought the store to."""

    added: tuple[IndexEntry, ...]
    removed: tuple[IndexEntry, ...]
    index_version: int


@dataclass(frozen=True)
class AddOutcome:
    item: Item
    created: bool
    change: IndexChange


@dataclass(frozen=True)
class IndexedSignal:
    """Where an indexed code came from: its item and the time of its frame."""

    signal_id: int
    item: Item
    timestamp: float
    quality: int | None


def value_key(value: str) -> str:
    return value if len(value) <= 64 else hashlib.sha256(value.encode()).hexdigest()


_MIGRATING = threading.Lock()
_MIGRATION_LOCK = 0x46697265627265  # PostgreSQL advisory lock key held while migrating


def run_migrations(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    script_location = str(resources.files("firebreak.store") / "migrations")
    config = Config()
    config.set_main_option("script_location", script_location)
    # Alembic's context is process-global, and processes starting together on one database
    # would each create the same tables: one migration at a time, per process and per database.
    with _MIGRATING, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, before any read
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _explain_postgres_errors(engine: Engine) -> None:
    """Values PostgreSQL cannot hold, which SQLite keeps (text with NUL characters, strings
    longer than their column), are a ValueError saying so, as other bad input is, not a
    database error."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = context.original_exception
        if "NUL (0x00)" in str(error):
            raise ValueError("text cannot contain NUL (0x00) characters") from error
        if getattr(error, "sqlstate", None) == "22001":  # string_data_right_truncation
            raise ValueError(f"a value is too long: {str(error).splitlines()[0]}") from error


def _enable_sqlite_foreign_keys(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


class Store:
    """Banks, items and signals. `indexed_types` are the signal types kept in the Hamming index."""

    def __init__(self, url: str, indexed_types: Sequence[str]) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # pool_pre_ping: a connection the server dropped (a restart, an idle timeout) is
        # replaced before a request uses it, instead of failing that request.
        self.engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            _enable_sqlite_foreign_keys(self.engine)
        elif self.engine.dialect.name == "postgresql":
            _explain_postgres_errors(self.engine)
        run_migrations(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.indexed_types = tuple(indexed_types)
        self.incidents = Incidents(self._sessions)
        self.audit = AuditLog(self._sessions)
        self.keys = ApiKeys(self._sessions)
        self.reviews = Reviews(self._sessions)
        self.feed = Feed(self._sessions)
        self.subscriptions = Subscriptions(self._sessions)
        self.orgs = Orgs(self._sessions)

    def close(self) -> None:
        self.engine.dispose()

    # Banks

    def create_bank(
        self,
        name: str,
        kind: str = "block",
        actor: str = "cli",
        metadata: Mapping[str, Any] | None = None,
    ) -> Bank:
        if kind not in BANK_KINDS:
            raise ValueError(f"bank kind must be one of {', '.join(BANK_KINDS)}")
        with self._sessions.begin() as session:
            if session.scalar(select(BankRow.id).where(BankRow.name == name)) is not None:
                raise BankExists(name)
            row = BankRow(
                name=name, kind=kind, metadata_json=json.dumps(dict(metadata or {}), sort_keys=True)
            )
            session.add(row)
            write_audit(session, actor, "bank.create", f"bank:{name}", f"{kind} list")
            session.flush()
            return self._bank(session, row)

    def configure_bank(
        self,
        name: str,
        actor: str,
        *,
        kind: str | None = None,
        enabled: bool | None = None,
        match_score: float | Unset | None = UNSET,
        review_score: float | Unset | None = UNSET,
        metadata: Mapping[str, Any] | None = None,
        shared: bool | None = None,
    ) -> Bank:
        """Change a bank's settings (only those given); the change is audited. Sharing a bank
        publishes its items, and from then on every change, in the feed partners pull."""
        if kind is not None and kind not in BANK_KINDS:
            raise ValueError(f"bank kind must be one of {', '.join(BANK_KINDS)}")
        for score in (match_score, review_score):
            if isinstance(score, float) and not 0.0 <= score <= 1.0:
                raise ValueError("scores are between 0 and 1")
        with self._sessions.begin() as session:
            row = self._bank_row(session, name)
            changes: dict[str, object] = {}
            if kind is not None:
                row.kind = changes["kind"] = kind
            if enabled is not None:
                row.enabled = changes["enabled"] = enabled
            if not isinstance(match_score, Unset):
                row.match_score = changes["match_score"] = match_score
            if not isinstance(review_score, Unset):
                row.review_score = changes["review_score"] = review_score
            if metadata is not None:
                row.metadata_json = json.dumps(dict(metadata), sort_keys=True)
                changes["metadata"] = dict(metadata)
            if shared is not None and shared != row.shared:
                row.shared = changes["shared"] = shared
                if shared:  # partners get the bank as it is, then every change
                    lock_feed(session)
                    for item in session.scalars(
                        select(ItemRow).where(ItemRow.bank_id == row.id).order_by(ItemRow.id)
                    ):
                        session.add(_feed_add(row.name, item))
            write_audit(session, actor, "bank.configure", f"bank:{name}", "", changes)
            session.flush()
            return self._bank(session, row)

    def bank_rules(self) -> dict[str, BankRule]:
        """Every bank's matching rules, by name: one small query, read at every match so that
        a change applies at once in every process."""
        with self._sessions() as session:
            rows = session.execute(
                select(
                    BankRow.name,
                    BankRow.kind,
                    BankRow.enabled,
                    BankRow.match_score,
                    BankRow.review_score,
                    BankRow.metadata_json,
                )
            ).all()
        return {r[0]: BankRule(r[0], r[1], bool(r[2]), r[3], r[4], _label(r[5])) for r in rows}

    def get_bank(self, name: str) -> Bank:
        with self._sessions() as session:
            return self._bank(session, self._bank_row(session, name))

    def list_banks(self) -> list[Bank]:
        with self._sessions() as session:
            rows = session.scalars(select(BankRow).order_by(BankRow.name)).all()
            return [self._bank(session, row) for row in rows]

    def items(self, bank_name: str) -> list[Item]:
        with self._sessions() as session:
            bank = self._bank_row(session, bank_name)
            rows = session.scalars(
                select(ItemRow).where(ItemRow.bank_id == bank.id).order_by(ItemRow.id)
            ).all()
            return [_item(row, bank.name) for row in rows]

    def frame_times(
        self, item_ids: Iterable[int], signal_types: Sequence[str], min_quality: int
    ) -> dict[int, list[float]]:
        """Distinct times of each item's signals of `signal_types` of at least `min_quality`
        (unknown quality counts)."""
        times: dict[int, list[float]] = {i: [] for i in item_ids}
        with self._sessions() as session:
            rows = session.execute(
                select(SignalRow.item_id, SignalRow.timestamp)
                .distinct()
                .where(
                    SignalRow.item_id.in_(list(times)),
                    SignalRow.signal_type.in_(list(signal_types)),
                    (SignalRow.quality.is_(None)) | (SignalRow.quality >= min_quality),
                )
            ).all()
        for item_id, ts in rows:
            times[int(item_id)].append(float(ts or 0.0))
        return times

    def item(self, bank_name: str, item_name: str) -> Item:
        with self._sessions() as session:
            bank = self._bank_row(session, bank_name)
            row = session.scalar(
                select(ItemRow).where(ItemRow.bank_id == bank.id, ItemRow.name == item_name)
            )
            if row is None:
                raise ItemNotFound(bank_name, item_name)
            return _item(row, bank.name)

    def item_by_id(self, item_id: int) -> Item:
        with self._sessions() as session:
            found = session.execute(
                select(ItemRow, BankRow.name)
                .join(BankRow, ItemRow.bank_id == BankRow.id)
                .where(ItemRow.id == item_id)
            ).first()
            if found is None:
                raise ItemNotFound("any bank", str(item_id))
            return _item(found[0], found[1])

    def delete_bank(self, name: str, actor: str) -> IndexChange:
        """Delete a bank and everything banked in it; the audit log keeps that it was."""
        with self._sessions.begin() as session:
            bank = self._bank_row(session, name)
            item_ids = select(ItemRow.id).where(ItemRow.bank_id == bank.id)
            removed = tuple(
                IndexEntry(int(r[0]), str(r[1]), str(r[2]))
                for r in session.execute(
                    select(SignalRow.id, SignalRow.signal_type, SignalRow.value).where(
                        SignalRow.item_id.in_(item_ids),
                        SignalRow.signal_type.in_(self.indexed_types),
                    )
                ).all()
            )
            session.execute(delete(SignalRow).where(SignalRow.item_id.in_(item_ids)))
            session.execute(delete(ItemRow).where(ItemRow.bank_id == bank.id))
            session.execute(delete(BankRow).where(BankRow.id == bank.id))
            write_audit(session, actor, "bank.delete", f"bank:{name}")
            version = self._bump(session, INDEX_VERSION, removed=removed)
            return IndexChange((), removed, version)

    def item_signals(self, item_id: int) -> list[SignalValue]:
        with self._sessions() as session:
            rows = session.scalars(
                select(SignalRow).where(SignalRow.item_id == item_id).order_by(SignalRow.id)
            ).all()
            return [SignalValue(r.signal_type, r.value, r.quality, r.timestamp) for r in rows]

    # Items

    def add_item(
        self,
        bank_name: str,
        new: NewItem,
        added_by: str,
        within: Callable[[Session, int], None] | None = None,
    ) -> AddOutcome:
        """Bank `new`; a file already in the bank (same SHA-256) is returned unchanged.
        `within(session, item_id)` runs in the same transaction (with the id of the item already
        there, when the file was)."""
        with self._sessions.begin() as session:
            bank = self._bank_row(session, bank_name)
            if new.source_sha256 is not None:
                existing = session.scalar(
                    select(ItemRow).where(
                        ItemRow.bank_id == bank.id, ItemRow.source_sha256 == new.source_sha256
                    )
                )
                if existing is not None:
                    if within is not None:
                        within(session, existing.id)
                    version = self._counter(session, INDEX_VERSION)
                    return AddOutcome(
                        _item(existing, bank.name), False, IndexChange((), (), version)
                    )
            row = ItemRow(
                bank_id=bank.id,
                name=self._free_item_name(session, bank.id, new.name),
                media_kind=new.media_kind,
                duration_s=new.duration_s,
                source_file=new.source_file,
                source_md5=new.source_md5,
                source_sha256=new.source_sha256,
                added_by=added_by,
                metadata_json=json.dumps(dict(new.metadata), sort_keys=True),
            )
            row.signals = [
                SignalRow(
                    signal_type=s.signal_type,
                    value=s.value,
                    value_key=value_key(s.value),
                    quality=s.quality,
                    timestamp=s.timestamp,
                )
                for s in new.signals
            ]
            session.add(row)
            session.flush()
            write_audit(
                session,
                added_by,
                "bank.add",
                f"bank:{bank_name}",
                f"item {row.name}",
                {"item": row.name, "sha256": new.source_sha256, "signals": len(new.signals)},
            )
            added = tuple(
                IndexEntry(s.id, s.signal_type, s.value)
                for s in row.signals
                if s.signal_type in self.indexed_types
            )
            version = (
                self._bump(session, INDEX_VERSION, added)
                if added
                else self._counter(session, INDEX_VERSION)
            )
            if bank.shared:
                lock_feed(session)
                session.add(_feed_add(bank.name, row))
            if within is not None:
                within(session, row.id)
            return AddOutcome(_item(row, bank.name), True, IndexChange(added, (), version))

    def remove_item(
        self,
        bank_name: str,
        item_name: str,
        actor: str = "cli",
        within: Callable[[Session], None] | None = None,
    ) -> IndexChange:
        with self._sessions.begin() as session:
            bank = self._bank_row(session, bank_name)
            item_id = session.scalar(
                select(ItemRow.id).where(ItemRow.bank_id == bank.id, ItemRow.name == item_name)
            )
            if item_id is None:
                raise ItemNotFound(bank_name, item_name)
            removed = tuple(
                IndexEntry(int(r[0]), str(r[1]), str(r[2]))
                for r in session.execute(
                    select(SignalRow.id, SignalRow.signal_type, SignalRow.value).where(
                        SignalRow.item_id == item_id,
                        SignalRow.signal_type.in_(self.indexed_types),
                    )
                ).all()
            )
            session.execute(delete(SignalRow).where(SignalRow.item_id == item_id))
            session.execute(delete(ItemRow).where(ItemRow.id == item_id))
            write_audit(session, actor, "bank.remove", f"bank:{bank_name}", f"item {item_name}")
            if bank.shared:
                lock_feed(session)
                session.add(FeedEventRow(bank=bank.name, kind="remove", item_uid=str(item_id)))
            if within is not None:
                within(session)
            version = self._bump(session, INDEX_VERSION, removed=removed)
            return IndexChange((), removed, version)

    # Lookups

    def index_version(self) -> int:
        with self._sessions() as session:
            return self._counter(session, INDEX_VERSION)

    def iter_indexed_signals(
        self, signal_types: Sequence[str], batch: int = 50_000
    ) -> Iterator[list[IndexEntry]]:
        """Every signal of `signal_types`, in batches of ascending id, for rebuilding an index."""
        last = 0
        with self._sessions() as session:
            while True:
                rows = session.execute(
                    select(SignalRow.id, SignalRow.signal_type, SignalRow.value)
                    .where(SignalRow.signal_type.in_(list(signal_types)), SignalRow.id > last)
                    .order_by(SignalRow.id)
                    .limit(batch)
                ).all()
                if not rows:
                    return
                yield [IndexEntry(int(r[0]), str(r[1]), str(r[2])) for r in rows]
                last = int(rows[-1][0])

    def index_changes_since(self, version: int) -> list[IndexChange] | None:
        """The index changes after `version`, oldest first, with the added signals' values; None
        when the log no longer reaches back that far (the caller rebuilds instead)."""
        with self._sessions() as session:
            current = self._counter(session, INDEX_VERSION)
            if current <= version:
                return []
            rows = session.scalars(
                select(IndexChangeRow)
                .where(IndexChangeRow.version > version)
                .order_by(IndexChangeRow.version)
            ).all()
            if [r.version for r in rows] != list(range(version + 1, current + 1)):
                return None
            wanted = sorted({i for r in rows for i in json.loads(r.added)})
            values: dict[int, IndexEntry] = {}
            for start in range(0, len(wanted), 500):
                for sid, kind, value in session.execute(
                    select(SignalRow.id, SignalRow.signal_type, SignalRow.value).where(
                        SignalRow.id.in_(wanted[start : start + 500])
                    )
                ).all():
                    values[int(sid)] = IndexEntry(int(sid), str(kind), str(value))
            return [
                IndexChange(
                    tuple(values[i] for i in json.loads(r.added) if i in values),
                    tuple(IndexEntry(int(i), str(t), "") for i, t in json.loads(r.removed)),
                    r.version,
                )
                for r in rows
            ]

    def resolve_signals(self, ids: Iterable[int]) -> dict[int, IndexedSignal]:
        """The item and frame time behind each indexed signal id (unknown ids are left out)."""
        wanted = sorted(set(ids))
        found: dict[int, IndexedSignal] = {}
        items: dict[int, Item] = {}
        with self._sessions() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = session.execute(
                    select(
                        SignalRow.id, SignalRow.item_id, SignalRow.timestamp, SignalRow.quality
                    ).where(SignalRow.id.in_(chunk))
                ).all()
                missing = {r[1] for r in rows} - items.keys()
                if missing:
                    for item_row, bank_name in session.execute(
                        select(ItemRow, BankRow.name)
                        .join(BankRow, ItemRow.bank_id == BankRow.id)
                        .where(ItemRow.id.in_(missing))
                    ).all():
                        items[item_row.id] = _item(item_row, bank_name)
                for sid, item_id, ts, quality in rows:
                    found[int(sid)] = IndexedSignal(int(sid), items[item_id], ts or 0.0, quality)
        return found

    def find_items_by_signal(self, signal_type: str, value: str) -> list[Item]:
        """Items holding exactly this signal value (digests)."""
        with self._sessions() as session:
            rows = session.execute(
                select(ItemRow, BankRow.name)
                .join(SignalRow, SignalRow.item_id == ItemRow.id)
                .join(BankRow, ItemRow.bank_id == BankRow.id)
                .where(
                    SignalRow.signal_type == signal_type, SignalRow.value_key == value_key(value)
                )
                .distinct()
            ).all()
            return [_item(row, bank_name) for row, bank_name in rows]

    # Internals

    def _bank_row(self, session: Session, name: str) -> BankRow:
        row = session.scalar(select(BankRow).where(BankRow.name == name))
        if row is None:
            raise BankNotFound(name)
        return row

    def _bank(self, session: Session, row: BankRow) -> Bank:
        count = session.scalar(select(func.count(ItemRow.id)).where(ItemRow.bank_id == row.id))
        return Bank(
            row.id,
            row.name,
            row.kind,
            row.created_at,
            int(count or 0),
            row.enabled,
            row.match_score,
            row.review_score,
            json.loads(row.metadata_json),
            row.shared,
        )

    def _free_item_name(self, session: Session, bank_id: int, wanted: str) -> str:
        """`wanted`, or `wanted (2)`, `(3)`… when another file of that name is already banked."""
        # Names fit the column (PostgreSQL refuses longer ones, SQLite would keep them), and the
        # prefix is matched literally: `%`, `_` and `\\` (PostgreSQL's escape) are escaped.
        wanted = wanted[:_ITEM_NAME_LENGTH]
        prefix = wanted[: _ITEM_NAME_LENGTH - 24]  # of every `wanted (n)` that fits
        taken = set(
            session.scalars(
                select(ItemRow.name).where(
                    ItemRow.bank_id == bank_id, ItemRow.name.startswith(prefix, autoescape=True)
                )
            ).all()
        )
        name, n = wanted, 1
        while name in taken:
            n += 1
            suffix = f" ({n})"
            name = wanted[: _ITEM_NAME_LENGTH - len(suffix)] + suffix
        return name

    def _counter(self, session: Session, name: str) -> int:
        return int(session.scalar(select(CounterRow.value).where(CounterRow.name == name)) or 0)

    def _bump(
        self,
        session: Session,
        name: str,
        added: Sequence[IndexEntry] = (),
        removed: Sequence[IndexEntry] = (),
    ) -> int:
        session.execute(
            update(CounterRow).where(CounterRow.name == name).values(value=CounterRow.value + 1)
        )
        version = self._counter(session, name)
        if name == INDEX_VERSION:
            # The counter's row lock orders these by commit: the log is gap-free in order.
            session.add(
                IndexChangeRow(
                    version=version,
                    added=json.dumps([e.id for e in added]),
                    removed=json.dumps([[e.id, e.signal_type] for e in removed]),
                )
            )
            session.execute(
                delete(IndexChangeRow).where(IndexChangeRow.version <= version - _CHANGE_LOG)
            )
        return version


def _item(row: ItemRow, bank_name: str) -> Item:
    return Item(
        row.id,
        bank_name,
        row.name,
        row.media_kind,
        row.duration_s,
        row.source_file,
        row.source_md5,
        row.source_sha256,
        row.added_by,
        row.added_at,
        json.loads(row.metadata_json),
        row.enabled,
    )


def _feed_add(bank: str, row: ItemRow) -> FeedEventRow:
    """The feed event that publishes an item: everything a partner needs to bank it."""
    payload = {
        "name": row.name,
        "media_kind": row.media_kind,
        "duration_s": row.duration_s,
        "md5": row.source_md5,
        "sha256": row.source_sha256,
        "metadata": json.loads(row.metadata_json),
        "signals": [[s.signal_type, s.value, s.quality, s.timestamp] for s in row.signals],
    }
    return FeedEventRow(
        bank=bank, kind="add", item_uid=str(row.id), payload=json.dumps(payload, sort_keys=True)
    )


def _label(metadata_json: str) -> str:
    label = json.loads(metadata_json).get("label")
    return str(label) if label else ""
