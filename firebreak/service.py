"""The operations the CLI (and later the API) expose, over one store and its index.

`Firebreak` owns a Store and the StoreIndex kept in step with it. Every operation hashes first and
writes after, so a file that is refused leaves the banks and the index as they were.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from firebreak.errors import HashListInvalid, MediaRejected, UnknownSignalType
from firebreak.exchange import (
    GIFCT_METADATA,
    HashRecord,
    ListFormat,
    read_list,
    record_item_name,
    write_list,
)
from firebreak.index import IndexHit, IndexKind, StoreIndex, cosine_kind, hamming_kind
from firebreak.index.audio_store import StoreAudioIndex
from firebreak.index.shards import Searchable, search_all
from firebreak.match import (
    FrameEvidence,
    FrameHit,
    ItemMatch,
    Judgement,
    Verdict,
    fuse_picture_and_sound,
    judge,
)
from firebreak.match.items import (
    add_digest_match,
    aligned_item_match,
    audio_item_match,
    digest_item_match,
    keep_better_alignment,
)
from firebreak.media import MediaKind, probe_media
from firebreak.settings import Settings
from firebreak.signals import (
    FileDigests,
    FrameHash,
    MediaSignals,
    QuerySignals,
    codes_matrix,
    file_digests,
    hash_media_file,
    hash_query_file,
)
from firebreak.signals.audio import (
    AudioPeaks,
    AudioSignal,
    format_audio_peaks,
    query_landmarks_from_peaks,
)
from firebreak.signals.base import SignalType
from firebreak.signals.md5 import Md5Signal
from firebreak.signals.pdq import PdqSignal
from firebreak.signals.registry import signal_type, signal_type_for_exchange_name
from firebreak.signals.sha256 import Sha256Signal
from firebreak.signals.thumb import THUMB_DIMENSION, ThumbSignal, decode_thumbs, encode_thumb
from firebreak.signals.video import VideoSignal, format_feature, format_vpdq_json, parse_vpdq
from firebreak.signals.views import ThumbView, ViewHash
from firebreak.store import (
    AddOutcome,
    Bank,
    IndexChange,
    IndexedSignal,
    Item,
    NewItem,
    SignalValue,
    Store,
)

_PDQ_TYPES = (PdqSignal.name, VideoSignal.name)
INDEXED_SIGNAL_TYPES = (*_PDQ_TYPES, ThumbSignal.name, AudioSignal.name)
INDEX_KINDS = (
    hamming_kind("frames", _PDQ_TYPES),
    cosine_kind("thumbs", (ThumbSignal.name,), THUMB_DIMENSION, decode_thumbs),
)


def index_kinds(settings: Settings) -> tuple[IndexKind, ...]:
    """The indices a node keeps: its shard of the frame codes when it holds one."""
    shard = settings.shard
    if shard is None:
        return INDEX_KINDS
    return (hamming_kind("frames", _PDQ_TYPES, shard), *INDEX_KINDS[1:])


DIGEST_SIGNAL_TYPES = (Md5Signal, Sha256Signal)


@dataclass(frozen=True)
class MatchResult:
    file: str
    verdict: Verdict
    matches: tuple[ItemMatch, ...]
    elapsed_s: float
    allowed: ItemMatch | None = None
    """The allow-list match that suppressed the block-list ones, if any."""
    acted_on: tuple[ItemMatch, ...] = ()
    """The block-list matches at or above their bank's match score."""

    @property
    def judgement(self) -> Judgement:
        return Judgement(self.verdict, self.matches, self.acted_on, self.allowed)

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {
            "file": self.file,
            "verdict": self.verdict.value,
            "matches": [match_json(m) for m in self.matches],
            "elapsed_s": round(self.elapsed_s, 3),
        }
        if self.allowed is not None:  # only then: the contract's keys stay as they were
            record["allowed_by"] = {"bank": self.allowed.item.bank, "item": self.allowed.item.name}
        return record


