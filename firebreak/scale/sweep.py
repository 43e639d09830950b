"""Retroactive sweep: when something is newly banked, find the copies the platform already accepted.

    catalogue (JSONL) ──► partitions ──► one Dask task each ──► results ──► actions
    one upload a line:    N lines,       (workers hold the        written     (action rules, review
    a path, a URL, or     read as the    new items' small index,  atomically  queue, audit log), at
    its stored hashes     window moves   scattered once)          per part    most once per upload

A sweep looks only for the *new* items (a bank's items, optionally those added since an index
version or a time, or given ids), so its index is small and goes to every worker once. A catalogue
line with stored hashes (PDQ frames hashed at upload) costs one batched index lookup and, for the
few that hit, the same alignment and scoring `firebreak match` uses: a sweep of millions of stored
uploads is an index job with no decoding. A line with a path or URL is hashed the way `match` hashes
a file, on the worker, and looked up the same way.

State lives under `FIREBREAK_HOME/sweeps/<id>/`: the sweep's definition, one result file per
finished partition (written to a temporary name and renamed), and a journal of the uploads acted
on. Running a sweep again with its id skips the finished partitions and never acts twice on one
upload; killing the driver loses at most the partitions in flight.

Workers must be able to read the catalogue's paths (a local cluster can; a remote one needs them
on shared storage). The catalogue itself is read by the driver and its partitions shipped with
their tasks, so a remote cluster does not need to see the catalogue file.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import create_engine

from firebreak.actions.rules import Plan, carry_out, plan
from firebreak.actions.webhook import tell_platform
from firebreak.errors import DecisionRefused, FirebreakError
from firebreak.index import CosineIndex, HammingIndex, hex_codes
from firebreak.index.audio import AudioIndex
from firebreak.match import (
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
from firebreak.media.fetch import fetch_media
from firebreak.scale.workers import decode_query
from firebreak.service import Firebreak, match_json
from firebreak.settings import Settings
from firebreak.signals import FrameHash, QuerySignals, codes_matrix, hash_query_file
from firebreak.signals.audio import (
    AudioPeaks,
    AudioSignal,
    landmarks_from_peaks,
    parse_audio_peaks,
    query_landmarks_from_peaks,
)
from firebreak.signals.base import HASH_BYTES, SignalType
from firebreak.signals.md5 import Md5Signal
from firebreak.signals.pdq import PdqSignal
from firebreak.signals.registry import signal_type_for_exchange_name
from firebreak.signals.sha256 import Sha256Signal
from firebreak.signals.thumb import ThumbSignal, decode_thumbs
from firebreak.signals.video import VideoSignal, parse_feature, parse_vpdq
from firebreak.signals.views import ThumbView, ViewHash
from firebreak.store import BankRule, Item, SignalValue
from firebreak.store.scale import UploadLedger

_PDQ_TYPES = (PdqSignal.name, VideoSignal.name)
_DIGESTS: tuple[type[SignalType], ...] = (Md5Signal, Sha256Signal)
_DEFINITION = "sweep.json"
_JOURNAL = "actions.jsonl"
_PARTS = "parts"
_READ_CHUNK = 1 << 20
_STEP_BITS = 40  # synthetic catalogues: bits changed from one 1 fps frame to the next


class SweepError(FirebreakError):
    """A sweep that cannot start or go on: what is wrong, in one line."""

    def __init__(self, sweep: str, reason: str) -> None:
        super().__init__(f"sweep {sweep}: {reason}")
        self.sweep = sweep
        self.reason = reason


# --- the catalogue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """One past upload: where its media is, or the hashes stored for it when it was accepted."""

    id: str
    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    frames: tuple[FrameHash, ...] = ()
    is_video: bool = True
    duration_s: float | None = None
    audio: str | None = None
    """The soundtrack's peaks as stored (`format_audio_peaks`), if it was fingerprinted."""
    stored: tuple[str, str] | None = None
    """(SHA-256, hashing parameters) of the query signals a hasher worker stored in the
    database at upload: every view (mirrored, content box) and thumbnail, not only frames."""

    @property
    def has_hashes(self) -> bool:
        return bool(self.frames or self.sha256 or self.md5 or self.audio)

    @property
    def source(self) -> str:
        return self.path or self.url or (f"stored:{self.stored[0]}" if self.stored else "")

    def signal_values(self) -> list[SignalValue]:
        """The stored hashes as bank signals (what a `bank:NAME` action banks)."""
        values = [
            SignalValue(kind.name, value)
            for kind, value in ((Md5Signal, self.md5), (Sha256Signal, self.sha256))
            if value
        ]
        kind = VideoSignal.name if self.is_video else PdqSignal.name
        values.extend(SignalValue(kind, f.hex, f.quality, f.timestamp) for f in self.frames)
        if self.audio:
            values.append(SignalValue(AudioSignal.name, self.audio))
        return values


def parse_entry(line: str | bytes) -> CatalogueEntry:
    """One catalogue line: `{"id", "path"}`, `{"id", "url"}` or `{"id", "sha256"?, "md5"?,
    "duration_s"?, "signals": {...}}`, or ValueError.

    Signals are named as the store names them or as hash lists do: `video`/`vpdq` (vPDQ feature
    strings `hex,quality,timestamp`, a list or one `vpdq` JSON string), `pdq` (`hex` or
    `hex,quality`, a picture), `md5`/`video_md5` and `sha256` (also at the top level), `audio`
    (the soundtrack peaks as stored)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not a JSON object: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    raw_id = record.get("id")
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or str(raw_id) == "":
        raise ValueError("every upload needs an `id` (a string or a number)")
    entry_id = str(raw_id)
    path, url = record.get("path"), record.get("url")
    if path is not None and not isinstance(path, str):
        raise ValueError(f"{entry_id}: `path` must be a string")
    if url is not None and (not isinstance(url, str) or not _is_http(url)):
        raise ValueError(f"{entry_id}: `url` must be an http:// or https:// URL")
    digests = {
        kind.name: _digest(kind, record.get(kind.name, record.get(kind.exchange_name)), entry_id)
        for kind in _DIGESTS
    }
    video: list[FrameHash] = []
    pictures: list[FrameHash] = []
    audio: str | None = None
    signals = record.get("signals") or {}
    if not isinstance(signals, dict):
        raise ValueError(f"{entry_id}: `signals` must be an object of signal name to values")
    for name, values in signals.items():
        kind = signal_type_for_exchange_name(str(name))
        if kind is VideoSignal:
            video.extend(_video_frames(values))
        elif kind is PdqSignal:
            pictures.extend(_picture_frames(values))
        elif kind in _DIGESTS:
            digests[kind.name] = digests[kind.name] or _digest(kind, _one(values), entry_id)
        elif kind is AudioSignal:
            audio = AudioSignal.validate(str(_one(values)))
        # Other signal types (thumbnails, a partner's own) are not looked up by a sweep.
    duration = record.get("duration_s")
    if duration is not None and (not isinstance(duration, int | float) or duration < 0):
        raise ValueError(f"{entry_id}: `duration_s` must be a number of seconds")
    stored = _stored(record.get("stored"), entry_id)
    if stored is not None:
        return CatalogueEntry(entry_id, sha256=stored[0], stored=stored)
    entry = CatalogueEntry(
        entry_id,
        path,
        url,
        digests[Sha256Signal.name],
        digests[Md5Signal.name],
        tuple(video or pictures),
        bool(video) or not pictures,
        float(duration) if duration is not None else None,
        audio,
    )
    if not entry.has_hashes and not path and not url:
        raise ValueError(f"{entry_id}: neither a path, a URL nor stored hashes")
    return entry


def _stored(value: Any, entry_id: str) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f'{entry_id}: `stored` must be {{"sha256": ..., "params": ...}}')
    sha256, params = value.get("sha256"), value.get("params")
    if not isinstance(params, str) or not params or len(params) > 200:
        raise ValueError(f"{entry_id}: `stored` needs the `params` the signals were hashed with")
    return Sha256Signal.validate(str(sha256)), params


def _one(values: Any) -> Any:
    if isinstance(values, list):
        if len(values) != 1:
            raise ValueError("expected one value")
        return values[0]
    return values


def _digest(kind: type[SignalType], value: Any, entry_id: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{entry_id}: `{kind.name}` must be a hex string")
    return kind.validate(value)


def _video_frames(values: Any) -> list[FrameHash]:
    if isinstance(values, str):
        return parse_vpdq(values)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("`video` must be a list of `hex,quality,timestamp` strings")
    return [parse_feature(v) for v in values]


def _picture_frames(values: Any) -> list[FrameHash]:
    items = [values] if isinstance(values, str) else values
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ValueError("`pdq` must be a `hex` or `hex,quality` string, or a list of them")
    frames = []
    for value in items:
        hex_part, _, quality_part = value.partition(",")
        # A hash stored without its quality is taken as good, as `lookup_hash` takes it.
        quality = int(quality_part) if quality_part else 100
        if not 0 <= quality <= 100:
            raise ValueError(f"PDQ quality out of range: {quality}")
        frames.append(FrameHash.from_hex(hex_part, quality))
    return frames


def _is_http(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def count_lines(path: Path) -> int:
    """Physical lines of a file (a last line without its newline counts), read in chunks."""
    lines = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(_READ_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def iter_partitions(path: Path, size: int, skip: Iterable[int] = ()) -> Iterator[tuple[int, bytes]]:
    """Partition `k` is physical lines [k×size, (k+1)×size) of the catalogue, as bytes; those in
    `skip` are read past. Only one partition is held at a time."""
    skipped = set(skip)
    number = 0
    in_partition = 0
    lines: list[bytes] = []
    with path.open("rb") as f:
        for line in f:
            if number not in skipped:
                lines.append(line)
            in_partition += 1
            if in_partition == size:
                if number not in skipped:
                    yield number, b"".join(lines)
                number += 1
                in_partition = 0
                lines = []
    if in_partition and number not in skipped:
        yield number, b"".join(lines)


# --- what workers hold: the new items' small index ----------------------------------------------


@dataclass(frozen=True)
class Query:
    """What one upload gives to look up: its frames' PDQ views, thumbnails, soundtrack, digests."""

    entry: CatalogueEntry
    views: tuple[ViewHash, ...]
    is_video: bool
    duration_s: float
    thumbs: tuple[ThumbView, ...] = ()
    audio: AudioPeaks | None = None
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Finding:
    """An upload of the catalogue that the sweep's items matched (or that an allow list covers)."""

    id: str
    source: str
    sha256: str | None
    judgement: Judgement
    entry: CatalogueEntry
    """The catalogue line (a `bank:NAME` action banks its stored hashes)."""

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {
            "id": self.id,
            "source": self.source,
            "sha256": self.sha256,
            "verdict": self.judgement.verdict.value,
            "matches": [match_json(m) | {"item_id": m.item.id} for m in self.judgement.matches],
        }
        allowed = self.judgement.allowed
        if allowed is not None:
            record["allowed_by"] = {"bank": allowed.item.bank, "item": allowed.item.name}
        return record


@dataclass(frozen=True)
class EntryError:
    """A catalogue line the sweep could not look at (bad JSON, unreadable media), and why."""

    line: int
    id: str | None
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "id": self.id, "reason": self.reason}


@dataclass(frozen=True)
class PartitionResult:
    number: int
    entries: int
    findings: tuple[Finding, ...]
    errors: tuple[EntryError, ...]
    elapsed_s: float

    def to_json(self) -> dict[str, object]:
        return {
            "partition": self.number,
            "entries": self.entries,
            "findings": [f.to_json() for f in self.findings],
            "errors": [e.to_json() for e in self.errors],
            "elapsed_s": round(self.elapsed_s, 3),
        }


class SweepIndex:
    """The sweep's items, their frames, thumbnails, soundtracks and digests, and the bank rules:
    everything a worker needs to judge an upload as `Firebreak.match_file` would, with no store.

    Only arrays and strings travel (it is scattered to every worker once); the faiss and landmark
    indices are built on each worker the first time it is used."""

    def __init__(
        self,
        settings: Settings,
        items: Sequence[Item],
        signals: Mapping[int, Sequence[SignalValue]],
        rules: Mapping[str, BankRule],
    ) -> None:
        self.settings = settings
        self.items = tuple(items)
        self.rules = dict(rules)
        hexes: list[str] = []
        frame_item: list[int] = []
        frame_time: list[float] = []
        thumb_values: list[str] = []
        thumb_item: list[int] = []
        thumb_time: list[float] = []
        self.item_times: list[list[float]] = []
        self.thumb_times: list[list[float]] = []
        self.digests: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.audio: dict[int, str] = {}
        for position, item in enumerate(self.items):
            values = signals.get(item.id, ())
            usable = [v for v in values if v.signal_type in _PDQ_TYPES and _usable(v, settings)]
            for v in usable:
                hexes.append(v.value)
                frame_item.append(position)
                frame_time.append(v.timestamp or 0.0)
            # The distinct times the store's `frame_times` gives for the item's usable frames.
            self.item_times.append(sorted({v.timestamp or 0.0 for v in usable}))
            thumbs = [v for v in values if v.signal_type == ThumbSignal.name]
            for v in thumbs:
                thumb_values.append(v.value)
                thumb_item.append(position)
                thumb_time.append(v.timestamp or 0.0)
            self.thumb_times.append(sorted({v.timestamp or 0.0 for v in thumbs}))
            for v in values:
                if v.signal_type in (Md5Signal.name, Sha256Signal.name):
                    self.digests[(v.signal_type, v.value)].append(position)
                elif v.signal_type == AudioSignal.name:
                    self.audio[position] = v.value
        self.codes = hex_codes(hexes)
        self.frame_item = np.asarray(frame_item, dtype=np.int64)
        self.frame_time = np.asarray(frame_time, dtype=np.float64)
        self.thumb_values = thumb_values
        self.thumb_item = np.asarray(thumb_item, dtype=np.int64)
        self.thumb_time = np.asarray(thumb_time, dtype=np.float64)
        self._built: tuple[HammingIndex, CosineIndex | None, AudioIndex] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_built"] = None  # faiss indices do not pickle; each worker builds its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.items)

    def _indices(self) -> tuple[HammingIndex, CosineIndex | None, AudioIndex]:
        if self._built is None:
            frames = HammingIndex()
            frames.add(np.arange(len(self.codes), dtype=np.int64), self.codes)
            thumbs = None
            if self.thumb_values:
                vectors = decode_thumbs(self.thumb_values)
                thumbs = CosineIndex(int(vectors.shape[1]))
                thumbs.add(np.arange(len(vectors), dtype=np.int64), vectors)
            audio = AudioIndex()
            for position, value in self.audio.items():
                audio.add(position, landmarks_from_peaks(parse_audio_peaks(value)))
            self._built = (frames, thumbs, audio)
        return self._built

    # Judging

    def judge_many(self, queries: Sequence[Query]) -> list[Judgement | None]:
        """Each query judged by the bank rules; None for those no item came near. The frames of
        all queries go to the index in one search."""
        frames_index, _, _ = self._indices()
        s = self.settings
        min_quality = s.min_quality
        views: list[tuple[int, ViewHash]] = [
            (q, v)
            for q, query in enumerate(queries)
            for v in query.views
            if v.frame.quality >= min_quality
        ]
        hits = frames_index.search_radius(
            codes_matrix([v.frame for _, v in views]), VideoSignal.threshold(s)
        )
        pdq: dict[int, list[tuple[int, FrameHit]]] = defaultdict(list)
        for hit in hits:
            q, view = views[hit.query_row]
            pdq[q].append((hit.id, FrameHit(view.frame.timestamp, 0.0, hit.distance, view.view)))
        judged: list[Judgement | None] = []
        for q, query in enumerate(queries):
            matches = self._matches(query, pdq.get(q, []))
            judged.append(self._judge(matches) if matches else None)
        return judged

    def _judge(self, matches: Iterable[ItemMatch]) -> Judgement:
        s = self.settings
        return judge(matches, self.rules, s.match_score, s.review_score)

    def _matches(self, query: Query, pdq: list[tuple[int, FrameHit]]) -> list[ItemMatch]:
        """As `Firebreak.match_file`: frames (PDQ and thumbnails) aligned per item, the soundtrack
        fused in, exact digests on top."""
        found = {m.item.id: m for m in self._frame_matches(query, pdq)}
        for sound in self._audio_matches(query.audio):
            picture = found.get(sound.item.id)
            found[sound.item.id] = (
                sound if picture is None else fuse_picture_and_sound(picture, sound)
            )
        for kind, value in ((Md5Signal, query.md5), (Sha256Signal, query.sha256)):
            for position in self.digests.get((kind.name, value or ""), []):
                exact = digest_item_match(self.items[position], kind.name, query.duration_s)
                add_digest_match(found, exact)
        return list(found.values())

    def _frame_matches(self, query: Query, pdq: list[tuple[int, FrameHit]]) -> list[ItemMatch]:
        s = self.settings
        thumb_hits = self._thumb_hits(query.thumbs)
        query_span = max(1, int(query.duration_s * s.bank_fps))
        found: dict[int, ItemMatch] = {}
        for hits, signal, fps, needed, item_of, time_of, times in (
            (
                pdq,
                VideoSignal if query.is_video else PdqSignal,
                s.query_fps,
                query_span,
                self.frame_item,
                self.frame_time,
                self.item_times,
            ),
            (
                thumb_hits,
                ThumbSignal,
                s.query_thumb_fps,
                s.min_thumb_frames,
                self.thumb_item,
                self.thumb_time,
                self.thumb_times,
            ),
        ):
            if not hits:
                continue
            step = 1.0 / fps if query.is_video else 0.0
            by_item: dict[int, list[FrameHit]] = defaultdict(list)
            for row, hit in hits:
                by_item[int(item_of[row])].append(
                    FrameHit(hit.query_time, float(time_of[row]), hit.distance, hit.view)
                )
            for position, item_hits in by_item.items():
                match = aligned_item_match(
                    self.items[position],
                    item_hits,
                    signal,
                    step,
                    query.duration_s,
                    needed,
                    times[position],
                    s,
                )
                if match is not None:
                    keep_better_alignment(found, match, s.match_score)
        return list(found.values())

    def _thumb_hits(self, thumbs: Sequence[ThumbView]) -> list[tuple[int, FrameHit]]:
        _, thumb_index, _ = self._indices()
        if not thumbs or thumb_index is None:
            return []
        hits = thumb_index.search_radius(
            np.stack([t.vector for t in thumbs]), ThumbSignal.threshold(self.settings)
        )
        return [
            (hit.id, FrameHit(view.timestamp, 0.0, hit.distance, view.view))
            for hit in hits
            for view in (thumbs[hit.query_row],)
        ]

    def _audio_matches(self, audio: AudioPeaks | None) -> list[ItemMatch]:
        _, _, audio_index = self._indices()
        if audio is None or len(audio_index) == 0:
            return []
        found = audio_index.search(
            query_landmarks_from_peaks(audio), AudioSignal.threshold(self.settings)
        )
        return [audio_item_match(self.items[m.item_id], m) for m in found]


def _usable(value: SignalValue, settings: Settings) -> bool:
    return value.quality is None or value.quality >= settings.min_quality


# --- one partition, on a worker -----------------------------------------------------------------


def sweep_partition(
    index: SweepIndex, number: int, first_line: int, data: bytes
) -> PartitionResult:
    """Judge every upload of one partition against the sweep's items (the Dask task).
    `first_line` is the catalogue's line number (from 0) of the partition's first line."""
    with _gc_paused():
        return _sweep_partition(index, number, first_line, data)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a partition runs: its ~200,000 small objects (frame
    hashes, views, hits) hold no cycles and go by reference counting, yet collections triggered
    by their allocation took more than half of a partition's time (0.8 s of 5,000 uploads on
    one core, 0.33 s without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _sweep_partition(
    index: SweepIndex, number: int, first_line: int, data: bytes
) -> PartitionResult:
    started = time.monotonic()
    s = index.settings
    queries: list[Query] = []
    errors: list[EntryError] = []
    entries = 0
    for offset, raw in enumerate(data.split(b"\n")):
        if not raw.strip():
            continue
        entries += 1
        line = first_line + offset + 1
        entry: CatalogueEntry | None = None
        try:
            entry = parse_entry(raw)
            if entry.stored is not None:
                queries.append(stored_signals_query(entry, s))
            elif entry.has_hashes:
                queries.append(stored_query(entry, s))
            else:
                queries.append(media_query(entry, s))
        except (ValueError, FirebreakError, OSError) as exc:
            errors.append(EntryError(line, entry.id if entry else None, str(exc)[:500]))
    findings = [
        Finding(q.entry.id, q.entry.source, q.sha256, judged, q.entry)
        for q, judged in zip(queries, index.judge_many(queries), strict=True)
        if judged is not None and (judged.matches or judged.allowed is not None)
    ]
    return PartitionResult(
        number, entries, tuple(findings), tuple(errors), time.monotonic() - started
    )


def stored_query(entry: CatalogueEntry, settings: Settings) -> Query:
    """The stored hashes of an upload as a query: its frames are whole-frame views (what upload
    hashing kept), timed as stored."""
    frames = entry.frames
    if entry.duration_s is not None:
        duration = entry.duration_s
    elif entry.is_video and frames:
        duration = max(f.timestamp for f in frames) + 1.0 / settings.bank_fps
    else:
        duration = 0.0
    audio = parse_audio_peaks(entry.audio) if entry.audio else None
    return Query(
        entry,
        tuple(ViewHash("frame", f) for f in frames),
        entry.is_video,
        duration,
        (),
        audio,
        entry.md5,
        entry.sha256,
    )


_ledgers: dict[str, UploadLedger] = {}


def stored_signals_query(entry: CatalogueEntry, settings: Settings) -> Query:
    """The query signals a hasher worker stored for the upload, read back from the database:
    the same views and thumbnails `firebreak match` would compute, without decoding again."""
    assert entry.stored is not None
    url = settings.resolved_database_url
    ledger = _ledgers.get(url)
    if ledger is None:  # one engine a worker process
        ledger = _ledgers[url] = UploadLedger(create_engine(url, pool_pre_ping=True))
    sha256, params = entry.stored
    data = ledger.signals(sha256, params)
    if data is None:
        raise ValueError(f"{entry.id}: no stored signals for {sha256} hashed with {params}")
    return _signals_query(entry, decode_query(data, entry.id))


def _signals_query(entry: CatalogueEntry, signals: QuerySignals) -> Query:
    return Query(
        entry,
        tuple(signals.views),
        signals.is_video,
        signals.duration_s,
        tuple(signals.thumb_views),
        signals.audio,
        signals.digests.md5,
        signals.digests.sha256,
    )


def media_query(entry: CatalogueEntry, settings: Settings) -> Query:
    """An upload's media (a path, or a URL fetched first) hashed as `firebreak match` hashes it."""
    with _local_media(entry, settings) as path:
        signals = hash_query_file(path, settings)
    return _signals_query(entry, signals)


@contextlib.contextmanager
def _local_media(entry: CatalogueEntry, settings: Settings) -> Iterator[Path]:
    """The entry's media as a local file: its path, or its URL fetched (within the API's size and
    time limits) into a temporary folder removed afterwards.

    The catalogue is the platform's own (its storage may well be internal), so private addresses
    are not refused here as the public API refuses them."""
    if entry.path:
        yield Path(entry.path)
        return
    assert entry.url is not None
    folder = Path(tempfile.mkdtemp(prefix="firebreak-sweep-"))
    try:
        yield fetch_media(
            entry.url,
            folder,
            max_bytes=settings.api_max_upload_bytes,
            timeout_s=settings.api_fetch_timeout_s,
            allow_private=True,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the sweep's definition and state -----------------------------------------------------------


@dataclass(frozen=True)
class SweepDefinition:
    """What a sweep looks for and where: fixed when it starts, so a resumed sweep is the same one."""

    id: str
    catalogue: str
    catalogue_size: int
    catalogue_fingerprint: str
    lines: int
    partition_size: int
    banks: tuple[str, ...]
    items: tuple[int, ...]
    """The ids of the items looked for, resolved when the sweep began."""
    since_version: int | None = None
    since: str | None = None
    item_ids: tuple[int, ...] | None = None
    allow_lists: bool = True
    """Whether allow-list items ride along, to suppress block matches as `match` does."""
    created_at: str = ""

    @property
    def partitions(self) -> int:
        return -(-self.lines // self.partition_size)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "catalogue": self.catalogue,
            "catalogue_size": self.catalogue_size,
            "catalogue_fingerprint": self.catalogue_fingerprint,
            "lines": self.lines,
            "partition_size": self.partition_size,
            "banks": list(self.banks),
            "items": list(self.items),
            "since_version": self.since_version,
            "since": self.since,
            "item_ids": list(self.item_ids) if self.item_ids is not None else None,
            "allow_lists": self.allow_lists,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> SweepDefinition:
        item_ids = record.get("item_ids")
        return cls(
            id=str(record["id"]),
            catalogue=str(record["catalogue"]),
            catalogue_size=int(record["catalogue_size"]),
            catalogue_fingerprint=str(record["catalogue_fingerprint"]),
            lines=int(record["lines"]),
            partition_size=int(record["partition_size"]),
            banks=tuple(record["banks"]),
            items=tuple(int(i) for i in record["items"]),
            since_version=record.get("since_version"),
            since=record.get("since"),
            item_ids=tuple(int(i) for i in item_ids) if item_ids is not None else None,
            allow_lists=bool(record.get("allow_lists", True)),
            created_at=str(record.get("created_at", "")),
        )


@dataclass(frozen=True)
class SweepProgress:
    """Where a running sweep is: handed to the progress callback after each partition."""

    partitions_done: int
    partitions: int
    entries: int
    """Uploads looked at, counting partitions finished before a resume."""
    matches: int
    items_per_s: float
    """Uploads a second in this run."""


@dataclass(frozen=True)
class SweepSummary:
    id: str
    directory: Path
    items: int
    """New items looked for."""
    partitions: int
    partitions_done: int
    skipped: int
    """Partitions finished by an earlier run, not done again."""
    entries: int
    entries_this_run: int
    matches: int
    reviews: int
    errors: int
    acted: int
    """Uploads acted on in this run."""
    interrupted_actions: tuple[str, ...]
    """Uploads whose actions an earlier run began and may not have finished (not redone)."""
    startup_s: float
    scan_s: float
    items_per_s: float

    @property
    def complete(self) -> bool:
        return self.partitions_done == self.partitions

    def to_json(self) -> dict[str, object]:
        return {
            "sweep": self.id,
            "directory": str(self.directory),
            "items": self.items,
            "partitions": self.partitions,
            "partitions_done": self.partitions_done,
            "skipped": self.skipped,
            "entries": self.entries,
            "entries_this_run": self.entries_this_run,
            "matches": self.matches,
            "reviews": self.reviews,
            "errors": self.errors,
            "acted": self.acted,
            "interrupted_actions": list(self.interrupted_actions),
            "startup_s": round(self.startup_s, 3),
            "scan_s": round(self.scan_s, 3),
            "items_per_s": round(self.items_per_s, 1),
            "complete": self.complete,
        }


ProgressCallback = Callable[[SweepProgress], None]


def sweeps_dir(settings: Settings) -> Path:
    return settings.home / "sweeps"


def catalogue_fingerprint(path: Path) -> str:
    """SHA-256 of the catalogue's first and last MiB and its size: enough to tell that a resumed
    sweep reads the same catalogue without reading millions of lines again."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        digest.update(f.read(_READ_CHUNK))
        f.seek(max(0, size - _READ_CHUNK))
        digest.update(f.read(_READ_CHUNK))
    digest.update(str(size).encode())
    return digest.hexdigest()


def write_json_atomic(path: Path, record: Mapping[str, Any]) -> None:
    """Write to a temporary name, flush to disk, rename into place: a reader (or a resumed
    sweep) sees the whole file or none."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    with partial.open("w", encoding="utf-8") as f:
        json.dump(record, f, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)


class _Journal:
    """The uploads acted on, one JSON line each: `intent` before the actions run, `done` after.

    An upload with any line is never acted on again, so no upload is acted on twice; one with an
    `intent` and no `done` was cut off mid-way by a crash and is reported for a person to check."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started: set[str] = set()
        self.finished: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                    record = json.loads(line)
                    (self.finished if record["phase"] == "done" else self.started).add(
                        str(record["id"])
                    )
        self.interrupted = tuple(sorted(self.started - self.finished))

    def __contains__(self, upload: str) -> bool:
        return upload in self.started or upload in self.finished

    def write(self, upload: str, phase: str, detail: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"id": upload, "phase": phase, **detail}, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        (self.finished if phase == "done" else self.started).add(upload)


# --- the driver ---------------------------------------------------------------------------------


class Sweep:
    """One sweep of a catalogue for a set of newly banked items, resumable by its id."""

    def __init__(self, fb: Firebreak, definition: SweepDefinition) -> None:
        self.fb = fb
        self.definition = definition
        self.directory = sweeps_dir(fb.settings) / definition.id

    @property
    def id(self) -> str:
        return self.definition.id

    @classmethod
    def open(
        cls,
        fb: Firebreak,
        catalogue: Path,
        banks: Sequence[str],
        *,
        since_version: int | None = None,
        since: datetime | None = None,
        item_ids: Sequence[int] | None = None,
        partition_size: int = 2000,
        sweep_id: str | None = None,
        allow_lists: bool = True,
    ) -> Sweep:
        """A new sweep, or, when `sweep_id` names one already begun, that one (which must be of
        the same catalogue, unchanged, and the same banks)."""
        if sweep_id and (sweeps_dir(fb.settings) / _safe_id(sweep_id) / _DEFINITION).exists():
            sweep = cls.resume(fb, sweep_id)
            sweep._check_same(catalogue, banks, since_version, since)
            return sweep
        if partition_size < 1:
            raise SweepError(sweep_id or "new", "the partition size must be at least 1")
        if not banks:
            raise SweepError(sweep_id or "new", "name at least one bank to look for")
        new_id = _safe_id(sweep_id) if sweep_id else _new_id()
        catalogue = catalogue.resolve()
        if not catalogue.is_file():
            raise SweepError(new_id, f"no catalogue at {catalogue}")
        items = _items_to_find(fb, new_id, banks, since_version, since, item_ids)
        definition = SweepDefinition(
            id=new_id,
            catalogue=str(catalogue),
            catalogue_size=catalogue.stat().st_size,
            catalogue_fingerprint=catalogue_fingerprint(catalogue),
            lines=count_lines(catalogue),
            partition_size=partition_size,
            banks=tuple(banks),
            items=tuple(i.id for i in items),
            since_version=since_version,
            since=_utc(since).isoformat() if since else None,
            item_ids=tuple(item_ids) if item_ids is not None else None,
            allow_lists=allow_lists,
            created_at=datetime.now(UTC).isoformat(),
        )
        sweep = cls(fb, definition)
        (sweep.directory / _PARTS).mkdir(parents=True, exist_ok=True)
        write_json_atomic(sweep.directory / _DEFINITION, definition.to_json())
        fb.store.audit.append(
            fb.settings.actor,
            "sweep.start",
            f"sweep:{new_id}",
            f"{len(items)} items of {', '.join(banks)} in {catalogue.name}",
            definition.to_json() | {"items": len(definition.items)},
        )
        return sweep

    @classmethod
    def resume(cls, fb: Firebreak, sweep_id: str) -> Sweep:
        path = sweeps_dir(fb.settings) / _safe_id(sweep_id) / _DEFINITION
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SweepError(sweep_id, f"no sweep of that id under {path.parent.parent}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise SweepError(sweep_id, f"its definition cannot be read: {exc}") from None
        sweep = cls(fb, SweepDefinition.from_json(record))
        catalogue = Path(sweep.definition.catalogue)
        if not catalogue.is_file():
            raise SweepError(sweep_id, f"its catalogue {catalogue} is gone")
        if (
            catalogue.stat().st_size != sweep.definition.catalogue_size
            or catalogue_fingerprint(catalogue) != sweep.definition.catalogue_fingerprint
        ):
            raise SweepError(sweep_id, f"its catalogue {catalogue} changed since it began")
        return sweep

    def _check_same(
        self,
        catalogue: Path,
        banks: Sequence[str],
        since_version: int | None,
        since: datetime | None,
    ) -> None:
        """Refuse to resume a sweep as another one: what is given must be what it began with
        (what is left out is taken from the sweep)."""
        d = self.definition
        if str(catalogue.resolve()) != d.catalogue:
            raise SweepError(self.id, f"it sweeps {d.catalogue}, not {catalogue}")
        if banks and tuple(banks) != d.banks:
            raise SweepError(self.id, f"it looks for the items of {', '.join(d.banks)}")
        if since_version is not None and since_version != d.since_version:
            raise SweepError(self.id, f"it looks for items since version {d.since_version}")
        if since is not None and _utc(since).isoformat() != d.since:
            raise SweepError(self.id, f"it looks for items banked since {d.since}")

    # State

    def finished_partitions(self) -> set[int]:
        parts = self.directory / _PARTS
        return {int(p.stem) for p in parts.glob("*.json") if p.stem.isdigit()}

    def partition_records(self) -> Iterator[dict[str, Any]]:
        """The recorded result of each finished partition, in partition order."""
        for number in sorted(self.finished_partitions()):
            path = self.directory / _PARTS / f"{number:06d}.json"
            yield json.loads(path.read_text(encoding="utf-8"))

    def findings(self) -> Iterator[dict[str, Any]]:
        """Every finding recorded so far (`Finding.to_json`), in catalogue order."""
        for record in self.partition_records():
            yield from record["findings"]

    def build_index(self) -> SweepIndex:
        """The sweep's items (those still banked) and, with `allow_lists`, every enabled
        allow-list item, with their signals and the banks' current rules."""
        store = self.fb.store
        rules = store.bank_rules()
        wanted = set(self.definition.items)
        items = [
            item
            for bank in self.definition.banks
            if bank in rules
            for item in store.items(bank)
            if item.id in wanted
        ]
        if self.definition.allow_lists:
            seen = {i.id for i in items}
            for name, rule in rules.items():
                if rule.kind == "allow" and rule.enabled:
                    items.extend(i for i in store.items(name) if i.id not in seen)
        signals = {item.id: store.item_signals(item.id) for item in items}
        return SweepIndex(self.fb.settings, items, signals, rules)

    # Running

    def run(
        self,
        *,
        scheduler: str | None = None,
        workers: int = 2,
        progress: ProgressCallback | None = None,
        in_flight: int | None = None,
    ) -> SweepSummary:
        """Sweep the partitions not yet finished on a Dask cluster: a local one of `workers`
        processes (loopback only), or the one whose scheduler is at `scheduler`
        (tcp://host:port). Each finished partition's findings are acted on and recorded before
        the next is counted; `progress` hears of each. At most `in_flight` partitions (twice the
        workers' threads by default) are out at once, so the driver holds only those."""
        started = time.monotonic()
        definition = self.definition
        finished = self.finished_partitions()
        journal = _Journal(self.directory / _JOURNAL)
        actor = _SweepActor(self.fb, self.id, journal)
        index = self.build_index()
        totals = _Totals.of(self.partition_records())
        skipped = len(finished)
        entries_before = totals.entries
        scan_started = time.monotonic()
        if len(finished) < definition.partitions:
            with _dask_client(scheduler, workers) as client:
                scan_started = time.monotonic()
                self._scan(client, index, finished, actor, totals, progress, in_flight)
        scan_s = time.monotonic() - scan_started
        this_run = totals.entries - entries_before
        looked_for = set(definition.items)
        summary = SweepSummary(
            id=self.id,
            directory=self.directory,
            items=sum(1 for i in index.items if i.id in looked_for),
            partitions=definition.partitions,
            partitions_done=len(self.finished_partitions()),
            skipped=skipped,
            entries=totals.entries,
            entries_this_run=this_run,
            matches=totals.matches,
            reviews=totals.reviews,
            errors=totals.errors,
            acted=actor.acted,
            interrupted_actions=journal.interrupted,
            startup_s=scan_started - started,
            scan_s=scan_s,
            items_per_s=this_run / scan_s if scan_s > 0 else 0.0,
        )
        if summary.complete and this_run:
            self.fb.store.audit.append(
                self.fb.settings.actor,
                "sweep.finish",
                f"sweep:{self.id}",
                f"{summary.entries} uploads, {summary.matches} matches",
                summary.to_json(),
            )
        return summary

    def _scan(
        self,
        client: Any,
        index: SweepIndex,
        finished: set[int],
        actor: _SweepActor,
        totals: _Totals,
        progress: ProgressCallback | None,
        in_flight: int | None,
    ) -> None:
        from distributed import as_completed

        definition = self.definition
        size = definition.partition_size
        threads = sum(client.nthreads().values()) or 1
        window = in_flight or 2 * threads
        shared = client.scatter(index, broadcast=True, hash=False)
        pending = iter_partitions(Path(definition.catalogue), size, finished)
        run_started = time.monotonic()
        entries_this_run = 0

        def submit_next() -> Any | None:
            nxt = next(pending, None)
            if nxt is None:
                return None
            number, data = nxt
            return client.submit(sweep_partition, shared, number, number * size, data, pure=False)

        outstanding: set[Any] = set()
        futures = as_completed([])  # type: ignore[no-untyped-call]
        try:
            for _ in range(window):
                future = submit_next()
                if future is None:
                    break
                outstanding.add(future)
                futures.add(future)  # type: ignore[no-untyped-call]
            for future in futures:
                outstanding.discard(future)
                try:
                    result: PartitionResult = future.result()
                except Exception as exc:
                    raise SweepError(self.id, f"a partition failed: {exc}") from exc
                future.release()
                for finding in result.findings:
                    actor.act(finding)
                record = result.to_json()
                write_json_atomic(self.directory / _PARTS / f"{result.number:06d}.json", record)
                totals.add(record)
                entries_this_run += result.entries
                following = submit_next()
                if following is not None:
                    outstanding.add(following)
                    futures.add(following)  # type: ignore[no-untyped-call]
                if progress is not None:
                    elapsed = time.monotonic() - run_started
                    progress(
                        SweepProgress(
                            totals.partitions,
                            definition.partitions,
                            totals.entries,
                            totals.matches,
                            entries_this_run / elapsed if elapsed > 0 else 0.0,
                        )
                    )
        finally:
            # Interrupted (Ctrl-C, an error): the partitions in flight are let go, not recorded.
            if outstanding:
                with contextlib.suppress(Exception):
                    client.cancel(list(outstanding))


@dataclass
class _Totals:
    partitions: int = 0
    entries: int = 0
    matches: int = 0
    reviews: int = 0
    errors: int = 0

    @classmethod
    def of(cls, records: Iterable[Mapping[str, Any]]) -> _Totals:
        totals = cls()
        for record in records:
            totals.add(record)
        return totals

    def add(self, record: Mapping[str, Any]) -> None:
        self.partitions += 1
        self.entries += int(record["entries"])
        self.errors += len(record["errors"])
        for finding in record["findings"]:
            verdict = finding["verdict"]
            self.matches += verdict == Verdict.MATCH.value
            self.reviews += verdict == Verdict.REVIEW.value


@contextlib.contextmanager
def _dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A client of the cluster at `scheduler`, or of a local cluster of `workers` processes of
    one thread each, every port of it on loopback."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
            yield client
        return
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            host="127.0.0.1",
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # its HTTP endpoints on loopback, on a free port
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


class _SweepActor:
    """A finding turned into actions by the action rules, as an upload's scan is
    (`ReviewDesk.scan`): hold for review, webhook, bank; every decision to the audit log."""

    def __init__(self, fb: Firebreak, sweep_id: str, journal: _Journal) -> None:
        self.fb = fb
        self.sweep_id = sweep_id
        self.journal = journal
        self.acted = 0
        self._labels = {name: r.label for name, r in fb.store.bank_rules().items()}

    def act(self, finding: Finding) -> Plan | None:
        """Act on `finding` unless this sweep already has (in this run or an earlier one)."""
        if finding.id in self.journal:
            return None
        judged = finding.judgement
        chosen = plan(judged, self.fb.settings.action_rules, self._labels)
        self.journal.write(finding.id, "intent", {"decision": chosen.decision})
        review_id: int | None = None
        actor = self.fb.settings.actor
        matches = [match_json(m) for m in judged.matches]

        def do(action: str) -> None:
            nonlocal review_id
            if action == "hold":
                media = self._kept_media(finding)
                review = self.fb.store.reviews.hold(
                    finding.id, media, finding.sha256, judged.verdict.value, matches, actor
                )
                review_id = review.id
            elif action == "webhook":
                self._tell(finding, chosen)
            elif action.startswith("bank:"):
                self._bank(action[5:], finding)

        done = carry_out(chosen.actions, do)
        if chosen.decision != "allow" or judged.matches:
            self.fb.store.audit.append(
                actor,
                f"sweep.{chosen.decision}",
                f"upload:{finding.id[:200]}",
                chosen.reason,
                {
                    "sweep": self.sweep_id,
                    "source": finding.source,
                    "sha256": finding.sha256,
                    "matches": matches[:5],
                    "actions": done,
                    "review_id": review_id,
                },
            )
        self.journal.write(finding.id, "done", {"actions": done, "review_id": review_id})
        self.acted += 1
        return chosen

    def _kept_media(self, finding: Finding) -> str | None:
        """A kept copy of the upload for reviewers, when its file is at hand (hashes-only and
        URL uploads are reviewed by their matches; the platform holds the media)."""
        path = finding.entry.path
        if not path or not Path(path).is_file():
            return None
        return str(self.fb.keep_media(Path(path), finding.sha256))

    def _bank(self, bank: str, finding: Finding) -> None:
        entry = finding.entry
        actor = self.fb.settings.actor
        if entry.path and Path(entry.path).is_file():
            self.fb.bank_file(bank, Path(entry.path), entry.id, actor=actor, create=True)
            return
        values = entry.signal_values()
        if not values:
            raise DecisionRefused(f"upload:{entry.id}", "no stored hashes or media to bank")
        if bank not in self.fb.store.bank_rules():
            self.fb.create_bank(bank, "block", actor)
        self.fb.add_hashes(bank, entry.id, values, actor, {"sweep": self.sweep_id})

    def _tell(self, finding: Finding, chosen: Plan) -> None:
        s = self.fb.settings
        judged = finding.judgement
        tell_platform(
            s.scan_webhook_url,
            s.webhook_secret.get_secret_value() if s.webhook_secret else None,
            f"sweep:{finding.id}:{chosen.decision}:{chosen.rule}",
            {
                "subject": finding.id,
                "sha256": finding.sha256,
                "decision": chosen.decision,
                "reason": chosen.reason,
                "verdict": judged.verdict.value,
                "matches": [match_json(m) for m in judged.matches[:5]],
                "sweep": self.sweep_id,
            },
        )


def _items_to_find(
    fb: Firebreak,
    sweep_id: str,
    banks: Sequence[str],
    since_version: int | None,
    since: datetime | None,
    item_ids: Sequence[int] | None,
) -> list[Item]:
    """The banks' items, narrowed to those added after index version `since_version`, at or
    after `since`, and among `item_ids`, as each is given."""
    store = fb.store
    items = [item for bank in banks for item in store.items(bank)]
    if item_ids is not None:
        wanted = set(item_ids)
        items = [i for i in items if i.id in wanted]
    if since_version is not None:
        changes = store.index_changes_since(since_version)
        if changes is None:
            raise SweepError(
                sweep_id,
                f"the change log no longer reaches back to index version {since_version}; "
                "give a time (since) instead",
            )
        signal_ids = {entry.id for change in changes for entry in change.added}
        added = {s.item.id for s in store.resolve_signals(signal_ids).values()}
        items = [i for i in items if i.id in added]
    if since is not None:
        cutoff = _utc(since)
        items = [i for i in items if _utc(i.added_at) >= cutoff]
    if not items:
        raise SweepError(sweep_id, "no items to look for in " + ", ".join(banks))
    return items


def _utc(moment: datetime) -> datetime:
    """Times without a zone are UTC (SQLite gives them back so)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _new_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _safe_id(sweep_id: str) -> str:
    if not sweep_id or not all(c.isalnum() or c in "-_." for c in sweep_id) or sweep_id[0] == ".":
        raise SweepError(sweep_id, "a sweep id is letters, digits, '-', '_' and '.'")
    return sweep_id


# --- synthetic catalogues (tests, benchmark) ----------------------------------------------------


def random_walk_frames(
    rng: np.random.Generator,
    count: int,
    *,
    start_s: float = 0.0,
    step_bits: int = _STEP_BITS,
    quality: tuple[int, int] = (60, 100),
) -> list[FrameHash]:
    """`count` frame hashes a second apart, each about `step_bits` random bits away from the
    last: how PDQ codes of 1 fps samples of one moving shot drift (PDQ moves 30+ bits within a
    fifth of a second of moving footage, so neighbouring samples lie just outside the radius)."""
    codes = _walk_codes(rng, np.array([count]), step_bits)
    qualities = rng.integers(quality[0], quality[1] + 1, count)
    return [
        FrameHash(codes[k].tobytes(), int(qualities[k]), start_s + float(k)) for k in range(count)
    ]


def _walk_codes(
    rng: np.random.Generator, lengths: npt.NDArray[np.int64], step_bits: int
) -> npt.NDArray[np.uint8]:
    """Random walks of the given lengths, one after another: a row per frame, 32 bytes each."""
    total = int(lengths.sum())
    flips = np.zeros((total, 256), dtype=bool)
    rows = np.repeat(np.arange(total), step_bits)
    flips[rows, rng.integers(0, 256, total * step_bits)] = True
    steps = np.packbits(flips, axis=1)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    steps[starts] = rng.integers(0, 256, (len(lengths), HASH_BYTES), dtype=np.uint8)
    walked = np.bitwise_xor.accumulate(steps, axis=0)
    # Each walk starts afresh: undo what the walks before it left in the running XOR.
    before = np.zeros((len(lengths), HASH_BYTES), dtype=np.uint8)
    before[1:] = walked[starts[1:] - 1]
    return np.asarray(walked ^ np.repeat(before, lengths, axis=0), dtype=np.uint8)


def planted_copy(
    rng: np.random.Generator, frames: Sequence[FrameHash], *, max_noise_bits: int = 10
) -> list[FrameHash]:
    """A re-upload of a banked video's frames as upload hashing would store it: an excerpt of at
    least five frames (or all, if fewer), each frame re-encoded (up to `max_noise_bits` bits
    changed), set inside unrelated footage, and at most one edit: a dropped frame or two
    neighbouring frames swapped."""
    length = len(frames)
    take = length if length <= 5 else int(rng.integers(max(5, length // 2), length + 1))
    first = int(rng.integers(0, length - take + 1))
    excerpt = [
        _flip_bits(rng, f.code, int(rng.integers(0, max_noise_bits + 1)))
        for f in frames[first : first + take]
    ]
    qualities = [max(f.quality, 50) for f in frames[first : first + take]]
    order = list(range(take))
    if take >= 8:
        edit = int(rng.integers(0, 3))
        at = int(rng.integers(1, take - 2))
        if edit == 1:
            del order[at]
        elif edit == 2:
            order[at], order[at + 1] = order[at + 1], order[at]
    before = int(rng.integers(0, 6))
    after = int(rng.integers(0, 6))
    padding = _walk_codes(rng, np.array([before + after]), _STEP_BITS) if before + after else None
    codes = [padding[k].tobytes() for k in range(before)] if padding is not None else []
    codes += [excerpt[k] for k in order]
    codes += [padding[before + k].tobytes() for k in range(after)] if padding is not None else []
    quality = [80] * before + [qualities[k] for k in order] + [80] * after
    return [
        FrameHash(code, q, float(t)) for t, (code, q) in enumerate(zip(codes, quality, strict=True))
    ]


def _flip_bits(rng: np.random.Generator, code: bytes, bits: int) -> bytes:
    flipped = np.unpackbits(np.frombuffer(code, dtype=np.uint8))
    positions = rng.choice(256, size=bits, replace=False)
    flipped[positions] ^= 1
    return np.packbits(flipped).tobytes()


def make_catalogue(
    path: Path,
    n: int,
    planted: Mapping[str, Sequence[FrameHash]],
    *,
    copies: int = 1,
    seed: int = 0,
    frames: tuple[int, int] = (3, 12),
) -> dict[str, str]:
    """Write a catalogue of `n` stored-hash video uploads (1 fps vPDQ frames, random walks of
    `frames` lengths, with an MD5 and a SHA-256 each) in which `copies` uploads of each planted
    item (name → its frames) are noisy partial copies (`planted_copy`). Returns planted upload
    id → item name."""
    rng = np.random.default_rng(seed)
    plants = [(name, k) for name in planted for k in range(copies)]
    if len(plants) > n:
        raise ValueError(f"{len(plants)} planted copies do not fit in {n} uploads")
    at = rng.choice(n, size=len(plants), replace=False)
    planted_at = {int(line): plant for line, plant in zip(at, plants, strict=True)}
    lengths = rng.integers(frames[0], frames[1] + 1, n).astype(np.int64)
    found: dict[str, str] = {}
    chunk = 20_000
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            codes = _walk_codes(rng, lengths[start:stop], _STEP_BITS)
            hexes = codes.tobytes().hex()
            qualities = rng.integers(40, 101, len(codes))
            digests = rng.bytes(48 * (stop - start)).hex()
            row = 0
            lines = []
            for k in range(start, stop):
                upload = f"u{k:08d}"
                count = int(lengths[k])
                plant = planted_at.get(k)
                if plant is not None:
                    copy = planted_copy(rng, planted[plant[0]])
                    features = [f"{f.hex},{f.quality},{f.timestamp:.3f}" for f in copy]
                    found[upload] = plant[0]
                else:
                    features = [
                        f"{hexes[64 * r : 64 * r + 64]},{qualities[r]},{t}.000"
                        for t, r in enumerate(range(row, row + count))
                    ]
                row += count
                d = digests[96 * (k - start) : 96 * (k - start + 1)]
                lines.append(
                    f'{{"id": "{upload}", "md5": "{d[:32]}", "sha256": "{d[32:]}", '
                    f'"duration_s": {len(features)}.0, "signals": {{"video": '
                    f"{json.dumps(features)}}}}}\n"
                )
            out.writelines(lines)
    return found


@dataclass(frozen=True)
class SyntheticSweep:
    """A sweep of a synthetic catalogue (`bench_sweep`) and how it did against what was planted."""

    summary: SweepSummary
    uploads: int
    planted: int
    found: int
    """Planted copies the sweep judged a match with the item planted."""
    false_matches: int
    """Matches of uploads that hold no planted copy."""
    catalogue_s: float
    catalogue_bytes: int

    def to_json(self) -> dict[str, object]:
        return self.summary.to_json() | {
            "uploads": self.uploads,
            "planted": self.planted,
            "found": self.found,
            "false_matches": self.false_matches,
            "catalogue_s": round(self.catalogue_s, 2),
            "catalogue_bytes": self.catalogue_bytes,
        }


def bench_sweep(
    home: Path,
    uploads: int,
    *,
    items: int = 20,
    copies: int = 2,
    workers: int = 2,
    scheduler: str | None = None,
    partition_size: int = 5000,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> SyntheticSweep:
    """Bank `items` synthetic videos into a fresh `home`, write a catalogue of `uploads` stored
    uploads with `copies` planted copies of each, sweep it, and count what was found."""
    rng = np.random.default_rng(seed)
    fb = Firebreak(Settings(home=home))
    try:
        bank = f"bench-{secrets.token_hex(3)}"
        fb.create_bank(bank)
        frames: dict[str, list[FrameHash]] = {}
        for k in range(items):
            name = f"{bank}-{k:04d}"
            frames[name] = random_walk_frames(rng, int(rng.integers(10, 60)))
            values = [
                SignalValue(VideoSignal.name, f.hex, f.quality, f.timestamp) for f in frames[name]
            ]
            fb.add_hashes(bank, name, values, fb.settings.actor)
        catalogue = home / f"{bank}.jsonl"
        started = time.monotonic()
        planted = make_catalogue(catalogue, uploads, frames, copies=copies, seed=seed + 1)
        catalogue_s = time.monotonic() - started
        sweep = Sweep.open(fb, catalogue, [bank], partition_size=partition_size)
        summary = sweep.run(scheduler=scheduler, workers=workers, progress=progress)
        found = false = 0
        for finding in sweep.findings():
            if finding["verdict"] != Verdict.MATCH.value:
                continue
            best = finding["matches"][0]["item"]
            if planted.get(finding["id"]) == best:
                found += 1
            elif finding["id"] not in planted:
                false += 1
        return SyntheticSweep(
            summary,
            uploads,
            len(planted),
            found,
            false,
            catalogue_s,
            catalogue.stat().st_size,
        )
    finally:
        fb.close()
