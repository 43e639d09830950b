"""Live incidents: recorded as streams alert, decided by reviewers or rules, banked on confirm,
and exported as signed evidence packages.

    alert ──► record_alert (incident opened: review queue; frame grab saved)
                 │
                 ├── confirm ──► recording so far hashed and banked (hash-on-confirm): every
                 │               later upload or re-stream of it is blocked
                 ├── reject / escalate
                 └── export ──► zip: record, recording, frames, file hashes, Ed25519 signature

An incident's files live under `home/incidents/<name>/`. Every decision goes to the audit log.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from firebreak.errors import DecisionRefused
from firebreak.exchange.evidence import (
    EvidenceFile,
    PackageSummary,
    load_or_create_signing_key,
    write_evidence_package,
)
from firebreak.live.session import LiveEvent, copy_recording_so_far
from firebreak.service import Firebreak
from firebreak.signals.registry import signal_type
from firebreak.store import Incident, IncidentAlert

_SHARED_SIGNALS = ("md5", "sha256", "pdq", "video")
"""The banked signals an evidence package carries: those other platforms' tools read."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class IncidentDesk:
    """The incidents of one Firebreak: its store keeps them, its banks take confirmed ones."""

    def __init__(self, fb: Firebreak) -> None:
        self.fb = fb
        self.root = fb.settings.home / "incidents"

    def folder(self, name: str) -> Path:
        if not _SAFE_NAME.match(name) or name.startswith("."):
            raise DecisionRefused(name, "not a valid incident name")
        return self.root / name

    def record_alert(
        self,
        name: str,
        event: LiveEvent,
        recording: Path | None,
        picture: npt.NDArray[np.uint8] | None = None,
        actor: str | None = None,
    ) -> Incident:
        """Open or extend the incident `name` with a live alert and a grab of its frame."""
        frame = None
        if picture is not None:
            frame = f"frames/{event.stream_time:010.3f}.jpg"
            path = self.folder(name) / frame
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture).save(path, quality=90)
        alert = IncidentAlert(
            event.stream_time,
            event.wall_time,
            event.source,
            event.level,
            event.bank,
            event.item,
            event.score,
            event.signals,
            event.actions,
            frame,
        )
        return self.fb.store.incidents.record_alert(
            name,
            event.stream,
            str(recording) if recording else None,
            alert,
            actor or self.fb.settings.actor,
        )

    def report(
        self, name: str, stream: str, recording: Path | None, actor: str, note: str = ""
    ) -> Incident:
        """Open (or add to) an incident from a person's report rather than an alert: a viewer's
        flag, a moderator who saw it. It goes to the review queue like any alert."""
        event = LiveEvent(
            "alert",
            stream,
            0.0,
            time.time(),
            source="report",
            level="review",
            signals={"report": {"by": actor, "note": note}},
        )
        return self.record_alert(name, event, recording, actor=actor)

    def queue(self, limit: int = 100) -> list[Incident]:
        return self.fb.store.incidents.queue(limit=limit)

    def get(self, name: str) -> Incident:
        return self.fb.store.incidents.get(name)

    def confirm(self, name: str, bank: str, actor: str, note: str = "") -> Incident:
        """Hash-on-confirm: bank the stream's recording so far into `bank` (a block bank, made
        if missing) and mark the incident confirmed. Confirming again re-banks a longer
        recording of a stream that went on."""
        incident = self.get(name)
        if incident.status not in ("open", "escalated", "confirmed"):
            raise DecisionRefused(name, f"cannot confirm an incident that is {incident.status}")
        snapshot = self._snapshot(incident)
        if snapshot is None:
            raise DecisionRefused(name, "nothing of the stream was recorded, so nothing to bank")
        outcome = self.fb.bank_incident(bank, snapshot, name, actor)
        return self.fb.store.incidents.decide(
            name,
            "confirmed",
            actor,
            note,
            banked=(bank, outcome.item.name),
            evidence={"recording_sha256": outcome.item.source_sha256},
        )

    def reject(self, name: str, actor: str, note: str = "") -> Incident:
        return self.fb.store.incidents.decide(name, "rejected", actor, note)

    def escalate(self, name: str, actor: str, note: str = "") -> Incident:
        return self.fb.store.incidents.decide(name, "escalated", actor, note)

    def export(self, name: str, dest: Path, actor: str) -> PackageSummary:
        """Write the incident's signed evidence package: its record (alerts, scores, decision,
        the banked hashes), its recording so far and its frame grabs."""
        incident = self.get(name)
        files: list[EvidenceFile] = []
        snapshot = self._snapshot(incident)
        if snapshot is not None:
            files.append(EvidenceFile("recording.ts", snapshot))
        for alert in incident.alerts:
            if alert.frame and (self.folder(name) / alert.frame).is_file():
                files.append(EvidenceFile(alert.frame, self.folder(name) / alert.frame))
        record = incident.to_json() | {"hashes": self._banked_hashes(incident)}
        record.pop("recording", None)  # a path on this machine; the file itself is packaged
        key_path = self.fb.settings.evidence_key or self.fb.settings.home / "keys" / "evidence.pem"
        key = load_or_create_signing_key(key_path)
        summary = write_evidence_package(dest, record, files, key, actor)
        self.fb.store.audit.append(
            actor,
            "incident.export",
            f"incident:{name}",
            f"evidence package {dest.name}",
            {"files": summary.files, "bytes": summary.bytes, "signer": summary.signer_fingerprint},
        )
        return summary

    def _snapshot(self, incident: Incident) -> Path | None:
        """A playable copy of the recording so far, kept in the incident's folder."""
        if not incident.recording:
            return None
        dest = self.folder(incident.name) / "recording.ts"
        return copy_recording_so_far(Path(incident.recording), dest)

    def _banked_hashes(self, incident: Incident) -> list[dict[str, object]]:
        """The banked recording's signals (digests and vPDQ-compatible frame hashes)."""
        if not incident.banked_bank or not incident.banked_item:
            return []
        items = [
            i for i in self.fb.store.items(incident.banked_bank) if i.name == incident.banked_item
        ]
        if not items:
            return []
        return [
            {
                "type": signal_type(v.signal_type).exchange_name,
                "value": v.value,
                "quality": v.quality,
                "timestamp": v.timestamp,
            }
            for v in self.fb.store.item_signals(items[0].id)
            if v.signal_type in _SHARED_SIGNALS
        ]
