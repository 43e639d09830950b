"""The indices of a store, saved under FIREBREAK_HOME and kept in step with it.

Each index file carries the store's `index_version` it reflects. A change is applied in place when
the index is exactly one version behind (our own write); writes of other processes are applied step
by step from the store's change log; when the log does not reach back far enough, or the file is
missing or unreadable, the index is rebuilt from the store. Writes go to a temporary file and are renamed into
place under a lock, so a crash never leaves a half-written index.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from firebreak.index.hamming import IndexHit, hex_codes
from firebreak.index.mih import MIHIndex
from firebreak.index.shards import by_prefix
from firebreak.index.vectors import CosineIndex
from firebreak.store import IndexChange, IndexEntry, Store

_SAVE_EVERY_S = 5.0
_SAVE_S_PER_MILLION = 10.0
"""A large index is written less often: 10 M codes are a 1.3 GB file, and a file a little behind
costs only a catch-up from the change log when next loaded."""


class SearchIndex(Protocol):
    def __len__(self) -> int: ...
    def add(self, ids: Any, values: Any) -> None: ...
    def remove(self, ids: Any) -> None: ...
    def search_radius(self, queries: Any, max_distance: int) -> list[IndexHit]: ...
    def save(self, path: Path) -> None: ...


@dataclass(frozen=True)
class IndexKind:
    """Which signals an index holds, how their stored values become rows, how it is made."""

    name: str
    signal_types: tuple[str, ...]
    decode: Callable[[list[str]], Any]
    empty: Callable[[], SearchIndex]
    load: Callable[[Path], SearchIndex]
    suffix: str = "faiss"
    """The index file's extension, by format."""
    keep: Callable[[Any], Any] | None = None
    """Which decoded values this index holds (a boolean mask), when it holds a shard."""
    stem: str = ""
    """The files' name when it is not `name` (a shard's: `frames.0of2`)."""

    @property
    def file_stem(self) -> str:
        return self.stem or self.name


def hamming_kind(
    name: str, signal_types: Sequence[str], shard: tuple[int, int] | None = None
) -> IndexKind:
    """256-bit hex codes (PDQ, video frames) in a MIHIndex: exact radius search that stays
    under 0.3 ms a query and 1.3 GB at 10 M codes, loaded by mapping its snapshot. With
    `shard` (i, n), only the codes whose prefix falls in shard i of n (the rest live on peer
    nodes, queried by fan-out)."""
    if shard is None:
        return IndexKind(name, tuple(signal_types), hex_codes, MIHIndex, MIHIndex.load, "mih")
    number, count = shard
    route = by_prefix(count)

    def keep(codes: Any) -> Any:
        return route(np.zeros(len(codes), dtype=np.int64), codes) == number

    stem = f"{name}.{number}of{count}"
    return IndexKind(
        name, tuple(signal_types), hex_codes, MIHIndex, MIHIndex.load, "mih", keep, stem
    )


def cosine_kind(
    name: str, signal_types: Sequence[str], dimension: int, decode: Callable[[list[str]], Any]
) -> IndexKind:
    """Unit vectors in a CosineIndex."""
    return IndexKind(
        name,
        tuple(signal_types),
        decode,
        lambda: CosineIndex(dimension),
        lambda path: CosineIndex.load(path, dimension),
    )


