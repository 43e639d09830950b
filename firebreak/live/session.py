"""One watched stream: its frames hashed and looked up as they arrive, known content alerted on.

A session samples the stream's pictures, hashes every view of them (whole, mirrored, content box,
panels) and its thumbnails, and looks each up in the index once, as it arrives. Every `live_step_s`
of stream time it aligns the hits of the last `live_window_s` and the soundtrack of the last
`live_audio_window_s` against the banks, exactly as a file's query is matched, and raises one alert
per banked item the first time the item scores a match. A stream that drops is reopened with
back-off; a stream that fails for good, or a matcher that throws, ends this session only.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import numpy as np
import numpy.typing as npt

from firebreak.classify.base import Scorer
from firebreak.errors import FirebreakError, StreamFailed
from firebreak.live.risk import RiskWatch, ScorerFault, evidence_of
from firebreak.match import FrameEvidence, ItemMatch, Judgement
from firebreak.media.decode import AUDIO_SAMPLE_RATE
from firebreak.media.stream import (
    StreamColour,
    StreamPicture,
    StreamSound,
    is_network_source,
    read_stream,
)
from firebreak.settings import Settings
from firebreak.signals.audio import AudioPeaks, soundtrack_peaks
from firebreak.signals.views import (
    ContentBox,
    ThumbView,
    ViewHash,
    detect_content_box,
    detect_layout_regions,
    named_regions,
    query_thumb_views,
    query_view_hashes,
)

logger = logging.getLogger(__name__)
_TS_PACKET = 188

EventKind = Literal["alert", "state"]
StreamState = Literal["connecting", "live", "reconnecting", "ended", "failed"]
AlertAction = Callable[["LiveEvent"], None]
"""Something done on an alert (a webhook, a cut); raises a FirebreakError when it fails."""


class Matcher(Protocol):
    """What a session needs of the banks: index lookups of views, and matching of evidence."""

    def lookup_frames(
        self, views: Sequence[ViewHash], thumbs: Sequence[ThumbView]
    ) -> FrameEvidence: ...

    def match_evidence(
        self,
        evidence: FrameEvidence,
        audio: AudioPeaks | None,
        duration_s: float,
        is_video: bool = True,
    ) -> list[ItemMatch]: ...

    def judge(self, matches: Iterable[ItemMatch]) -> Judgement: ...


@dataclass(frozen=True)
class LiveEvent:
    """Something a session saw: an alert on banked content, or a change of the stream's state."""

    event: EventKind
    stream: str
    stream_time: float
    wall_time: float
    source: str = "match"
    bank: str | None = None
    item: str | None = None
    score: float | None = None
    state: StreamState | None = None
    detail: str | None = None
    level: str = "alert"
    """An alert's level: "alert" (acted on) or "review" (for people to look at)."""
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    """What each alert action did: "done", or "failed: <reason>"."""

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {
            "event": self.event,
            "stream": self.stream,
            "stream_time": round(self.stream_time, 3),
            "wall_time": round(self.wall_time, 3),
        }
        if self.event == "alert":
            record |= {
                "source": self.source,
                "level": self.level,
                "bank": self.bank,
                "item": self.item,
                "score": None if self.score is None else round(self.score, 4),
                "signals": self.signals,
                "actions": self.actions,
            }
        else:
            record |= {"state": self.state, "detail": self.detail}
        return record


class LockedMatcher:
    """A matcher shared by sessions on several threads, used by one at a time."""

    def __init__(self, matcher: Matcher, lock: threading.RLock | None = None) -> None:
        self._matcher = matcher
        self._lock = lock or threading.RLock()

    def lookup_frames(
        self, views: Sequence[ViewHash], thumbs: Sequence[ThumbView]
    ) -> FrameEvidence:
        with self._lock:
            return self._matcher.lookup_frames(views, thumbs)

    def match_evidence(
        self,
        evidence: FrameEvidence,
        audio: AudioPeaks | None,
        duration_s: float,
        is_video: bool = True,
    ) -> list[ItemMatch]:
        with self._lock:
            return self._matcher.match_evidence(evidence, audio, duration_s, is_video)

    def judge(self, matches: Iterable[ItemMatch]) -> Judgement:
        with self._lock:
            return self._matcher.judge(matches)


