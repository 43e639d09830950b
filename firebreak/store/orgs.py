"""The registry of designated organisations and individuals, and the names they go by.

Every import makes a new registry version (who, when, which file and its SHA-256, how many
entries). An import replaces the entries of the designation sources it brings (re-importing the
UN list updates the UN entries) and leaves other sources' entries alone; each entry records the
version that last added or changed it.

    file ──parse──► OrgEntry… ──import──► version N: source's entries replaced (one transaction)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from firebreak.errors import FirebreakError
from firebreak.store.incidents import write_audit
from firebreak.store.models import OrgAliasRow, OrgRow, OrgVersionRow, utcnow

ORG_KINDS = ("organisation", "individual")
ALIAS_KINDS = ("name", "abbreviation", "transliteration", "slogan", "code")
_NAME_LENGTH = 500  # orgs.name
_ALIAS_LENGTH = 1000  # org_aliases.text
_FIELD_LENGTH = 200  # orgs.source, .category, .reference
_LANG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")  # a BCP 47 tag, loosely


class OrgListInvalid(FirebreakError):
    """A registry file, or an entry of one, that cannot be imported: where and why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class Alias:
    text: str
    kind: str = "name"
    lang: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "kind": self.kind, "lang": self.lang}


@dataclass(frozen=True)
class OrgEntry:
    """One designated organisation or individual, as a file gives it."""

    name: str
    kind: str
    source: str
    category: str = ""
    designated_on: date | None = None
    aliases: tuple[Alias, ...] = ()
    reference: str = ""
    """The source's own reference (a UN reference number), when it has one."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.kind, self.name)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "aliases": [a.to_json() for a in self.aliases],
            "category": self.category,
            "source": self.source,
            "designated_on": self.designated_on.isoformat() if self.designated_on else None,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class Org:
    """An entry of the registry and the version that last added or changed it."""

    id: int
    entry: OrgEntry
    version: int

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, **self.entry.to_json(), "version": self.version}


@dataclass(frozen=True)
class RegistryVersion:
    version: int
    at: datetime
    actor: str
    source: str
    file_name: str
    sha256: str
    entry_count: int

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "source": self.source,
            "file_name": self.file_name,
            "sha256": self.sha256,
            "entry_count": self.entry_count,
        }


@dataclass(frozen=True)
class OrgImport:
    """What an import did: the version it made and the entries it added, changed, removed."""

    version: RegistryVersion
    added: int
    changed: int
    removed: int
    unchanged: int


def check_entry(entry: OrgEntry, where: str) -> None:
    """Refuse an entry the registry cannot hold, naming `where` it came from."""
    if not entry.name.strip():
        raise OrgListInvalid(where, "empty name")
    if len(entry.name) > _NAME_LENGTH:
        raise OrgListInvalid(where, f"name longer than {_NAME_LENGTH} characters")
    if entry.kind not in ORG_KINDS:
        raise OrgListInvalid(where, f"kind {entry.kind!r} is not one of {', '.join(ORG_KINDS)}")
    if not entry.source.strip():
        raise OrgListInvalid(where, "no designation source (give one, or --source)")
    for label, value in (
        ("source", entry.source),
        ("category", entry.category),
        ("reference", entry.reference),
    ):
        if len(value) > _FIELD_LENGTH:
            raise OrgListInvalid(where, f"{label} longer than {_FIELD_LENGTH} characters")
    for alias in entry.aliases:
        if not alias.text.strip():
            raise OrgListInvalid(where, "empty alias")
        if len(alias.text) > _ALIAS_LENGTH:
            raise OrgListInvalid(where, f"alias longer than {_ALIAS_LENGTH} characters")
        if alias.kind not in ALIAS_KINDS:
            raise OrgListInvalid(
                where, f"alias kind {alias.kind!r} is not one of {', '.join(ALIAS_KINDS)}"
            )
        if alias.lang is not None and not _LANG.match(alias.lang):
            raise OrgListInvalid(where, f"alias language {alias.lang!r} is not a language tag")


def _entry(row: OrgRow) -> OrgEntry:
    return OrgEntry(
        name=row.name,
        kind=row.kind,
        source=row.source,
        category=row.category,
        designated_on=date.fromisoformat(row.designated_on) if row.designated_on else None,
        aliases=tuple(Alias(a.text, a.kind, a.lang) for a in row.aliases),
        reference=row.reference,
    )


def _alias_rows(entry: OrgEntry) -> list[OrgAliasRow]:
    return [
        OrgAliasRow(position=i, text=a.text, kind=a.kind, lang=a.lang)
        for i, a in enumerate(entry.aliases)
    ]


def _set_fields(row: OrgRow, entry: OrgEntry, version: int) -> None:
    row.category = entry.category
    row.designated_on = entry.designated_on.isoformat() if entry.designated_on else None
    row.reference = entry.reference
    row.version = version


def _version(row: OrgVersionRow) -> RegistryVersion:
    return RegistryVersion(
        version=row.version,
        at=row.at,
        actor=row.actor,
        source=row.source,
        file_name=row.file_name,
        sha256=row.sha256,
        entry_count=row.entry_count,
    )


class Orgs:
    """The registry: import a source's list, read the current version, list its entries."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def current_version(self) -> int:
        """The newest registry version; 0 before the first import."""
        with self._sessions() as session:
            return int(session.scalar(select(func.max(OrgVersionRow.version))) or 0)

    def versions(self) -> list[RegistryVersion]:
        """Every registry version, newest first."""
        with self._sessions() as session:
            rows = session.scalars(select(OrgVersionRow).order_by(OrgVersionRow.version.desc()))
            return [_version(r) for r in rows]

    def list(self, source: str | None = None) -> list[Org]:
        """The current entries (of one source, when given), by source then name."""
        query = select(OrgRow).options(selectinload(OrgRow.aliases))
        if source is not None:
            query = query.where(OrgRow.source == source)
        query = query.order_by(OrgRow.source, OrgRow.name, OrgRow.kind)
        with self._sessions() as session:
            return [Org(r.id, _entry(r), r.version) for r in session.scalars(query)]

    def import_entries(
        self,
        entries: Sequence[OrgEntry],
        *,
        actor: str,
        file_name: str,
        sha256: str,
        sources: Iterable[str] | None = None,
    ) -> OrgImport:
        """Make a new version whose entries of `sources` (by default, the sources the entries
        name) are exactly `entries`; other sources' entries stay as they are. All or nothing."""
        replaced = sorted(set(sources) if sources is not None else {e.source for e in entries})
        if not replaced:
            raise OrgListInvalid(file_name, "no entries and no source to replace")
        seen: set[tuple[str, str, str]] = set()
        for n, entry in enumerate(entries, 1):
            check_entry(entry, f"{file_name}: entry {n}")
            if entry.source not in replaced:
                raise OrgListInvalid(
                    f"{file_name}: entry {n}", f"source {entry.source!r} is not being imported"
                )
            if entry.key in seen:
                raise OrgListInvalid(
                    f"{file_name}: entry {n}",
                    f"{entry.kind} {entry.name!r} of {entry.source} is listed twice",
                )
            seen.add(entry.key)
        with self._sessions.begin() as session:
            version = int(session.scalar(select(func.max(OrgVersionRow.version))) or 0) + 1
            existing = session.scalars(
                select(OrgRow)
                .where(OrgRow.source.in_(replaced))
                .options(selectinload(OrgRow.aliases))
            )
            by_key = {(r.source, r.kind, r.name): r for r in existing}
            added = changed = unchanged = 0
            for entry in entries:
                row = by_key.pop(entry.key, None)
                if row is None:
                    row = OrgRow(name=entry.name, kind=entry.kind, source=entry.source)
                    _set_fields(row, entry, version)
                    row.aliases = _alias_rows(entry)
                    session.add(row)
                    added += 1
                elif _entry(row) != entry:
                    _set_fields(row, entry, version)
                    row.aliases = _alias_rows(entry)
                    changed += 1
                else:
                    unchanged += 1
            for row in by_key.values():
                session.delete(row)
            record = OrgVersionRow(
                version=version,
                at=utcnow(),
                actor=actor,
                source=",".join(replaced),
                file_name=file_name,
                sha256=sha256,
                entry_count=len(entries),
            )
            session.add(record)
            write_audit(
                session,
                actor,
                "orgs.import",
                file_name,
                evidence={
                    "version": version,
                    "sources": replaced,
                    "sha256": sha256,
                    "entries": len(entries),
                    "added": added,
                    "changed": changed,
                    "removed": len(by_key),
                },
            )
            session.flush()
            return OrgImport(_version(record), added, changed, len(by_key), unchanged)
