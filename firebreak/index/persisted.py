"""The Hamming index of a store, saved under FIREBREAK_HOME and kept in step with it.

The file carries the store's `index_version` it reflects. A change is applied in place when the
index is exactly one version behind (our own write); otherwise, or when the file is missing or
unreadable, the index is rebuilt from the store. Writes go to a temporary file and are renamed into
place under a lock, so a crash never leaves a half-written index.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from firebreak.index.hamming import HammingIndex, IndexHit, hex_codes
from firebreak.store import IndexChange, Store

_INDEX_FILE = "frames.faiss"
_META_FILE = "frames.json"


class StoreIndex:
    """The store's indexed signals in a HammingIndex, loaded from disk or rebuilt."""

    def __init__(self, store: Store, directory: Path) -> None:
        self._store = store
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._index = HammingIndex()
        self.version = -1
        with self._lock():
            self._load_or_rebuild()

    def __len__(self) -> int:
        return len(self._index)

    def search_radius(self, queries: np.ndarray, max_distance: int) -> list[IndexHit]:
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
                self._index.remove(np.asarray(change.removed, dtype=np.int64))
                ids = np.asarray([i for i, _ in change.added], dtype=np.int64)
                self._index.add(ids, hex_codes([h for _, h in change.added]))
                self.version = change.index_version
                self._save()
            elif change.index_version > self.version:
                self._rebuild()

    def refresh(self) -> None:
        """Catch up with writes made by other processes."""
        if self._store.index_version() != self.version:
            with self._lock():
                self._load_or_rebuild()

    def _load_or_rebuild(self) -> None:
        current = self._store.index_version()
        if self._read_meta_version() == current:
            try:
                self._index = HammingIndex.load(self._dir / _INDEX_FILE)
                self.version = current
                return
            except RuntimeError:
                pass  # unreadable file: rebuild below
        self._rebuild()

    def _rebuild(self) -> None:
        version = self._store.index_version()
        index = HammingIndex()
        for batch in self._store.iter_indexed_signals():
            index.add(
                np.asarray([i for i, _ in batch], dtype=np.int64),
                hex_codes([h for _, h in batch]),
            )
        self._index = index
        self.version = version
        self._save()

    def _save(self) -> None:
        tmp_index = self._dir / f".{_INDEX_FILE}.{os.getpid()}"
        tmp_meta = self._dir / f".{_META_FILE}.{os.getpid()}"
        self._index.save(tmp_index)
        tmp_meta.write_text(json.dumps({"version": self.version, "count": len(self._index)}))
        os.replace(tmp_index, self._dir / _INDEX_FILE)
        os.replace(tmp_meta, self._dir / _META_FILE)

    def _read_meta_version(self) -> int | None:
        try:
            meta = json.loads((self._dir / _META_FILE).read_text())
            return int(meta["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with (self._dir / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
