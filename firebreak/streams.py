"""Streams watched with their incidents: what `firebreak live watch` runs, and what the service
runs for each stream it is asked to watch, many at a time in one process.

    WatchedStream: a LiveSession whose alerts open (and add to) the stream's incident, with a
                   frame grab; with an incident bank, the rule "confirm at once" banks the
                   recording at the first alert and again, whole, when the stream ends.
    StreamManager: WatchedStreams on threads, started, listed and stopped through the API; a
                   session that fails ends alone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from firebreak.actions.live import live_alert_actions
from firebreak.classify.base import Scorer
from firebreak.errors import FirebreakError
from firebreak.incidents import IncidentDesk
from firebreak.live.session import LiveEvent, LiveSession, LockedMatcher, incident_name
from firebreak.service import Firebreak

_RULE = "rule:incident-bank"


@dataclass(frozen=True)
class WatchOptions:
    realtime: bool = True
    """Play a local file at its own pace (streams always come at theirs)."""
    record: bool = True
    incident_bank: str | None = None
    """Bank the recording here at the first alert (hash-on-confirm by rule)."""
    scorers: Sequence[Scorer] = ()


class WatchedStream:
    """One stream, its session and its incident."""

    def __init__(
        self,
        fb: Firebreak,
        source: str,
        options: WatchOptions,
        emit: Callable[[LiveEvent], None] = lambda event: None,
        lock: threading.RLock | None = None,
    ) -> None:
        if options.incident_bank and not options.record:
            raise FirebreakError("an incident bank needs the stream recorded")
        self.fb = fb
        self.source = source
        self.options = options
        self.name = incident_name(source)
        home = fb.settings.home
        self.recording = home / "recordings" / f"{self.name}.ts" if options.record else None
        self._emit = emit
        self._lock = lock or threading.RLock()
        self._desk = IncidentDesk(fb)
        self.session = LiveSession(
            source,
            LockedMatcher(fb, self._lock),
            fb.settings,
            self._on_event,
            realtime=options.realtime,
            actions=live_alert_actions(fb.settings, incident=self.name),
            record_to=self.recording,
            scorers=options.scorers,
        )
        if options.incident_bank:
            # The stream would match its own recording once that is banked.
            self.session.ignore_item(options.incident_bank, self.name)

    def run(self, stop: threading.Event | None = None) -> None:
        self.session.run(stop)
        bank = self.options.incident_bank
        if bank and any(a.level == "alert" for a in self.session.alerts):
            with self._lock:  # the whole stream, now it has ended
                self._desk.confirm(self.name, bank, _RULE, "the stream ended")

    def _on_event(self, event: LiveEvent) -> None:
        if event.event == "alert":
            with self._lock:
                # Every alert is evidence: the incident opens in the review queue with it.
                self._desk.record_alert(
                    self.name, event, self.recording, self.session.latest_picture()
                )
                bank = self.options.incident_bank
                if bank and event.level == "alert":
                    self._desk.confirm(self.name, bank, _RULE, "alert on a live stream")
        self._emit(event)


@dataclass
class _Running:
    id: str
    watched: WatchedStream
    thread: threading.Thread
    stop: threading.Event
    started_by: str
    started_at: float
    events: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=50))


class StreamManager:
    """The streams one service process watches, each on its own thread."""

    def __init__(self, fb: Firebreak, lock: threading.RLock, max_streams: int) -> None:
        self.fb = fb
        self._lock = lock
        self._max = max_streams
        self._streams: dict[str, _Running] = {}
        self._guard = threading.Lock()

    def start(self, source: str, options: WatchOptions, actor: str) -> dict[str, Any]:
        with self._guard:
            active = [r for r in self._streams.values() if r.thread.is_alive()]
            if len(active) >= self._max:
                raise FirebreakError(f"already watching {self._max} streams, the limit")
            if any(r.watched.source == source for r in active):
                raise FirebreakError(f"already watching {source}")
            stream_id = uuid.uuid4().hex[:12]
            events: deque[dict[str, object]] = deque(maxlen=50)
            watched = WatchedStream(
                self.fb, source, options, lambda e: events.append(e.to_json()), self._lock
            )
            stop = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(watched, stop), name=f"live-{stream_id}", daemon=True
            )
            running = _Running(stream_id, watched, thread, stop, actor, time.time(), events)
            self._streams[stream_id] = running
            thread.start()
        self.fb.store.audit.append(actor, "live.start", f"stream:{source}", "", {"id": stream_id})
        return self._describe(running)

    def list(self) -> list[dict[str, Any]]:
        with self._guard:
            return [self._describe(r) for r in self._streams.values()]

    def get(self, stream_id: str) -> dict[str, Any]:
        return self._describe(self._running(stream_id)) | {
            "events": list(self._running(stream_id).events)
        }

    def stop(self, stream_id: str, actor: str, wait_s: float = 10.0) -> dict[str, Any]:
        running = self._running(stream_id)
        running.stop.set()
        running.thread.join(wait_s)
        self.fb.store.audit.append(
            actor, "live.stop", f"stream:{running.watched.source}", "", {"id": stream_id}
        )
        return self._describe(running)

    def close(self) -> None:
        for running in list(self._streams.values()):
            running.stop.set()
        for running in list(self._streams.values()):
            running.thread.join(10.0)

    def _run(self, watched: WatchedStream, stop: threading.Event) -> None:
        try:
            watched.run(stop)
        except Exception:  # a failed stream ends alone; its state says so
            watched.session.state = "failed"

    def _running(self, stream_id: str) -> _Running:
        with self._guard:
            running = self._streams.get(stream_id)
        if running is None:
            raise StreamNotWatched(stream_id)
        return running

    def _describe(self, running: _Running) -> dict[str, Any]:
        session = running.watched.session
        return {
            "id": running.id,
            "source": running.watched.source,
            "incident": running.watched.name,
            "state": session.state,
            "alerts": len(session.alerts),
            "started_by": running.started_by,
            "started_at": round(running.started_at, 3),
            "running": running.thread.is_alive(),
        }


class StreamNotWatched(FirebreakError):
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no watched stream with id {stream_id}")
        self.stream_id = stream_id
