"""Live incidents: the review queue, decisions and their audit trail, hash-on-confirm, and the
signed evidence package, on real recordings."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from firebreak.errors import DecisionRefused, IncidentNotFound
from firebreak.exchange.evidence import verify_evidence_package
from firebreak.incidents import IncidentDesk
from firebreak.live.session import LiveEvent
from firebreak.match import Verdict
from firebreak.service import Firebreak
from firebreak.store import IncidentAlert

from .conftest import ffmpeg


def _alert(t: float, score: float, level: str = "alert", source: str = "match") -> IncidentAlert:
    return IncidentAlert(t, time.time(), source, level, "attacks", "clip.mp4", score)


def test_alerts_of_a_stream_gather_in_one_incident(fb: Firebreak) -> None:
    incidents = fb.store.incidents

    incidents.record_alert("s1", "rtmp://x/live/s1", None, _alert(12.0, 0.4, "review"), "live")
    incident = incidents.record_alert(
        "s1", "rtmp://x/live/s1", None, _alert(15.5, 0.9, "alert"), "live"
    )

    assert incident.status == "open" and incident.level == "alert"
    assert incident.max_score == pytest.approx(0.9)
    assert (incident.first_stream_time, incident.last_stream_time) == (12.0, 15.5)
    assert [a.stream_time for a in incident.alerts] == [12.0, 15.5]
    assert [e.action for e in fb.store.audit.entries("incident:s1")] == ["incident.open"]


def test_review_queue_puts_alerts_first_then_higher_risk(fb: Firebreak) -> None:
    incidents = fb.store.incidents
    incidents.record_alert("low", "u1", None, _alert(1.0, 0.55, "review", "model:x"), "live")
    incidents.record_alert("high", "u2", None, _alert(1.0, 0.75, "review", "model:x"), "live")
    incidents.record_alert("matched", "u3", None, _alert(1.0, 0.6, "alert"), "live")
    incidents.record_alert("done", "u4", None, _alert(1.0, 0.99, "alert"), "live")
    incidents.decide("done", "rejected", "moderator-1", "a film trailer")

    assert [i.name for i in incidents.queue()] == ["matched", "high", "low"]


def test_decisions_follow_the_lifecycle_and_are_audited(fb: Firebreak) -> None:
    incidents = fb.store.incidents
    incidents.record_alert("s1", "u", None, _alert(3.0, 0.7, "review"), "live")

    incidents.decide("s1", "escalated", "moderator-1", "unsure: weapons visible")
    rejected = incidents.decide("s1", "rejected", "lead-1", "paintball match")

    assert rejected.status == "rejected" and rejected.decided_by == "lead-1"
    with pytest.raises(DecisionRefused):
        incidents.decide("s1", "confirmed", "moderator-2")
    with pytest.raises(IncidentNotFound):
        incidents.decide("nobody", "rejected", "moderator-2")
    entries = fb.store.audit.entries("incident:s1")
    assert [(e.action, e.actor) for e in entries] == [
        ("incident.reject", "lead-1"),
        ("incident.escalate", "moderator-1"),
        ("incident.open", "live"),
    ]
    assert entries[0].reason == "paintball match"


def test_the_audit_log_cannot_be_rewritten(fb: Firebreak) -> None:
    fb.store.audit.append("moderator-1", "bank.add", "bank:attacks", "confirmed upload")

    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"), fb.store.engine.begin() as db:
            db.execute(text(statement))

    assert [e.actor for e in fb.store.audit.entries()] == ["moderator-1"]


@pytest.fixture
def recording(clips: dict[str, Path], tmp_path: Path) -> Path:
    """A stream's recording as the live watcher writes it: MPEG-TS."""
    path = tmp_path / "recordings" / "stream-1.ts"
    path.parent.mkdir(parents=True)
    ffmpeg("-i", clips["cockatoo.mp4"], "-c", "copy", "-f", "mpegts", path)
    return path


def _event(t: float, score: float, level: str = "alert") -> LiveEvent:
    return LiveEvent(
        "alert",
        "rtmp://127.0.0.1/live/s",
        t,
        time.time(),
        "model:weapons",
        score=score,
        level=level,
    )


