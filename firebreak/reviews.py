"""Uploads: scanned, decided by the action rules, held for review, decided by people.

    upload ──► match ──► judge (bank rules) ──► plan (action rules) ──► block | hold | allow
                                                        │                    + webhook, bank:NAME
                                                        └─ hold: media kept, review item queued
    review item ──► confirm (bank it into a block list) | reject (optionally allow-list it)
                └─► escalate

Every scan decision and every review decision goes to the audit log, with the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from firebreak.actions.rules import Plan, carry_out, plan
from firebreak.actions.webhook import tell_platform
from firebreak.errors import DecisionRefused
from firebreak.service import Firebreak, MatchResult, match_json
from firebreak.signals import file_digests
from firebreak.store.reviews import Review


@dataclass(frozen=True)
class ScanOutcome:
    result: MatchResult
    plan: Plan
    actions: dict[str, str] = field(default_factory=dict)
    """What each action did: "done", or "failed: <reason>"."""
    review: Review | None = None
    sha256: str = ""

    def to_json(self) -> dict[str, object]:
        return self.result.to_json() | {
            "decision": self.plan.decision,
            "reason": self.plan.reason,
            "actions": self.actions,
            "review_id": self.review.id if self.review else None,
        }


class ReviewDesk:
    """Scans and the review queue of one Firebreak."""

    def __init__(self, fb: Firebreak) -> None:
        self.fb = fb

    def scan(self, path: Path, subject: str, actor: str) -> ScanOutcome:
        """Match `path`, decide by the rules, and act: hold it for review, tell the platform,
        bank it, as the fitting rule says."""
        result = self.fb.match_file(path)
        labels = {name: rule.label for name, rule in self.fb.store.bank_rules().items()}
        chosen = plan(result.judgement, self.fb.settings.action_rules, labels)
        sha256 = file_digests(path).sha256
        review: Review | None = None

        def do(action: str) -> None:
            nonlocal review
            if action == "hold":
                kept = self.fb.keep_media(path, sha256)
                review = self.fb.store.reviews.hold(
                    subject,
                    str(kept),
                    sha256,
                    result.verdict.value,
                    [match_json(m) for m in result.matches],
                    actor,
                )
            elif action == "webhook":
                self._tell(subject, sha256, result, chosen)
            elif action.startswith("bank:"):
                kept = self.fb.keep_media(path, sha256)
                self.fb.bank_file(action[5:], kept, subject, actor=actor, create=True)

        done = carry_out(chosen.actions, do)
        outcome = ScanOutcome(result, chosen, done, review, sha256)
        if chosen.decision != "allow" or result.matches:
            self.fb.store.audit.append(
                actor,
                f"scan.{chosen.decision}",
                f"upload:{subject[:200]}",
                chosen.reason,
                {
                    "sha256": sha256,
                    "matches": [match_json(m) for m in result.matches[:5]],
                    "actions": done,
                    "review_id": review.id if review else None,
                },
            )
        return outcome

    def _tell(self, subject: str, sha256: str, result: MatchResult, chosen: Plan) -> None:
        secret = self.fb.settings.webhook_secret
        tell_platform(
            self.fb.settings.scan_webhook_url,
            secret.get_secret_value() if secret else None,
            f"{sha256}:{chosen.decision}:{chosen.rule}",
            {
                "subject": subject,
                "sha256": sha256,
                "decision": chosen.decision,
                "reason": chosen.reason,
                "verdict": result.verdict.value,
                "matches": [match_json(m) for m in result.matches[:5]],
            },
        )

    def queue(self, limit: int = 100) -> list[Review]:
        return self.fb.store.reviews.queue(limit=limit)

    def confirm(
        self, review_id: int, actor: str, bank: str | None = None, note: str = ""
    ) -> Review:
        """Confirm: the upload is banked into `bank` (the best match's block bank when not
        given), so it and its copies are blocked from now on."""
        review = self.fb.store.reviews.get(review_id)
        if review.status not in ("open", "escalated"):
            raise DecisionRefused(f"review:{review_id}", f"it is already {review.status}")
        if review.kind == "text":
            # A post is judged, not banked: its decision goes to the audit log.
            return self.fb.store.reviews.decide(review_id, "confirmed", actor, note)
        target = bank or _best_block_bank(review)
        outcome = self.fb.bank_file(
            target, self._media(review), review.subject, actor=actor, create=True
        )
        return self.fb.store.reviews.decide(
            review_id, "confirmed", actor, note, (target, outcome.item.name)
        )

    def reject(
        self, review_id: int, actor: str, note: str = "", allow_bank: str | None = None
    ) -> Review:
        """Reject as a false positive; with `allow_bank`, the upload is allow-listed there so
        it (and its copies) are not held again."""
        review = self.fb.store.reviews.get(review_id)
        if review.status not in ("open", "escalated"):
            raise DecisionRefused(f"review:{review_id}", f"it is already {review.status}")
        banked = None
        if allow_bank and review.kind == "text":
            raise DecisionRefused(f"review:{review_id}", "a post cannot be allow-listed in a bank")
        if allow_bank:
            outcome = self.fb.bank_file(
                allow_bank,
                self._media(review),
                review.subject,
                actor=actor,
                create=True,
                kind="allow",
            )
            banked = (allow_bank, outcome.item.name)
        return self.fb.store.reviews.decide(review_id, "rejected", actor, note, banked)

    def escalate(self, review_id: int, actor: str, note: str = "") -> Review:
        return self.fb.store.reviews.decide(review_id, "escalated", actor, note)

    def _media(self, review: Review) -> Path:
        if not review.media or not Path(review.media).is_file():
            raise DecisionRefused(f"review:{review.id}", "its media is no longer kept")
        return Path(review.media)


def _best_block_bank(review: Review) -> str:
    for match in review.matches:
        bank = match.get("bank")
        if isinstance(bank, str):
            return bank
    return "confirmed"