def match_json(m: ItemMatch) -> dict[str, object]:
    return {
        "bank": m.item.bank,
        "item": m.item.name,
        "score": round(m.score, 4),
        "signals": m.signals,
        "query_segment": m.query_segment.as_list() if m.query_segment else None,
        "item_segment": m.item_segment.as_list() if m.item_segment else None,
    }


@dataclass(frozen=True)
class HashHit:
    """A banked item found by one hash, and how far its nearest hash was."""

    item: Item
    distance: int


@dataclass(frozen=True)
class ImportSummary:
    added: int
    skipped: int
    passed_through: int


class Firebreak:
    """Banks, hashing and matching on the embedded default (or any SQLAlchemy URL)."""

    def __init__(self, settings: Settings, peers: Sequence[Searchable] = ()) -> None:
        """`peers`: the frame-index shards other nodes hold (see `firebreak.scale.peers`),
        searched beside this node's own on every lookup."""
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.resolved_database_url, INDEXED_SIGNAL_TYPES)
        self._indexes: dict[str, StoreIndex] | None = None
        self._audio_index: StoreAudioIndex | None = None
        self.peers = list(peers)
        self._peer_pool = ThreadPoolExecutor(len(self.peers) + 1) if self.peers else None

    def close(self) -> None:
        for index in (self._indexes or {}).values():
            index.flush()
        if self._peer_pool is not None:
            self._peer_pool.shutdown(wait=False)
        self.store.close()

    @property
    def indexes(self) -> dict[str, StoreIndex]:
        """The store's indices by name (frames: PDQ codes; thumbs), current with the store."""
        if self._indexes is None:
            self._indexes = {
                kind.name: StoreIndex(self.store, self.settings.index_dir, kind)
                for kind in index_kinds(self.settings)
            }
        else:
            for index in self._indexes.values():
                index.refresh()
        return self._indexes

    @property
    def index(self) -> StoreIndex:
        """The PDQ frame index."""
        return self.indexes["frames"]

    @property
    def audio_index(self) -> StoreAudioIndex:
        """The soundtrack landmark index, current with the store."""
        if self._audio_index is None:
            self._audio_index = StoreAudioIndex(self.store)
        else:
            self._audio_index.refresh()
        return self._audio_index

    def apply_change(self, change: IndexChange) -> None:
        """Bring the indices up to a store write made outside these methods (a pulled feed)."""
        self._apply(change)

    def _apply(self, change: IndexChange) -> None:
        for index in self.indexes.values():
            index.apply(change)
        self.audio_index.apply(change)

    # Banks

    def create_bank(
        self,
        name: str,
        kind: str = "block",
        actor: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Bank:
        return self.store.create_bank(name, kind, actor or self.settings.actor, metadata)

    def list_banks(self) -> list[Bank]:
        return self.store.list_banks()

    def bank_file(
        self,
        bank: str,
        path: Path,
        name: str | None = None,
        *,
        actor: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source_file: str | None = None,
        create: bool = False,
        kind: str = "block",
    ) -> AddOutcome:
        """Hash `path` and bank it; banking the same file twice changes nothing. `metadata`
        comes back with the item; `source_file` names where it came from when `path` is a
        temporary copy (an upload). With `create`, a missing bank is made, of `kind`."""
        if create and bank not in self.store.bank_rules():
            self.store.create_bank(bank, kind, actor or self.settings.actor)
        self.store.get_bank(bank)  # fail before the expensive part
        signals = self.hash_for_bank(path)
        quality = signals.frames[0].quality if signals.frames else 0
        if not signals.is_video and quality < self.settings.min_quality:
            # A flat picture (one colour, a blank page) looks like every other flat picture.
            raise MediaRejected(
                path,
                f"picture too flat to bank: it would match every flat picture (PDQ quality "
                f"{quality} < {self.settings.min_quality})",
            )
        new = _new_item(name or path.name, path, signals)
        new = replace(new, metadata=dict(metadata or {}), source_file=source_file or str(path))
        outcome = self.store.add_item(bank, new, actor or self.settings.actor)
        self._apply(outcome.change)
        return outcome

    def add_hashes(
        self,
        bank: str,
        name: str,
        values: Sequence[SignalValue],
        actor: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> AddOutcome:
        """Bank hashes without the media (a partner's hash, an HMA `signal` add): each value
        validated first; an item of digests and frame hashes."""
        checked = []
        for v in values:
            kind = signal_type(v.signal_type)
            # A video's frames are kept one hash each, with their quality and time beside them.
            validate = PdqSignal.validate if kind is VideoSignal else kind.validate
            try:
                checked.append(replace(v, value=validate(v.value)))
            except ValueError as exc:
                raise HashListInvalid(name, 1, str(exc)) from None
        if not checked:
            raise HashListInvalid(name, 1, "no signals given")
        perceptual = [v for v in checked if v.signal_type in _PDQ_TYPES]
        video = any(v.signal_type == VideoSignal.name for v in perceptual)
        new = NewItem(
            name=name,
            media_kind=("video" if video else "image") if perceptual else "hashes",
            duration_s=max((v.timestamp or 0.0 for v in perceptual), default=0.0),
            signals=tuple(checked),
            source_md5=next((v.value for v in checked if v.signal_type == Md5Signal.name), None),
            source_sha256=next(
                (v.value for v in checked if v.signal_type == Sha256Signal.name), None
            ),
            metadata=dict(metadata or {}),
        )
        outcome = self.store.add_item(bank, new, actor)
        self._apply(outcome.change)
        return outcome

    def lookup_hash(self, type_name: str, value: str) -> list[HashHit]:
        """Banked items holding a hash within its type's threshold of `value`, nearest first.
        `type_name` is ours or the exchange name (pdq, vpdq/video, md5/video_md5, sha256...);
        a vPDQ value's frames are each looked up, and an item's distance is its nearest frame's."""
        kind = signal_type_for_exchange_name(type_name)
        if kind is None:
            raise UnknownSignalType(type_name)
        try:
            if kind in DIGEST_SIGNAL_TYPES:
                return [
                    HashHit(i, 0)
                    for i in self.store.find_items_by_signal(kind.name, kind.validate(value))
                    if i.enabled
                ]
            if kind is PdqSignal:
                frames = [FrameHash.from_hex(PdqSignal.validate(value), 100)]
            elif kind is VideoSignal:
                frames = parse_vpdq(value)
            else:
                raise UnknownSignalType(f"{type_name} (not looked up by value)")
        except ValueError as exc:
            raise HashListInvalid(type_name, 1, str(exc)) from None
        if not frames:
            return []
        hits = self.search_frames(codes_matrix(frames), kind.threshold(self.settings))
        sources = self.store.resolve_signals(h.id for h in hits)
        nearest: dict[int, HashHit] = {}
        rows: dict[int, set[int]] = defaultdict(set)
        for hit in hits:
            source = sources.get(hit.id)
            if source is None:
                continue
            rows[source.item.id].add(hit.query_row)
            kept = nearest.get(source.item.id)
            if kept is None or hit.distance < kept.distance:
                nearest[source.item.id] = HashHit(source.item, hit.distance)
        # A video hash matches an item as vPDQ does: when enough of its frames found the item.
        needed = self.settings.vpdq_match_share * len(frames) if kind is VideoSignal else 0
        found = [h for h in nearest.values() if len(rows[h.item.id]) >= needed and h.item.enabled]
        return sorted(found, key=lambda h: (h.distance, h.item.id))

    def hma_hashes(self, path: Path) -> dict[str, str]:
        """A file's hashes as HMA's hasher gives them: `pdq` for a picture; `video_md5` and
        `vpdq` for a video."""
        signals = self.hash_for_bank(path)
        if not signals.is_video:
            frame = signals.frames[0]
            return {PdqSignal.exchange_name: frame.hex}
        return {
            Md5Signal.exchange_name: signals.digests.md5,
            VideoSignal.exchange_name: format_vpdq_json(signals.frames),
        }

    def bank_incident(
        self, bank: str, recording: Path, name: str, actor: str | None = None
    ) -> AddOutcome:
        """Bank a confirmed incident's recording (so far) so that every later copy is blocked.

        The incident bank is made (a block bank) if there is none; an earlier recording of the
        same incident is replaced by this longer one."""
        actor = actor or self.settings.actor
        signals = self.hash_for_bank(recording)  # hash before touching the bank
        if bank not in {b.name for b in self.store.list_banks()}:
            self.store.create_bank(bank, "block", actor)
        if any(item.name == name for item in self.store.items(bank)):
            self._apply(self.store.remove_item(bank, name, actor))
        outcome = self.store.add_item(bank, _new_item(name, recording, signals), actor)
        self._apply(outcome.change)
        return outcome

    def media_path(self, path: Path, sha256: str | None = None) -> Path:
        """Where `keep_media` keeps (or would keep) a copy of `path` (whose SHA-256 is read
        unless the caller has it already)."""
        digest = sha256 or file_digests(path).sha256
        suffix = "".join(c for c in path.suffix.lower() if c.isalnum() or c == ".")[:10]
        return self.settings.home / "media" / digest[:2] / f"{digest}{suffix}"

    def keep_media(self, path: Path, sha256: str | None = None) -> Path:
        """A copy of `path` kept under `home/media`, named by its SHA-256 (the same file is
        kept once): what reviewers see of uploads and banked items."""
        dest = self.media_path(path, sha256)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(dest.name + ".partial")
            shutil.copyfile(path, partial)
            partial.replace(dest)
        return dest

    def delete_bank(self, bank: str, actor: str | None = None) -> None:
        self._apply(self.store.delete_bank(bank, actor or self.settings.actor))

    def remove_item(self, bank: str, item: str, actor: str | None = None) -> None:
        self._apply(self.store.remove_item(bank, item, actor or self.settings.actor))

    # Hashing

    def hash_for_bank(self, path: Path) -> MediaSignals:
        s = self.settings
        return hash_media_file(path, s, s.bank_fps, s.bank_frame_size)

    def hash_strings(self, path: Path, signal: str | None) -> list[str]:
        """The industry strings for `path`: PDQ `hex,quality`; vPDQ `hex,quality,timestamp` per
        frame; md5 and sha256 hex digests."""
        kind = signal_type(signal) if signal else None
        if kind in DIGEST_SIGNAL_TYPES:
            digests = hash_media_file_digests(path, self.settings)
            return [digests.md5 if kind is Md5Signal else digests.sha256]
        signals = self.hash_for_bank(path)
        if kind is None:
            kind = VideoSignal if signals.is_video else PdqSignal
        if kind is PdqSignal:
            if signals.is_video:
                raise MediaRejected(path, "pdq hashes images; use --signal video for a video")
            frame = signals.frames[0]
            return [f"{frame.hex},{frame.quality}"]
        if not signals.is_video:
            raise MediaRejected(path, "video hashes need a video; use --signal pdq for an image")
        return [format_feature(f) for f in signals.frames]

    # Matching

    def match_file(self, path: Path) -> MatchResult:
        started = time.monotonic()
        return self.match_query(hash_query_file(path, self.settings), str(path), started)

    def match_query(
        self, query: QuerySignals, file: str, started: float | None = None
    ) -> MatchResult:
        """A hashed query matched: frame and thumbnail hits aligned, soundtrack fused, exact
        digests, judged by the banks' current rules. `started` (monotonic) is when the work on
        it began, for `elapsed_s`."""
        started = time.monotonic() if started is None else started
        evidence = self.lookup_frames(query.views, query.thumb_views)
        matches = {
            m.item.id: m
            for m in self.match_evidence(evidence, query.audio, query.duration_s, query.is_video)
        }
        for digest_match in self._digest_matches(query):
            add_digest_match(matches, digest_match)
        judged = self.judge(matches.values())
        return MatchResult(
            file,
            judged.verdict,
            judged.matches,
            time.monotonic() - started,
            judged.allowed,
            judged.acted_on,
        )

    def judge(self, matches: Iterable[ItemMatch]) -> Judgement:
        """Matches judged by their banks' current rules (enabled, kind, thresholds)."""
        s = self.settings
        return judge(matches, self.store.bank_rules(), s.match_score, s.review_score)

    def search_frames(
        self,
        codes: npt.NDArray[np.uint8],
        max_distance: int,
        indexes: dict[str, StoreIndex] | None = None,
    ) -> list[IndexHit]:
        """Frame codes within `max_distance` of `codes`: this node's index and, when the index
        is sharded over nodes, every peer's, merged."""
        local = (indexes or self.indexes)["frames"]
        if not self.peers:
            return local.search_radius(codes, max_distance)
        return search_all([local, *self.peers], codes, max_distance, self._peer_pool)

    def lookup_frames(
        self, views: Sequence[ViewHash], thumbs: Sequence[ThumbView]
    ) -> FrameEvidence:
        """The index hits of query frames' PDQ views and thumbnails, at the query's times."""
        s = self.settings
        indexes = self.indexes  # caught up with the store once per query, not per lookup
        pdq_views = [v for v in views if v.frame.quality >= s.min_quality]
        pdq_hits = self.search_frames(
            codes_matrix([v.frame for v in pdq_views]), VideoSignal.threshold(s), indexes
        )
        pdq_evidence = [
            (hit.id, FrameHit(view.frame.timestamp, 0.0, hit.distance, view.view))
            for hit in pdq_hits
            for view in (pdq_views[hit.query_row],)
        ]
        thumb_hits = (
            indexes["thumbs"].search_radius(
                np.stack([t.vector for t in thumbs]), ThumbSignal.threshold(s)
            )
            if thumbs
            else []
        )
        thumb_evidence = [
            (hit.id, FrameHit(view.timestamp, 0.0, hit.distance, view.view))
            for hit in thumb_hits
            for view in (thumbs[hit.query_row],)
        ]
        return FrameEvidence(tuple(pdq_evidence), tuple(thumb_evidence))

    def match_evidence(
        self,
        evidence: FrameEvidence,
        audio: AudioPeaks | None,
        duration_s: float,
        is_video: bool = True,
    ) -> list[ItemMatch]:
        """Every item the frame hits and the soundtrack point to, scored, picture and sound fused.

        `evidence` and `audio` are a query's (a file's, or a live stream's recent window), with
        times in seconds from its start; `duration_s` is how long it is."""
        matches = {m.item.id: m for m in self._frame_matches(evidence, duration_s, is_video)}
        for audio_match in self._audio_matches(audio):
            picture = matches.get(audio_match.item.id)
            matches[audio_match.item.id] = (
                audio_match if picture is None else fuse_picture_and_sound(picture, audio_match)
            )
        return list(matches.values())

    def _frame_matches(
        self, evidence: FrameEvidence, duration_s: float, is_video: bool
    ) -> list[ItemMatch]:
        """Per item, the better of its PDQ alignment and its thumbnail alignment."""
        s = self.settings
        query_span = max(1, int(duration_s * s.bank_fps))
        found: dict[int, ItemMatch] = {}
        for hits, signal, fps, needed in (
            (evidence.pdq, VideoSignal if is_video else PdqSignal, s.query_fps, query_span),
            (evidence.thumbs, ThumbSignal, s.query_thumb_fps, s.min_thumb_frames),
        ):
            step = 1.0 / fps if is_video else 0.0
            for match in self._aligned_matches(hits, signal, step, duration_s, needed):
                keep_better_alignment(found, match, s.match_score)
        return list(found.values())

    def _aligned_matches(
        self,
        evidence: Sequence[tuple[int, FrameHit]],
        signal: type[SignalType],
        query_step: float,
        query_duration_s: float,
        most_needed: int,
    ) -> list[ItemMatch]:
        """Group hits by item, align them in time, and score each item's alignment.

        `most_needed` caps the aligned item frames needed for full confidence."""
        s = self.settings
        sources = self.store.resolve_signals(signal_id for signal_id, _ in evidence)
        by_item: dict[int, list[FrameHit]] = defaultdict(list)
        items: dict[int, Item] = {}
        for signal_id, hit in evidence:
            source = sources.get(signal_id)
            if source is None or not _usable_item_frame(source, s.min_quality):
                continue
            items[source.item.id] = source.item
            by_item[source.item.id].append(
                FrameHit(hit.query_time, source.timestamp, hit.distance, hit.view)
            )
        stored_types = [ThumbSignal.name] if signal is ThumbSignal else list(_PDQ_TYPES)
        frame_times = self.store.frame_times(by_item, stored_types, s.min_quality)
        results = []
        for item_id, item_hits in by_item.items():
            match = aligned_item_match(
                items[item_id],
                item_hits,
                signal,
                query_step,
                query_duration_s,
                most_needed,
                frame_times.get(item_id, []),
                s,
            )
            if match is not None:
                results.append(match)
        return results

    def _audio_matches(self, audio: AudioPeaks | None) -> list[ItemMatch]:
        if audio is None:
            return []
        audio_index = self.audio_index.index
        if len(audio_index) == 0:
            return []
        found = audio_index.search(
            query_landmarks_from_peaks(audio), AudioSignal.threshold(self.settings)
        )
        sources = self.store.resolve_signals(m.item_id for m in found)
        return [
            audio_item_match(source.item, match)
            for match in found
            for source in (sources.get(match.item_id),)
            if source is not None
        ]

    def _digest_matches(self, query: QuerySignals) -> list[ItemMatch]:
        return [
            digest_item_match(item, kind.name, query.duration_s)
            for kind, value in (
                (Md5Signal, query.digests.md5),
                (Sha256Signal, query.digests.sha256),
            )
            for item in self.store.find_items_by_signal(kind.name, value)
        ]

    # Hash lists

    def export_bank(self, bank: str, fmt: ListFormat) -> str:
        """The bank as a hash list in `fmt`. Hashes of types we do not know (kept from an import)
        are written back exactly as they were read."""
        records = []
        for item in self.store.items(bank):
            records.extend(_item_records(item, self.store.item_signals(item.id), fmt))
        return write_list(records, fmt)

    def import_hashes(
        self, bank: str, text: str | Iterable[HashRecord], fmt: ListFormat, source: str
    ) -> ImportSummary:
        """Bank every item of a hash list: its `text` in `fmt`, or its records already read (a
        fetcher's). The whole list is validated before anything is written; items already in
        the bank (same name) are skipped; hashes of types we do not know are kept as they are
        (`passed_through`) and exported again unchanged."""
        self.store.get_bank(bank)
        records = read_list(text, fmt, source) if isinstance(text, str) else list(text)
        new_items = _items_from_records(records, source)
        existing = {i.name for i in self.store.items(bank)}
        added = skipped = passed = 0
        for new in new_items:
            if new.name in existing:
                skipped += 1
                continue
            outcome = self.store.add_item(bank, new, self.settings.actor)
            self._apply(outcome.change)
            existing.add(new.name)
            added += 1
            passed += sum(
                1 for v in new.signals if signal_type_for_exchange_name(v.signal_type) is None
            )
        return ImportSummary(added, skipped, passed)


def hash_media_file_digests(path: Path, settings: Settings) -> FileDigests:
    """Digests of a file Firebreak would accept (it is probed first, like any upload)."""
    probe_media(path, settings)
    return file_digests(path)


def _usable_item_frame(source: IndexedSignal, min_quality: int) -> bool:
    return source.quality is None or source.quality >= min_quality


def _new_item(name: str, path: Path, signals: MediaSignals) -> NewItem:
    values: list[SignalValue] = [
        SignalValue(Md5Signal.name, signals.digests.md5),
        SignalValue(Sha256Signal.name, signals.digests.sha256),
    ]
    perceptual = VideoSignal.name if signals.is_video else PdqSignal.name
    values.extend(SignalValue(perceptual, f.hex, f.quality, f.timestamp) for f in signals.frames)
    values.extend(
        SignalValue(ThumbSignal.name, encode_thumb(v), None, t) for t, v in signals.thumbs
    )
    if signals.audio is not None:
        values.append(SignalValue(AudioSignal.name, format_audio_peaks(signals.audio)))
    return NewItem(
        name=name,
        media_kind=signals.info.kind.value,
        duration_s=signals.duration_s,
        signals=tuple(values),
        source_file=str(path),
        source_md5=signals.digests.md5,
        source_sha256=signals.digests.sha256,
    )


def _item_records(item: Item, values: list[SignalValue], fmt: ListFormat) -> list[HashRecord]:
    metadata = _list_metadata(item) if fmt is ListFormat.GIFCT else {}
    frames = [v for v in values if v.signal_type == VideoSignal.name]
    records = []
    if frames:
        features = [FrameHash.from_hex(v.value, v.quality or 0, v.timestamp or 0.0) for v in frames]
        records.append(
            HashRecord(
                VideoSignal.exchange_name, format_vpdq_json(features), item.name, metadata=metadata
            )
        )
    for v in values:
        if v.signal_type == VideoSignal.name:
            continue
        known = signal_type_for_exchange_name(v.signal_type)
        if known is not None and not known.industry:
            continue  # Firebreak-only signals travel between Firebreak instances, not in lists
        is_digest = known in DIGEST_SIGNAL_TYPES
        if is_digest and item.media_kind == MediaKind.IMAGE.value and fmt is ListFormat.TE:
            continue  # ThreatExchange's digest types are video types
        name = known.exchange_name if known is not None else v.signal_type
        records.append(HashRecord(name, v.value, item.name, metadata=metadata))
    return records


def _list_metadata(item: Item) -> dict[str, str]:
    """What a GIFCT row says about an item: the metadata keys it has columns for."""
    metadata = {}
    for key in GIFCT_METADATA:
        value = item.metadata.get(key)
        if value is not None and value != "":
            metadata[key] = value if isinstance(value, str) else str(value)
    return metadata


def _items_from_records(records: Iterable[HashRecord], source: str) -> list[NewItem]:
    grouped: dict[str, list[HashRecord]] = defaultdict(list)
    for number, record in enumerate(records, start=1):
        known = signal_type_for_exchange_name(record.signal_type)
        if known is not None:
            try:
                value = known.validate(record.value)
            except ValueError as exc:
                raise HashListInvalid(source, record.line or number, str(exc)) from None
            if known is not VideoSignal:
                # A digest in capitals is the same item as in lower case (vPDQ lists are named
                # as written, as they always were).
                record = replace(record, value=value)
        grouped[record_item_name(record)].append(record)
    return [_item_from_records(name, group) for name, group in grouped.items()]


def _item_from_records(name: str, records: list[HashRecord]) -> NewItem:
    values: list[SignalValue] = []
    media_kind = "hashes"
    duration = 0.0
    md5 = sha256 = None
    metadata: dict[str, str] = {}
    for record in records:
        for key, value in record.metadata.items():
            metadata.setdefault(key, value)  # the first row that says it wins
        known = signal_type_for_exchange_name(record.signal_type)
        if known is VideoSignal:
            frames = parse_vpdq(record.value)
            values.extend(
                SignalValue(VideoSignal.name, f.hex, f.quality, f.timestamp) for f in frames
            )
            media_kind = MediaKind.VIDEO.value
            duration = max(duration, max(f.timestamp for f in frames) + 1.0)
        elif known is PdqSignal:
            values.append(SignalValue(PdqSignal.name, known.validate(record.value), None, 0.0))
            if media_kind != MediaKind.VIDEO.value:
                media_kind = MediaKind.IMAGE.value
        elif known is not None:
            value = known.validate(record.value)
            values.append(SignalValue(known.name, value))
            md5 = value if known is Md5Signal else md5
            sha256 = value if known is Sha256Signal else sha256
        else:
            values.append(SignalValue(record.signal_type, record.value))
    return NewItem(name, media_kind, duration, tuple(values), None, md5, sha256, metadata)


__all__ = ["Firebreak", "ImportSummary", "MatchResult"]
