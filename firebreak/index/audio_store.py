"""The store's soundtracks in an in-memory AudioIndex, kept in step with the store's version.

Soundtrack peaks are small (~180 bytes a second), so the landmark index is rebuilt from the store
when a process starts, changed in place by its own writes, and caught up from the store's change
log with other processes' writes. Entries are keyed by
signal id, which the store resolves to the item.
"""

from __future__ import annotations

from firebreak.index.audio import AudioIndex
from firebreak.signals.audio import AudioSignal, landmarks_from_peaks, parse_audio_peaks
from firebreak.store import IndexChange, Store


class StoreAudioIndex:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.index = AudioIndex()
        self.version = -1
        self._rebuild()

    def __len__(self) -> int:
        return len(self.index)

    def apply(self, change: IndexChange) -> None:
        if change.index_version == self.version:
            return
        if change.index_version != self.version + 1:
            self.refresh()
            if change.index_version != self.version + 1:
                return  # caught up past it (or rebuilt): nothing left to apply
        for entry in change.removed:
            if entry.signal_type == AudioSignal.name:
                self.index.remove(entry.id)
        for entry in change.added:
            if entry.signal_type == AudioSignal.name:
                self.index.add(entry.id, landmarks_from_peaks(parse_audio_peaks(entry.value)))
        self.version = change.index_version

    def refresh(self) -> None:
        """Catch up with other processes' writes from the store's change log, else rebuild."""
        if self._store.index_version() == self.version:
            return
        changes = self._store.index_changes_since(self.version) if self.version >= 0 else None
        if changes is None:
            self._rebuild()
            return
        for change in changes:
            self.apply(change)

    def _rebuild(self) -> None:
        version = self._store.index_version()
        index = AudioIndex()
        for batch in self._store.iter_indexed_signals((AudioSignal.name,)):
            for entry in batch:
                index.add(entry.id, landmarks_from_peaks(parse_audio_peaks(entry.value)))
        self.index = index
        self.version = version
