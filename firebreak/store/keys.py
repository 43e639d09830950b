"""API keys: made once, shown once, stored only as a SHA-256 digest, with one role each.

A key reads `fbk_<id>_<secret>`: the id (8 characters) finds the row, the secret (43 characters,
256 random bits) is what proves it. Only the digest of the whole key is stored, so a copy of the
database cannot be used to call the API. Revoked keys stay (the audit log names them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firebreak.errors import FirebreakError
from firebreak.store.incidents import write_audit
from firebreak.store.models import ApiKeyRow, utcnow

ROLES = ("admin", "moderator", "service", "partner")
_PREFIX = "fbk"
_KEY_ID = re.compile(r"[0-9a-f]{8}")
# The API audits a key's calls as `key:NAME`, in 200-character columns (actor, added_by, …).
_NAME_LENGTH = 200 - len("key:")


class KeyRefused(FirebreakError):
    """A key that cannot be made or used: a bad role, a name taken, an unknown key."""


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    role: str
    key_id: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    banks: tuple[str, ...] | None = None
    """The banks a partner key may pull from the feed; None: every shared bank."""

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self, name: str, role: str, actor: str, banks: Sequence[str] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for `name` with `role`; the key itself is returned here and never again."""
        if role not in ROLES:
            raise KeyRefused(f"role must be one of {', '.join(ROLES)}")
        if not name.strip() or len(name) > _NAME_LENGTH:
            raise KeyRefused(f"a key needs a name of 1 to {_NAME_LENGTH} characters")
        key_id = secrets.token_hex(4)
        key = f"{_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self._sessions.begin() as session:
            if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name)) is not None:
                raise KeyRefused(f"a key named {name!r} exists")
            row = ApiKeyRow(
                name=name,
                role=role,
                key_id=key_id,
                digest=_digest(key),
                created_at=utcnow(),
                created_by=actor,
                banks=json.dumps(sorted(banks)) if banks is not None else None,
            )
            session.add(row)
            scope = f", banks {', '.join(sorted(banks))}" if banks is not None else ""
            write_audit(session, actor, "key.create", f"key:{name}", f"role {role}{scope}")
            session.flush()
            return _key(row), key

    def verify(self, key: str) -> ApiKey | None:
        """The active key `key` is, or None: unknown, malformed or revoked."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != _PREFIX or not _KEY_ID.fullmatch(parts[1]):
            return None  # nothing looked up: no malformed id (or NUL, which PostgreSQL refuses)
        with self._sessions() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == parts[1]))
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.digest, _digest(key)):
            return None
        return _key(row)

    def list(self) -> list[ApiKey]:
        with self._sessions() as session:
            return [_key(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.name))]

    def revoke(self, name: str, actor: str) -> ApiKey:
        with self._sessions.begin() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise KeyRefused(f"no key named {name!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                write_audit(session, actor, "key.revoke", f"key:{name}")
            session.flush()
            return _key(row)


def _key(row: ApiKeyRow) -> ApiKey:
    banks = tuple(json.loads(row.banks)) if row.banks is not None else None
    return ApiKey(
        row.id,
        row.name,
        row.role,
        row.key_id,
        row.created_at,
        row.created_by,
        row.revoked_at,
        banks,
    )
