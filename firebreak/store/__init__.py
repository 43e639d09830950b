"""Storage: SQLAlchemy models, Alembic migrations and the one Store implementation."""

from firebreak.store.repository import (
    BANK_KINDS,
    AddOutcome,
    Bank,
    IndexChange,
    IndexedSignal,
    IndexEntry,
    Item,
    NewItem,
    SignalValue,
    Store,
)

__all__ = [
    "BANK_KINDS",
    "AddOutcome",
    "Bank",
    "IndexChange",
    "IndexEntry",
    "IndexedSignal",
    "Item",
    "NewItem",
    "SignalValue",
    "Store",
]
