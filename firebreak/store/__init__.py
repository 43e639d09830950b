"""Storage: SQLAlchemy models, Alembic migrations and the one Store implementation."""

from firebreak.store.incidents import INCIDENT_STATUSES, AuditEntry, Incident, IncidentAlert
from firebreak.store.repository import (
    BANK_KINDS,
    AddOutcome,
    Bank,
    BankRule,
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
    "INCIDENT_STATUSES",
    "AddOutcome",
    "AuditEntry",
    "Bank",
    "BankRule",
    "Incident",
    "IncidentAlert",
    "IndexChange",
    "IndexEntry",
    "IndexedSignal",
    "Item",
    "NewItem",
    "SignalValue",
    "Store",
]