class LiveSession:
    """Watches one stream until it ends, `stop` is set, or it fails for good."""

    def __init__(
        self,
        source: str,
        matcher: Matcher,
        settings: Settings,
        emit: Callable[[LiveEvent], None],
        *,
        realtime: bool = True,
        actions: Mapping[str, AlertAction] | None = None,
        record_to: Path | None = None,
        scorers: Sequence[Scorer] = (),
    ) -> None:
        self.source = source
        self._matcher = matcher
        self._settings = settings
        self._emit = emit
        self._realtime = realtime
        self._actions = dict(actions or {})
        self.recording = record_to
        self._alerted: set[int] = set()
        self._own_items: set[tuple[str, str]] = set()
        self._time_base = 0.0  # stream time at which the current connection started
        self._now = 0.0
        self._next_step = settings.live_step_s
        self._recent: deque[tuple[float, npt.NDArray[np.uint8]]] = deque()
        self._pending: list[tuple[float, npt.NDArray[np.uint8]]] = []
        self._evidence = FrameEvidence()
        self._sound: deque[tuple[float, npt.NDArray[np.float32]]] = deque()
        self._risk = RiskWatch(scorers, settings)
        self._panels: list[ContentBox] = []
        self._next_layout = 0.0
        self.alerts: list[LiveEvent] = []
        self.state: StreamState = "connecting"
        self._last_picture: npt.NDArray[np.uint8] | None = None
        self._last_colour: npt.NDArray[np.uint8] | None = None

    def run(self, stop: threading.Event | None = None) -> None:
        """Read, hash and match until the stream ends; reconnects after a drop, with back-off."""
        stop = stop or threading.Event()
        attempts = 0
        while not stop.is_set():
            self._set_state("connecting" if attempts == 0 else "reconnecting")
            received = False
            try:
                for part in read_stream(
                    self.source,
                    self._settings,
                    self._settings.live_fps,
                    self._settings.query_decode_size,
                    realtime=self._realtime,
                    record_to=self.recording,
                    colour_fps=self._settings.live_scorer_fps if self._risk else 0.0,
                    colour_size=self._settings.live_scorer_size,
                ):
                    if not received:
                        received = True
                        attempts = 0
                        self._set_state("live")
                    self._take(part)
                    if stop.is_set():
                        break
                detail = "stream ended"
            except StreamFailed as exc:
                detail = exc.reason
            except Exception as exc:  # a fault here ends this session only, never its neighbours
                logger.exception("live session %s failed", self.source)
                self._set_state("failed", f"internal error: {exc!r}")
                return
            self._time_base = self._now
            if stop.is_set() or not is_network_source(self.source):
                self._set_state("ended", detail)
                return
            attempts += 1
            if attempts > self._settings.live_reconnect_attempts:
                self._set_state("ended" if received else "failed", detail)
                return
            stop.wait(self._settings.live_backoff_s * 2 ** (attempts - 1))
        self._set_state("ended", "stopped")

    def set_emit(self, emit: Callable[[LiveEvent], None]) -> None:
        """Report events to `emit` from now on (a caller that needs the session to report)."""
        self._emit = emit

    def add_action(self, name: str, action: AlertAction) -> None:
        """Run `action` on every alert from now on, after the actions given at the start."""
        self._actions[name] = action

    def ignore_item(self, bank: str, name: str) -> None:
        """Never alert on this item: the session's own incident, banked from this stream."""
        self._own_items.add((bank, name))

    def recording_so_far(self, dest: Path) -> Path | None:
        """A copy of the stream recorded so far (whole MPEG-TS packets, so a playable file), for
        banking an incident while the stream goes on; None when nothing is recorded."""
        return None if self.recording is None else copy_recording_so_far(self.recording, dest)

    def latest_picture(self) -> npt.NDArray[np.uint8] | None:
        """The newest frame seen: in colour when scorers asked for colour, else the grey frame
        that was hashed. An alert's frame grab."""
        return self._last_colour if self._last_colour is not None else self._last_picture

    def _take(self, part: StreamPicture | StreamSound | StreamColour) -> None:
        t = self._time_base + part.stream_time
        if isinstance(part, StreamSound):
            self._sound.append((t, part.samples))
            if self._risk:
                self._risk.add_sound(t, part.samples)
            return
        if isinstance(part, StreamColour):
            self._last_colour = part.pixels
            self._risk.add_frame(t, part.pixels)
            return
        self._last_picture = part.pixels
        self._now = max(self._now, t)
        self._pending.append((t, part.pixels))
        self._recent.append((t, part.pixels))
        while self._recent and self._recent[0][0] < t - self._settings.live_layout_s:
            self._recent.popleft()
        if self._now >= self._next_step:
            self._step()
            self._next_step = self._now + self._settings.live_step_s
        if self._risk.due(self._now):
            self._assess_risk()

    def _assess_risk(self) -> None:
        """Run the scorers on the recent window; escalate what crossed a level of the policy."""
        for outcome in self._risk.assess(self._now):
            if isinstance(outcome, ScorerFault):
                detail = f"scorer {outcome.scorer} failed: {outcome.error}"
                self._emit(
                    LiveEvent(
                        "state",
                        self.source,
                        self._now,
                        time.time(),
                        state=self.state,
                        detail=detail,
                    )
                )
                continue
            event = LiveEvent(
                "alert",
                self.source,
                self._now,
                time.time(),
                outcome.scorer,
                score=outcome.smoothed,
                level=outcome.level,
                signals={outcome.scorer: dict(evidence_of(outcome))},
            )
            self._raise(event)

    def _step(self) -> None:
        """Look up the frames that arrived since the last step, then match the recent window."""
        s = self._settings
        regions = self._regions()
        views = query_view_hashes(self._pending, regions)
        thumbs = query_thumb_views(self._pending, regions, s.query_thumb_fps)
        self._pending = []
        window_start = max(0.0, self._now - s.live_window_s)
        # Hits are kept at stream times and looked up once; each match sees the window's.
        self._evidence = self._evidence.since(window_start) + self._matcher.lookup_frames(
            views, thumbs
        )
        matches = self._matcher.match_evidence(
            self._evidence.between(window_start, float("inf")),
            self._recent_sound(),
            self._now - window_start + 1.0 / s.live_fps,
        )
        # The banks' rules decide what is acted on: their thresholds, allow lists, on or off.
        mine = [m for m in matches if (m.item.bank, m.item.name) not in self._own_items]
        for match in self._matcher.judge(mine).acted_on:
            if match.item.id not in self._alerted:
                self._alerted.add(match.item.id)
                self._alert(match)

    def _regions(self) -> list[tuple[str, ContentBox]]:
        """The regions to hash the new frames in: those found over the last `live_layout_s`, and
        the content box of the last `live_recent_layout_s` when it differs, because a layout that
        just changed (a letterboxed clip cut into the stream) shows there first."""
        pictures = [pixels for _, pixels in self._recent]
        box = detect_content_box(pictures)
        # Panels, insets and screens take longer to find and change rarely: looked for again
        # every `live_layout_every_s`, kept in between.
        if self._now >= self._next_layout:
            self._panels = detect_layout_regions(pictures)
            self._next_layout = self._now + self._settings.live_layout_every_s
        regions = named_regions(box, self._panels)
        since = self._now - self._settings.live_recent_layout_s
        recent = detect_content_box([pixels for t, pixels in self._recent if t >= since])
        if not recent.is_whole_frame and not recent.close_to(box):
            regions.append(("recent_box", recent))
        return regions

    def _recent_sound(self) -> AudioPeaks | None:
        horizon = self._now - self._settings.live_audio_window_s
        while self._sound and self._sound[0][0] < horizon:
            self._sound.popleft()
        if not self._sound:
            return None
        samples = np.concatenate([chunk for _, chunk in self._sound])
        if len(samples) < 2 * AUDIO_SAMPLE_RATE:
            return None
        peaks = soundtrack_peaks(samples, AUDIO_SAMPLE_RATE)
        return peaks if len(peaks) else None

    def _alert(self, match: ItemMatch) -> None:
        event = LiveEvent(
            "alert",
            self.source,
            self._now,
            time.time(),
            "match",
            match.item.bank,
            match.item.name,
            match.score,
            signals=match.signals,
        )
        self._raise(event)

    def _raise(self, event: LiveEvent) -> None:
        # Act first (cutting a stream is the point), then report what was done. The policy
        # names the actions of each level, in order; those not configured are skipped.
        named = self._settings.live_policy.get(event.level, [])
        done: dict[str, str] = {}
        for name in named:
            action = self._actions.get(name)
            if action is None:
                continue
            try:
                action(event)
                done[name] = "done"
            except FirebreakError as exc:  # a failed action must not end the watch
                done[name] = f"failed: {exc}"
        event = replace(event, actions=done)
        self.alerts.append(event)
        self._emit(event)

    def _set_state(self, state: StreamState, detail: str | None = None) -> None:
        self.state = state
        self._emit(
            LiveEvent("state", self.source, self._now, time.time(), state=state, detail=detail)
        )


class _Prefix:
    """The first `size` bytes of a file that may still be growing."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._file.read(n)
        self._left -= len(data)
        return data


def copy_recording_so_far(recording: Path, dest: Path) -> Path | None:
    """Copy the whole MPEG-TS packets of a recording that may still be growing (another process
    may be writing it) to `dest`: a playable file. None when nothing is recorded yet."""
    if not recording.exists():
        return None
    size = recording.stat().st_size // _TS_PACKET * _TS_PACKET
    if size == 0:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with recording.open("rb") as source, dest.open("wb") as copy:
        shutil.copyfileobj(_Prefix(source, size), copy)
    return dest


def incident_name(source: str, when: float | None = None) -> str:
    """A name for what a stream shows: its last path part and the UTC time watching began."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rsplit("/", 1)[-1]) or "stream"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if when is None else when))
    return f"{stem}-{stamp}"
