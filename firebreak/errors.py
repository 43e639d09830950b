"""Errors are types: the CLI and the API turn each into one clear line or one 4xx, in one place."""

from __future__ import annotations

from pathlib import Path


class FirebreakError(Exception):
    """Base of every error Firebreak raises on purpose."""


class MediaRejected(FirebreakError):
    """A file that Firebreak refuses to hash: corrupt, truncated, too big, hostile or unsupported."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class BankNotFound(FirebreakError):
    def __init__(self, name: str) -> None:
        super().__init__(f"bank not found: {name}")
        self.name = name


class BankExists(FirebreakError):
    def __init__(self, name: str) -> None:
        super().__init__(f"bank already exists: {name}")
        self.name = name


class ItemNotFound(FirebreakError):
    def __init__(self, bank: str, item: str) -> None:
        super().__init__(f"item not found in bank {bank}: {item}")
        self.bank = bank
        self.item = item


class HashListInvalid(FirebreakError):
    """A hash list that cannot be imported: the line and why."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class UnknownSignalType(FirebreakError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown signal type: {name}")
        self.name = name


class StreamFailed(FirebreakError):
    """A live source that cannot be opened or read, or that sends what breaks a limit."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ActionFailed(FirebreakError):
    """An action (webhook, stream cut) that its target refused or never received."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason


class IncidentNotFound(FirebreakError):
    def __init__(self, name: str) -> None:
        super().__init__(f"incident not found: {name}")
        self.name = name


class DecisionRefused(FirebreakError):
    """A review decision that the item's state does not allow (e.g. confirming a rejected one)."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason
