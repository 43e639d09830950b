"""Stateless hasher workers and read-only matcher workers on durable queues, PostgreSQL the
source of truth.

    submit ──► uploads ──► hasher ──► hashed ──► matcher ──► results
                            │ upload_hashes      │ judge, action rules,
                            │ + ledger row       │ review item, audit entry + ledger row
                            ▼ (one transaction)  ▼ (one transaction)
                                     PostgreSQL

Every stage works in the same order: look the event up in the ledger (`processed_events`); if it
is there, publish again what was published for it (the crash may have come between the commit
and the publish) and acknowledge; else do the work, commit its effects with the ledger row in
one transaction, publish, acknowledge. A worker killed at any point loses nothing (the event
stays pending and is claimed by another worker after the visibility timeout) and nothing is done
twice (the ledger row commits with the effects). What leaves the system is published at least
once and carries the event id, so consumers drop repeats; a `webhook` action carries an
idempotency key made from the event id, for the same reason.

Hashers keep no state: a file is hashed by the existing query hashing (`hash_query_file`), and
the same bytes uploaded again with the same settings reuse the stored signals instead of being
decoded again. The signals stay in PostgreSQL (`upload_signals`, once a file); the hashed event
carries their key (SHA-256, settings fingerprint), not the signals, which are ~100 kB of JSON
for a 2 s clip. Matchers change nothing in the banks (save a rule's `bank:NAME`, which banks a
file once however often it is asked): each loads the index snapshot under `home/index` and
catches up from the store's change log, before every match and every `refresh_s` while idle, so
a hash banked anywhere is matched by every matcher from the next event on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import faiss
import numpy as np
from sqlalchemy.orm import Session

from firebreak.actions.rules import Plan, carry_out, plan
from firebreak.actions.webhook import tell_platform
from firebreak.errors import BankExists, DecisionRefused, MediaRejected
from firebreak.media import MediaInfo, MediaKind
from firebreak.media.fetch import fetch_media
from firebreak.scale.peers import peers_from_settings
from firebreak.service import Firebreak, MatchResult, match_json
from firebreak.settings import Settings
from firebreak.signals import FileDigests, FrameHash, QuerySignals, file_digests, hash_query_file
from firebreak.signals.audio import AudioPeaks
from firebreak.signals.views import ContentBox, ThumbView, ViewHash
from firebreak.store.incidents import write_audit
from firebreak.store.reviews import hold_in
from firebreak.store.scale import NewUploadHashes, UploadLedger

from .queue import HASHED, RESULTS, UPLOADS, WORKERS, Delivery, EventQueue, open_queue

log = logging.getLogger(__name__)

WorkerKind = Literal["hasher", "matcher"]
SIGNALS_FORMAT = 1
"""Version of the serialised query signals; stored signals of another version are not reused."""
_PARAM_FIELDS = ("query_fps", "query_decode_size", "query_window_s", "query_thumb_fps")
_QUERY_CACHE = 32


class Stop(Protocol):
    """What tells a worker to stop: a threading or multiprocessing Event."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker reaches its queue and paces itself (settings fields once wired)."""

    queue_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "firebreak"
    """Stream keys are `{prefix}:uploads` etc.: one prefix per deployment (or test)."""
    visibility_timeout_s: float = 30.0
    """An event pending this long with a consumer is handed to another."""
    max_deliveries: int = 5
    """Deliveries after which an event goes to the dead-letter stream."""
    batch: int = 16
    block_s: float = 0.5
    refresh_s: float = 0.5
    """How often an idle matcher catches its index up with the store."""
    media_root: Path | None = None
    """When set, upload paths must lie under it (workers read no other files)."""
    trim_every_s: float = 60.0
    """How often a worker drops the events its stream's groups have all acknowledged."""
    threads: int = 1
    """faiss threads in this process: workers scale out by processes, and OpenMP threads
    spinning beside other workers on the same cores made matching 5× slower (measured)."""
    chaos_kill_after: int | None = None
    """For failure drills: SIGKILL this worker right after its Nth commit, before it publishes
    and acknowledges (the window in which a naive worker would act twice)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        """The configuration the settings give (`FIREBREAK_QUEUE_URL`, `FIREBREAK_QUEUE_PREFIX`,
        `FIREBREAK_QUEUE_VISIBILITY_TIMEOUT_S`, `FIREBREAK_QUEUE_MAX_DELIVERIES`,
        `FIREBREAK_WORKER_BATCH`, `FIREBREAK_MATCHER_REFRESH_S`, `FIREBREAK_WORKER_MEDIA_ROOT`)."""
        return cls(
            queue_url=settings.queue_url,
            prefix=settings.queue_prefix,
            visibility_timeout_s=settings.queue_visibility_timeout_s,
            max_deliveries=settings.queue_max_deliveries,
            batch=settings.worker_batch,
            refresh_s=settings.matcher_refresh_s,
            media_root=settings.worker_media_root,
        )


@dataclass
class WorkerStats:
    name: str
    kind: str
    processed: int = 0
    """Events this worker committed effects for."""
    repeated: int = 0
    """Redelivered events found in the ledger: published again, not acted on again."""
    failed: int = 0
    """Handling attempts that raised (left pending, so redelivered)."""
    dead: int = 0
    ready_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# Query signals on the wire and in the store


def hash_params(settings: Settings) -> str:
    """A fingerprint of the settings query signals depend on: signals made under other settings
    are never reused for a new upload."""
    values = {name: getattr(settings, name) for name in _PARAM_FIELDS}
    values["format"] = SIGNALS_FORMAT
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:32]


def encode_query(query: QuerySignals) -> dict[str, Any]:
    """Query signals as JSON, columns of compact values: exact (float32 kept bit for bit), so
    a matcher matches exactly what the hasher saw."""
    info = query.info
    box = query.content_box
    views = query.views
    thumbs = query.thumb_views
    encoded: dict[str, Any] = {
        "format": SIGNALS_FORMAT,
        "info": {
            "kind": info.kind.value,
            "size_bytes": info.size_bytes,
            "width": info.width,
            "height": info.height,
            "duration_s": info.duration_s,
            "codec": info.codec,
            "has_audio": info.has_audio,
        },
        "md5": query.digests.md5,
        "sha256": query.digests.sha256,
        "duration_s": query.duration_s,
        "box": [box.top, box.bottom, box.left, box.right],
        "views": {
            "view": [v.view for v in views],
            "code": b"".join(v.frame.code for v in views).hex(),
            "quality": [v.frame.quality for v in views],
            "t": [v.frame.timestamp for v in views],
        },
        "thumbs": {
            "view": [t.view for t in thumbs],
            "t": [t.timestamp for t in thumbs],
            "vectors": _b64(np.stack([t.vector for t in thumbs]) if thumbs else None),
        },
        "audio": None,
    }
    if query.audio is not None:
        encoded["audio"] = {
            "times": _b64(query.audio.times),
            "freqs": _b64(query.audio.freqs),
            "duration_s": query.audio.duration_s,
        }
    return encoded


def decode_query(data: Mapping[str, Any], path: str) -> QuerySignals:
    """Query signals from `encode_query`'s JSON; `path` names the upload they are of."""
    if data.get("format") != SIGNALS_FORMAT:
        raise ValueError(f"query signals of format {data.get('format')!r}, not {SIGNALS_FORMAT}")
    info = data["info"]
    views = data["views"]
    codes = bytes.fromhex(views["code"])
    frames = [
        ViewHash(view, FrameHash(codes[32 * i : 32 * (i + 1)], int(quality), float(t)))
        for i, (view, quality, t) in enumerate(
            zip(views["view"], views["quality"], views["t"], strict=True)
        )
    ]
    thumbs = data["thumbs"]
    vectors = _unb64(thumbs["vectors"]).reshape(len(thumbs["view"]), -1)
    thumb_views = [
        ThumbView(view, float(t), vectors[i])
        for i, (view, t) in enumerate(zip(thumbs["view"], thumbs["t"], strict=True))
    ]
    audio = data.get("audio")
    top, bottom, left, right = data["box"]
    return QuerySignals(
        MediaInfo(
            Path(path),
            MediaKind(info["kind"]),
            int(info["size_bytes"]),
            int(info["width"]),
            int(info["height"]),
            float(info["duration_s"]),
            str(info["codec"]),
            bool(info["has_audio"]),
        ),
        FileDigests(str(data["md5"]), str(data["sha256"])),
        tuple(frames),
        ContentBox(top, bottom, left, right),
        float(data["duration_s"]),
        tuple(thumb_views),
        None
        if audio is None
        else AudioPeaks(_unb64(audio["times"]), _unb64(audio["freqs"]), float(audio["duration_s"])),
    )


def _b64(array: Any) -> str:
    if array is None:
        return ""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _unb64(text: str) -> Any:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def match_query(fb: Firebreak, query: QuerySignals, file: str) -> MatchResult:
    """`Firebreak.match_file` after the hashing."""
    return fb.match_query(query, file)


# The stages


class _Stage:
    kind: WorkerKind
    consumes: str
    group: str

    def __init__(self, fb: Firebreak, queue: EventQueue, config: WorkerConfig, name: str) -> None:
        self.fb = fb
        self.queue = queue
        self.config = config
        self.name = name
        self.ledger = UploadLedger(fb.store.engine)
        self.stats = WorkerStats(name, self.kind)
        self._commits = 0

    def handle(self, event: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def idle(self) -> None:
        """Called when no event came within the block time."""

    def _committed(self) -> None:
        self._commits += 1
        self.stats.processed += 1
        kill_after = self.config.chaos_kill_after
        if kill_after is not None and self._commits >= kill_after:
            log.warning("%s: chaos drill, killed after commit %d", self.name, self._commits)
            os.kill(os.getpid(), signal.SIGKILL)


class Hasher(_Stage):
    """uploads ──► hashed: `{"event_id", "path" or "url", "metadata"}` ──► the query signals."""

    kind: WorkerKind = "hasher"
    consumes = UPLOADS
    group = "hashers"

    def handle(self, event: Mapping[str, Any]) -> None:
        event_id = _event_id(event)
        done = self.ledger.processed("hash", event_id)
        if done is not None:
            self.stats.repeated += 1
            self._publish(event_id, done.outcome)
            return
        try:
            with _media_of(event, self.fb, self.config) as (media, source):
                hashes = self._hashes(media, source, event)
                outcome = {"status": "hashed", "media": str(media)}
                entry, created = self.ledger.record_hashes(event_id, self.name, hashes, outcome)
        except MediaRejected as exc:
            rejected = {"status": "rejected", "stage": "hash", "reason": exc.reason}
            entry, created = self.ledger.record("hash", event_id, self.name, rejected)
        if created:
            self._committed()
        else:
            self.stats.repeated += 1
        self._publish(event_id, entry.outcome)

    def _hashes(self, media: Path, source: str, event: Mapping[str, Any]) -> NewUploadHashes:
        params = hash_params(self.fb.settings)
        sha256 = file_digests(media).sha256
        signals = None
        if not self.ledger.has_signals(sha256, params):
            signals = encode_query(hash_query_file(media, self.fb.settings))
        metadata = event.get("metadata")
        return NewUploadHashes(
            sha256, params, source, metadata if isinstance(metadata, dict) else {}, signals
        )

    def _publish(self, event_id: str, outcome: Mapping[str, Any]) -> None:
        if outcome.get("status") != "hashed":
            self.queue.publish(RESULTS, {"event_id": event_id, **outcome})
            return
        stored = self.ledger.upload_hashes(event_id)
        if stored is None:  # the ledger and the hashes commit together: cannot happen
            raise RuntimeError(f"event {event_id}: hashed but its hashes are missing")
        self.queue.publish(
            HASHED,
            {
                "event_id": event_id,
                "sha256": stored.sha256,
                "params": stored.params,
                "source": stored.source,
                "media": outcome.get("media", stored.source),
                "metadata": dict(stored.metadata),
            },
        )


class Matcher(_Stage):
    """hashed ──► results: matched against the index, judged, the action rules run, audited."""

    kind: WorkerKind = "matcher"
    consumes = HASHED
    group = "matchers"

    def __init__(self, fb: Firebreak, queue: EventQueue, config: WorkerConfig, name: str) -> None:
        super().__init__(fb, queue, config, name)
        self._refreshed_at = 0.0
        self._queries: OrderedDict[tuple[str, str], QuerySignals] = OrderedDict()
        self.refresh()

    def refresh(self) -> int:
        """Catch the indices up with the store (snapshot plus change log); the version."""
        indexes = self.fb.indexes
        _ = self.fb.audio_index  # the property catches it up
        self._refreshed_at = time.monotonic()
        return indexes["frames"].version

    def idle(self) -> None:
        if time.monotonic() - self._refreshed_at >= self.config.refresh_s:
            self.refresh()

    def handle(self, event: Mapping[str, Any]) -> None:
        event_id = _event_id(event)
        done = self.ledger.processed("match", event_id)
        if done is not None:
            self.stats.repeated += 1
            self.queue.publish(RESULTS, done.outcome)
            return
        source = str(event.get("source", ""))
        media = str(event.get("media") or source)
        sha256 = str(event.get("sha256", ""))
        query = self._query(event_id, sha256, str(event.get("params", "")), media)
        result = match_query(self.fb, query, source)
        self._refreshed_at = time.monotonic()  # matching caught the index up
        labels = {name: rule.label for name, rule in self.fb.store.bank_rules().items()}
        chosen = plan(result.judgement, self.fb.settings.action_rules, labels)
        actions = self._outside_actions(event_id, chosen, result, media, sha256)
        outcome: dict[str, Any] = {
            "event_id": event_id,
            "status": "done",
            **result.to_json(),
            "decision": chosen.decision,
            "reason": chosen.reason,
            "actions": actions,
            "sha256": sha256,
            "metadata": event.get("metadata") or {},
            "review_id": None,
        }
        outcome.pop("elapsed_s", None)
        held = "hold" in chosen.actions
        kept = self._kept_media(media, sha256) if held else None
        if held and kept is None:
            actions["hold"] = "failed: the upload's media is no longer readable"

        def effects(session: Session) -> Mapping[str, Any]:
            review_id = None
            if held and kept is not None:
                review_id = hold_in(
                    session,
                    source,
                    str(kept),
                    sha256,
                    result.verdict.value,
                    [match_json(m) for m in result.matches],
                    self.fb.settings.actor,
                ).id
                actions["hold"] = "done"
            if chosen.decision != "allow" or result.matches:
                _audit_scan(session, self.fb.settings.actor, event_id, chosen, result, outcome)
            return {"review_id": review_id, "actions": actions}

        entry, created = self.ledger.record("match", event_id, self.name, outcome, effects)
        if created:
            self._committed()
        else:
            self.stats.repeated += 1
        self.queue.publish(RESULTS, entry.outcome)

    def _query(self, event_id: str, sha256: str, params: str, media: str) -> QuerySignals:
        """The file's query signals from the store, decoded once per file while it is among
        the recent ones (a crisis uploads the same file over and over)."""
        key = (sha256, params)
        query = self._queries.get(key)
        if query is not None:
            self._queries.move_to_end(key)
            return query
        stored = self.ledger.signals(sha256, params)
        if stored is None:
            raise RuntimeError(f"event {event_id}: no stored signals for file {sha256}")
        try:
            query = decode_query(stored, media)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"event {event_id}: unreadable signals ({exc})") from exc
        self._queries[key] = query
        if len(self._queries) > _QUERY_CACHE:
            self._queries.popitem(last=False)
        return query

    def _outside_actions(
        self, event_id: str, chosen: Plan, result: MatchResult, media: str, sha256: str
    ) -> dict[str, str]:
        """The actions outside the database, each safe to repeat: `bank:NAME` banks a file once
        (by SHA-256) however often it is asked; a webhook carries an idempotency key."""

        def do(action: str) -> None:
            if action == "webhook":
                self._tell(event_id, chosen, result, sha256)
            elif action.startswith("bank:"):
                self._bank(action[5:], media, result.file)

        # `hold` is done in the ledger's transaction.
        return carry_out((a for a in chosen.actions if a != "hold"), do)

    def _bank(self, bank: str, media: str, name: str) -> None:
        path = Path(media)
        if not path.is_file():
            raise DecisionRefused(f"bank:{bank}", "the upload's media is no longer readable")
        for _ in range(2):
            try:
                self.fb.bank_file(bank, path, Path(name).name or None, create=True)
                return
            except BankExists:
                continue  # another matcher made the bank just now: bank into it

    def _tell(self, event_id: str, chosen: Plan, result: MatchResult, sha256: str) -> None:
        settings = self.fb.settings
        secret = settings.webhook_secret
        tell_platform(
            settings.scan_webhook_url,
            secret.get_secret_value() if secret else None,
            f"{event_id}:{chosen.decision}:{chosen.rule}",
            {
                "event_id": event_id,
                "subject": result.file,
                "sha256": sha256,
                "decision": chosen.decision,
                "reason": chosen.reason,
                "verdict": result.verdict.value,
                "matches": [match_json(m) for m in result.matches[:5]],
            },
        )

    def _kept_media(self, media: str, sha256: str) -> Path | None:
        path = Path(media)
        if not path.is_file():
            return None
        return self.fb.keep_media(path, sha256 or None)


def _audit_scan(
    session: Session,
    actor: str,
    event_id: str,
    chosen: Plan,
    result: MatchResult,
    outcome: Mapping[str, Any],
) -> None:
    write_audit(
        session,
        actor,
        f"scan.{chosen.decision}",
        f"upload:{event_id}",
        chosen.reason,
        {
            "event_id": event_id,
            "file": result.file,
            "sha256": outcome.get("sha256"),
            "matches": [match_json(m) for m in result.matches[:5]],
            "actions": outcome.get("actions"),
        },
    )


def _event_id(event: Mapping[str, Any]) -> str:
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        raise ValueError(f"an event without a usable event_id: {str(event)[:200]}")
    return event_id


class _media_of:
    """The upload's file: its path (under `media_root` when one is set), or its URL fetched
    under the API's limits and kept under `home/media` (reviewers and matchers need it)."""

    def __init__(self, event: Mapping[str, Any], fb: Firebreak, config: WorkerConfig) -> None:
        self.event = event
        self.fb = fb
        self.config = config
        self._folder: Path | None = None

    def __enter__(self) -> tuple[Path, str]:
        path, url = self.event.get("path"), self.event.get("url")
        if isinstance(path, str) and path:
            return _checked_path(Path(path), self.config.media_root), path
        if isinstance(url, str) and url:
            settings = self.fb.settings
            self._folder = Path(tempfile.mkdtemp(prefix="fetch-", dir=_uploads_dir(settings)))
            fetched = fetch_media(
                url,
                self._folder,
                max_bytes=settings.api_max_upload_bytes,
                timeout_s=settings.api_fetch_timeout_s,
                allow_private=settings.api_fetch_private,
            )
            return self.fb.keep_media(fetched), url
        raise MediaRejected("event", "an upload event names neither a path nor a url")

    def __exit__(self, *_: object) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _checked_path(path: Path, root: Path | None) -> Path:
    resolved = path.resolve()
    if root is not None and not resolved.is_relative_to(root.resolve()):
        raise MediaRejected(path, f"not under the media root {root}")
    if not resolved.is_file():
        raise MediaRejected(path, "no such file")
    return resolved


def _uploads_dir(settings: Settings) -> Path:
    folder = settings.home / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Running workers


def worker_name(kind: str) -> str:
    """A consumer name unique to this process: host and pid."""
    return f"{kind}-{socket.gethostname()}-{os.getpid()}"


def run_worker(
    kind: WorkerKind,
    settings: Settings,
    stop: Stop,
    config: WorkerConfig | None = None,
    name: str | None = None,
) -> WorkerStats:
    """Run one hasher or matcher until `stop` is set (`firebreak worker hasher|matcher`).

    An event whose handling raises stays pending and is redelivered after the visibility
    timeout (to this worker or another); after `max_deliveries` it goes to the dead-letter
    stream. A queue or database that drops out is waited for, not fatal."""
    config = config or WorkerConfig()
    name = name or worker_name(kind)
    started = time.monotonic()
    faiss.omp_set_num_threads(config.threads)
    queue = open_queue(config.queue_url, config.prefix, config.visibility_timeout_s)
    fb = Firebreak(settings, peers_from_settings(settings))
    stage: _Stage = (Hasher if kind == "hasher" else Matcher)(fb, queue, config, name)
    stats = stage.stats
    try:
        queue.ensure_group(stage.consumes, stage.group)
        stats.ready_s = time.monotonic() - started
        queue.publish(
            WORKERS,
            {"worker": name, "kind": kind, "ready_s": round(stats.ready_s, 3), "pid": os.getpid()},
        )
        log.info("%s ready in %.2f s", name, stats.ready_s)
        backoff = 0.5
        trimmed_at = time.monotonic()
        while not stop.is_set():
            try:
                if time.monotonic() - trimmed_at >= config.trim_every_s:
                    queue.trim(stage.consumes)
                    trimmed_at = time.monotonic()
                deliveries = queue.consume(
                    stage.consumes, stage.group, name, config.batch, config.block_s
                )
                if not deliveries:
                    stage.idle()
                for delivery in deliveries:
                    if stop.is_set():
                        break  # left pending: another worker takes it after the timeout
                    _deliver(stage, queue, delivery, config)
                backoff = 0.5
            except Exception:  # the queue or the database is away: wait, then go on
                stats.failed += 1
                log.exception("%s: queue or store unavailable; retrying in %.1f s", name, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        _announce_stopped(queue, stats)
    finally:
        fb.close()
        queue.close()
    return stats


def _announce_stopped(queue: EventQueue, stats: WorkerStats) -> None:
    """Tell the workers stream what this worker did (best effort: it is stopping anyway)."""
    try:
        queue.publish(
            WORKERS,
            {
                "worker": stats.name,
                "kind": stats.kind,
                "stopped": True,
                "processed": stats.processed,
                "repeated": stats.repeated,
                "failed": stats.failed,
                "dead": stats.dead,
            },
        )
    except Exception:  # the queue may be what went away
        log.warning("%s: could not announce that it stopped", stats.name)


def _deliver(stage: _Stage, queue: EventQueue, delivery: Delivery, config: WorkerConfig) -> None:
    if delivery.attempts > config.max_deliveries:
        reason = f"delivered {delivery.attempts} times without being processed"
        log.error("%s: event %s to the dead letters: %s", stage.name, delivery.message_id, reason)
        queue.dead_letter(delivery, reason)
        stage.stats.dead += 1
        return
    try:
        stage.handle(delivery.event)
    except ValueError as exc:  # a malformed event never gets better: straight to the dead
        queue.dead_letter(delivery, str(exc))
        stage.stats.dead += 1
        return
    except Exception:
        stage.stats.failed += 1
        log.exception(
            "%s: event %s failed; it will be redelivered", stage.name, delivery.message_id
        )
        return
    queue.ack(delivery)


def submit_upload(
    queue: EventQueue,
    paths: Iterable[Path],
    metadata: Mapping[str, Any] | None = None,
    event_ids: Sequence[str] | None = None,
) -> list[str]:
    """Put upload events for files on the queue (`firebreak worker submit FILE...`): each an
    absolute path and a new event id (or the caller's, to make a resubmission a repeat)."""
    ids = []
    for n, path in enumerate(paths):
        event_id = event_ids[n] if event_ids is not None else uuid.uuid4().hex
        queue.publish(
            UPLOADS,
            {"event_id": event_id, "path": str(path.resolve()), "metadata": dict(metadata or {})},
        )
        ids.append(event_id)
    return ids


def submit_url(queue: EventQueue, url: str, metadata: Mapping[str, Any] | None = None) -> str:
    """Put an upload event for media at a URL on the queue."""
    event_id = uuid.uuid4().hex
    queue.publish(UPLOADS, {"event_id": event_id, "url": url, "metadata": dict(metadata or {})})
    return event_id


__all__ = [
    "Hasher",
    "Matcher",
    "WorkerConfig",
    "WorkerStats",
    "decode_query",
    "encode_query",
    "hash_params",
    "match_query",
    "run_worker",
    "submit_upload",
    "submit_url",
    "worker_name",
]
