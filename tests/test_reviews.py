"""Action rules and the review queue of uploads, on real media: a scan held by a rule, the webhook
it sends, confirm (banked, so the next copy is blocked) and reject into an allow list."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firebreak.actions.rules import check_rules, plan
from firebreak.api.app import create_app
from firebreak.match import ItemMatch, Judgement, Verdict
from firebreak.reviews import ReviewDesk
from firebreak.service import Firebreak
from firebreak.settings import ActionRule, Settings
from firebreak.store import Item

from .conftest import ffmpeg
from .test_actions import Receiver


def _match(bank: str, score: float, label: str | None = None) -> ItemMatch:
    metadata = {"label": label} if label else {}
    item = Item(1, bank, "x.mp4", "video", 10.0, None, None, None, "t", datetime.now(UTC), metadata)
    return ItemMatch(item, score)


def test_first_fitting_rule_decides_by_bank_label_and_verdict() -> None:
    rules = [
        ActionRule(bank="gifct-*", label="*", verdict="match", actions=["block", "webhook"]),
        ActionRule(bank="*", label="graphic", verdict="match", actions=["hold"]),
        ActionRule(verdict="review", actions=["hold"]),
    ]
    gifct = _match("gifct-hashes", 0.9)
    graphic = _match("local", 0.9, "graphic")
    weak = _match("local", 0.6)

    assert plan(Judgement(Verdict.MATCH, (gifct,), (gifct,), None), rules, {}).actions == (
        "block",
        "webhook",
    )
    held = plan(Judgement(Verdict.MATCH, (graphic,), (graphic,), None), rules, {})
    assert (held.decision, held.rule) == ("hold", 1)
    assert plan(Judgement(Verdict.REVIEW, (weak,), (), None), rules, {}).decision == "hold"
    unlabelled = plan(Judgement(Verdict.MATCH, (weak,), (weak,), None), rules, {})
    assert (unlabelled.decision, unlabelled.rule) == ("block", None)  # no rule: blocked anyway
    allowed = plan(Judgement(Verdict.NO_MATCH, (gifct,), (), gifct), rules, {})
    assert allowed.decision == "allow" and "allow-listed" in allowed.reason
    with pytest.raises(ValueError, match="unknown action"):
        check_rules([ActionRule(actions=["delete-account"])])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver([])
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def copies(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("review-media")
    made = {"clip": clips["cockatoo.mp4"], "copy": folder / "upload-1.mp4"}
    ffmpeg("-i", made["clip"], "-t", "10", "-vf", "hflip,scale=400:-2", "-crf", "32", made["copy"])
    return made


def _held_desk(tmp_path: Path, receiver: Receiver, clip: Path) -> ReviewDesk:
    settings = Settings(
        home=tmp_path / "home",
        action_rules=[ActionRule(bank="*", actions=["hold", "webhook", "bank:seen"])],
        scan_webhook_url=receiver.url,
    )
    fb = Firebreak(settings)
    fb.create_bank("attacks")
    fb.bank_file("attacks", clip)
    return ReviewDesk(fb)


def test_rule_holds_an_upload_tells_the_platform_and_banks_it(
    tmp_path: Path, receiver: Receiver, copies: dict[str, Path]
) -> None:
    desk = _held_desk(tmp_path, receiver, copies["clip"])

    outcome = desk.scan(copies["copy"], "upload-1.mp4", "key:ingest")
    again = desk.scan(copies["copy"], "upload-1.mp4", "key:ingest")
    desk.fb.close()

    assert outcome.plan.decision == "hold"
    assert outcome.actions == {"hold": "done", "webhook": "done", "bank:seen": "done"}
    assert outcome.review is not None and outcome.review.status == "open"
    assert outcome.review.matches[0]["item"] == "cockatoo.mp4"
    first, second = (json.loads(body) for _, body in receiver.requests)
    assert first["decision"] == "hold" and first["sha256"] == outcome.sha256
    assert first["idempotency_key"] == second["idempotency_key"]  # the receiver drops repeats
    assert again.review is not None and again.review.id != outcome.review.id


def test_confirmed_upload_is_banked_and_its_next_copy_blocked(
    tmp_path: Path, receiver: Receiver, copies: dict[str, Path]
) -> None:
    desk = _held_desk(tmp_path, receiver, copies["clip"])
    held = desk.scan(copies["copy"], "upload-1.mp4", "key:ingest").review
    assert held is not None

    confirmed = desk.confirm(held.id, "moderator-1", "confirmed-attacks", "the attack video")
    desk.fb.settings.action_rules[:] = [ActionRule(actions=["block"])]
    rescan = desk.scan(copies["copy"], "upload-2.mp4", "key:ingest")
    desk.fb.close()

    assert confirmed.status == "confirmed"
    assert confirmed.banked_bank == "confirmed-attacks"
    assert rescan.plan.decision == "block"
    assert "confirmed-attacks" in {m.item.bank for m in rescan.result.matches}


def test_rejected_upload_allow_listed_is_not_held_again(
    tmp_path: Path, receiver: Receiver, copies: dict[str, Path]
) -> None:
    desk = _held_desk(tmp_path, receiver, copies["clip"])
    held = desk.scan(copies["copy"], "upload-1.mp4", "key:ingest").review
    assert held is not None

    rejected = desk.reject(held.id, "moderator-1", "news report", allow_bank="news")
    rescan = desk.scan(copies["copy"], "upload-3.mp4", "key:ingest")
    audit = [e.action for e in desk.fb.store.audit.entries(f"review:{held.id}")]
    desk.fb.close()

    assert rejected.status == "rejected" and rejected.banked_bank == "news"
    assert rescan.plan.decision == "allow" and rescan.review is None
    assert rescan.result.allowed is not None and rescan.result.allowed.item.bank == "news"
    assert audit == ["review.reject", "review.hold"]


def test_review_queue_over_http(tmp_path: Path, copies: dict[str, Path]) -> None:
    settings = Settings(
        home=tmp_path / "home", action_rules=[ActionRule(verdict="match", actions=["hold"])]
    )
    app = create_app(settings)
    fb: Firebreak = app.state.fb
    fb.create_bank("attacks")
    fb.bank_file("attacks", copies["clip"])
    service = {"Authorization": f"Bearer {fb.store.keys.create('s', 'service', 't')[1]}"}
    moderator = {"Authorization": f"Bearer {fb.store.keys.create('m', 'moderator', 't')[1]}"}
    upload = {"file": ("upload-1.mp4", copies["copy"].read_bytes())}

    with TestClient(app) as client:
        scanned = client.post("/v1/scan", files=upload, headers=service).json()
        queue = client.get("/v1/reviews", headers=moderator).json()
        media = client.get(f"/v1/reviews/{scanned['review_id']}/media", headers=moderator)
        item = client.get("/v1/banks/attacks/items/cockatoo.mp4/media", headers=moderator)
        forbidden = client.get("/v1/reviews", headers=service)
        decided = client.post(
            f"/v1/reviews/{scanned['review_id']}/decision",
            json={"decision": "escalate", "note": "unsure"},
            headers=moderator,
        )
        missing = client.get("/v1/reviews/9999", headers=moderator)

    assert scanned["decision"] == "hold" and scanned["review_id"]
    assert [r["id"] for r in queue] == [scanned["review_id"]]
    assert media.status_code == 200 and media.content == copies["copy"].read_bytes()
    assert item.status_code == 200 and item.content == copies["clip"].read_bytes()
    assert forbidden.status_code == 403
    assert decided.json()["status"] == "escalated"
    assert missing.status_code == 404