def test_confirming_banks_the_recording_so_every_later_copy_is_blocked(
    fb: Firebreak, recording: Path, tmp_path: Path
) -> None:
    desk = IncidentDesk(fb)
    frame = np.full((90, 160, 3), 128, dtype=np.uint8)
    desk.record_alert("stream-1", _event(6.0, 0.86), recording, frame)

    incident = desk.confirm("stream-1", "incidents", "moderator-1", "shooting confirmed")
    upload = tmp_path / "upload.mp4"
    ffmpeg("-i", recording, "-vf", "hflip,crop=iw*0.9:ih*0.9,scale=480:-2", "-crf", "30", upload)
    result = fb.match_file(upload)

    assert incident.status == "confirmed"
    assert (incident.banked_bank, incident.banked_item) == ("incidents", "stream-1")
    assert result.verdict is Verdict.MATCH
    assert (result.matches[0].item.bank, result.matches[0].item.name) == ("incidents", "stream-1")
    assert (fb.settings.home / "incidents" / "stream-1" / incident.alerts[0].frame).is_file()  # type: ignore[operator]


def test_confirming_without_a_recording_is_refused_and_changes_nothing(fb: Firebreak) -> None:
    desk = IncidentDesk(fb)
    desk.record_alert("stream-2", _event(2.0, 0.9), None)

    with pytest.raises(DecisionRefused, match="nothing of the stream was recorded"):
        desk.confirm("stream-2", "incidents", "moderator-1")

    assert desk.get("stream-2").status == "open"
    assert "incidents" not in {b.name for b in fb.list_banks()}


def test_evidence_package_is_signed_and_detects_tampering(
    fb: Firebreak, recording: Path, tmp_path: Path
) -> None:
    desk = IncidentDesk(fb)
    desk.record_alert("stream-1", _event(6.0, 0.86), recording, np.zeros((72, 128), np.uint8))
    desk.confirm("stream-1", "incidents", "moderator-1")
    package = tmp_path / "evidence.zip"

    summary = desk.export("stream-1", package, "moderator-1")
    report = verify_evidence_package(package, summary.signer_fingerprint)

    assert report.ok, report.problems
    manifest = report.manifest
    record = manifest["record"]
    assert isinstance(record, dict)
    assert record["status"] == "confirmed" and record["alerts"][0]["score"] == 0.86
    assert {h["type"] for h in record["hashes"]} >= {"video_md5", "video_sha256", "vpdq"}
    names = {f["path"] for f in manifest["files"]}  # type: ignore[union-attr]
    assert "recording.ts" in names and any(n.startswith("frames/") for n in names)
    assert fb.store.audit.entries("incident:stream-1")[0].action == "incident.export"

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(tampered, "w") as copy:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "recording.ts":
                data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
            copy.writestr(info, data)
    bad = verify_evidence_package(tampered)
    assert not bad.ok and any("recording.ts" in p for p in bad.problems)


def test_incident_commands_review_confirm_export_and_verify(cli, recording: Path) -> None:  # type: ignore[no-untyped-def]
    opened = cli(
        "incident", "report", "stream-1", "--stream", "rtmp://x/live/s", "--recording", recording
    )
    assert opened.code == 0, opened.stderr

    queue = [json.loads(line) for line in cli("incident", "list", "--json").stdout.splitlines()]
    confirmed = cli("incident", "confirm", "stream-1", "--by", "moderator-1")
    package = cli.home / "out" / "stream-1.zip"
    exported = cli("incident", "export", "stream-1", "--out", package)
    verified = cli("incident", "verify", package)
    wrong_key = cli("incident", "verify", package, "--fingerprint", "00" * 32)
    audit = [json.loads(line) for line in cli("audit").stdout.splitlines()]
    about = [a["action"] for a in audit if a["subject"] == "incident:stream-1"]

    assert [(i["name"], i["source"], i["status"]) for i in queue] == [
        ("stream-1", "report", "open")
    ]
    assert confirmed.code == 0 and "incidents/stream-1" in confirmed.stdout
    assert exported.code == 0, exported.stderr
    assert verified.code == 0 and "valid" in verified.stdout
    assert wrong_key.code == 1 and wrong_key.stderr.strip()
    assert about == ["incident.export", "incident.confirm", "incident.open"]
    # Banking the recording is audited too, by the same reviewer.
    assert ("bank.add", "moderator-1") in {(a["action"], a["actor"]) for a in audit}
    assert cli("incident", "list", "--json").stdout.strip() == ""  # decided: out of the queue