class StoreIndex:
    """One kind of the store's indexed signals, loaded from disk or rebuilt."""

    def __init__(self, store: Store, directory: Path, kind: IndexKind) -> None:
        self._store = store
        self._dir = directory
        self.kind = kind
        self._dir.mkdir(parents=True, exist_ok=True)
        self._index: SearchIndex = kind.empty()
        self.version = -1
        self._dirty = False
        self._saved_at = time.monotonic()
        with self._lock():
            self._load_or_rebuild()

    def __len__(self) -> int:
        return len(self._index)

    def search_radius(self, queries: Any, max_distance: int) -> list[IndexHit]:
        return self._index.search_radius(queries, max_distance)

    def apply(self, change: IndexChange) -> None:
        """Bring the index to `change.index_version`, incrementally when possible."""
        if change.index_version == self.version:
            return
        with self._lock():
            on_disk = self._read_meta_version()
            if on_disk is not None and on_disk != self.version:
                self._load_or_rebuild()  # another process moved the index on
            if change.index_version == self.version + 1:
                self._step(change)
                self._save_soon()
            elif change.index_version > self.version:
                self._catch_up()

    def refresh(self) -> None:
        """Catch up with writes made by other processes: step by step from the store's change
        log (no rebuild), or by rebuilding when the log does not reach back far enough."""
        if self._store.index_version() != self.version:
            with self._lock():
                self._catch_up()

    def _catch_up(self) -> None:
        changes = self._store.index_changes_since(self.version) if self.version >= 0 else None
        if changes is None:
            self._load_or_rebuild()
            return
        for change in changes:
            self._step(change)
        if changes:
            self._save_soon()

    def flush(self) -> None:
        """Write the index to disk if it moved on since it was last written."""
        if self._dirty:
            with self._lock():
                if (self._read_meta_version() or -1) < self.version:
                    self._save()
                self._dirty = False

    def _save_soon(self) -> None:
        """Write the index at most every few seconds: many small writes in a row (an import)
        would otherwise rewrite the whole file each time. A file left behind by a crash is
        older than the store and is caught up from the change log when next loaded."""
        self._dirty = True
        every = max(_SAVE_EVERY_S, _SAVE_S_PER_MILLION * len(self._index) / 1e6)
        if time.monotonic() - self._saved_at >= every:
            if (self._read_meta_version() or -1) < self.version:
                self._save()
            self._dirty = False

    def _step(self, change: IndexChange) -> None:
        removed = [e.id for e in change.removed if e.signal_type in self.kind.signal_types]
        if removed:
            self._index.remove(np.asarray(removed, dtype=np.int64))
        self._add(self._index, [e for e in change.added if self._holds(e)])
        self.version = change.index_version

    def _holds(self, entry: IndexEntry) -> bool:
        return entry.signal_type in self.kind.signal_types

    def _add(self, index: SearchIndex, entries: list[IndexEntry]) -> None:
        if entries:
            ids = np.asarray([e.id for e in entries], dtype=np.int64)
            values = self.kind.decode([e.value for e in entries])
            if self.kind.keep is not None:
                mine = self.kind.keep(values)
                ids, values = ids[mine], values[mine]
            if len(ids):
                index.add(ids, values)

    def _load_or_rebuild(self) -> None:
        current = self._store.index_version()
        on_disk = self._read_meta_version()
        if on_disk is not None and on_disk <= current:
            try:
                index = self.kind.load(self._path("index"))
            except RuntimeError:
                index = None  # unreadable file: rebuild below
            changes = self._store.index_changes_since(on_disk) if index is not None else None
            if index is not None and changes is not None:
                self._index, self.version = index, on_disk
                for change in changes:  # a file older than the store: caught up from the log
                    self._step(change)
                return
        self._rebuild()

    def _rebuild(self) -> None:
        version = self._store.index_version()
        index = self.kind.empty()
        for batch in self._store.iter_indexed_signals(self.kind.signal_types):
            self._add(index, batch)
        self._index = index
        self.version = version
        self._save()

    def _path(self, what: str) -> Path:
        return self._dir / (
            f"{self.kind.file_stem}.{self.kind.suffix}"
            if what == "index"
            else f"{self.kind.file_stem}.json"
        )

    def _save(self) -> None:
        tmp_index = self._dir / f".{self.kind.file_stem}.{self.kind.suffix}.{os.getpid()}"
        tmp_meta = self._dir / f".{self.kind.file_stem}.json.{os.getpid()}"
        self._index.save(tmp_index)
        tmp_meta.write_text(json.dumps({"version": self.version, "count": len(self._index)}))
        os.replace(tmp_index, self._path("index"))
        os.replace(tmp_meta, self._path("meta"))
        self._saved_at = time.monotonic()

    def _read_meta_version(self) -> int | None:
        try:
            meta = json.loads(self._path("meta").read_text())
            return int(meta["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with (self._dir / f".{self.kind.file_stem}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
