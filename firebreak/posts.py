"""Posts: scanned for designated organisations, decided by the action rules, held for review.

    post ──► TextScanner (registry aliases ──► context classifier) ──► verdict
         ──► plan_text (action rules, bank "text", label = the organisation) ──► block | hold | allow
                                                                         + webhook
         └─ hold: the post waits in the same review queue as uploads (kind "text")

A post's decisions go to the same audit log as uploads', with the registry version and the
classifier version that made them, so every decision can say which list it used.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from firebreak.actions.rules import Plan, carry_out, plan_text
from firebreak.actions.webhook import tell_platform
from firebreak.errors import FirebreakError
from firebreak.service import Firebreak
from firebreak.store.reviews import Review
from firebreak.text.context import ContextClassifier, TextEmbedder
from firebreak.text.scan import StanceThresholds, TextScanner

_classifiers: dict[tuple[str, float], ContextClassifier] = {}
_classifiers_lock = threading.Lock()
_embedder = TextEmbedder()


def load_classifier(path: Path | None) -> ContextClassifier | None:
    """The trained classifier at `path`, loaded once a process (again when the file changes)."""
    if path is None:
        return None
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError as exc:
        raise FirebreakError(f"{path}: cannot read the text classifier ({exc.strerror})") from None
    with _classifiers_lock:
        if key not in _classifiers:
            _classifiers[key] = ContextClassifier.load(path, _embedder)
        return _classifiers[key]


_scanners: dict[tuple[object, ...], TextScanner] = {}


def scanner_for(fb: Firebreak, classify_all: bool = False) -> TextScanner:
    """The scanner of the registry's current version, built once a version (an automaton over
    ten thousand aliases takes a moment) and the configured classifier."""
    settings = fb.settings
    classifier = load_classifier(settings.resolved_text_head)
    thresholds = StanceThresholds(settings.text_match_support, settings.text_review_support)
    key = (
        id(fb.store),
        settings.resolved_database_url,
        fb.store.orgs.current_version(),
        id(classifier),
        thresholds,
        classify_all,
    )
    with _classifiers_lock:
        scanner = _scanners.get(key)
    if scanner is None:
        scanner = TextScanner.from_store(fb.store, classifier, thresholds, classify_all)
        with _classifiers_lock:
            if len(_scanners) > 8:
                _scanners.clear()
            _scanners[key] = scanner
    return scanner


@dataclass(frozen=True)
class PostOutcome:
    verdict: dict[str, object]
    plan: Plan
    actions: dict[str, str] = field(default_factory=dict)
    review: Review | None = None

    def to_json(self) -> dict[str, object]:
        return self.verdict | {
            "decision": self.plan.decision,
            "reason": self.plan.reason,
            "actions": self.actions,
            "review_id": self.review.id if self.review else None,
        }


class PostDesk:
    """Scans posts and acts on them as the rules say."""

    def __init__(self, fb: Firebreak, scanner: TextScanner | None = None) -> None:
        self.fb = fb
        self.scanner = scanner or scanner_for(fb)

    def scan(self, posts: Sequence[tuple[object, str]], actor: str) -> list[PostOutcome]:
        verdicts = self.scanner.scan_many(posts)
        return [
            self._act(verdict, text, actor)
            for verdict, (_, text) in zip(verdicts, posts, strict=True)
        ]

    def _act(self, verdict: dict[str, object], text: str, actor: str) -> PostOutcome:
        orgs = verdict["orgs"]
        assert isinstance(orgs, list)
        org = str(orgs[0]["org"]) if orgs else ""
        chosen = plan_text(str(verdict["verdict"]), org, self.fb.settings.action_rules)
        if chosen.decision == "allow" and not orgs:
            return PostOutcome(verdict, chosen)
        subject = f"post:{verdict['id']}".replace("\x00", "")[:500]
        evidence = _evidence(verdict)
        review: Review | None = None

        def do(action: str) -> None:
            nonlocal review
            if action == "hold":
                review = self.fb.store.reviews.hold(
                    subject,
                    None,
                    None,
                    str(verdict["verdict"]),
                    [evidence],
                    actor,
                    kind="text",
                    text=text.replace("\x00", ""),
                )
            elif action == "webhook":
                self._tell(subject, verdict, chosen)

        done = carry_out(chosen.actions, do)
        self.fb.store.audit.append(
            actor,
            f"text.{chosen.decision}",
            subject,
            chosen.reason,
            evidence | {"actions": done, "review_id": review.id if review else None},
        )
        return PostOutcome(verdict, chosen, done, review)

    def _tell(self, subject: str, verdict: dict[str, object], chosen: Plan) -> None:
        secret = self.fb.settings.webhook_secret
        tell_platform(
            self.fb.settings.scan_webhook_url,
            secret.get_secret_value() if secret else None,
            f"{subject}:{chosen.decision}:{chosen.rule}",
            {
                "subject": subject,
                "decision": chosen.decision,
                "reason": chosen.reason,
                **_evidence(verdict),
            },
        )


def _evidence(verdict: dict[str, object]) -> dict[str, object]:
    """What a reviewer and the audit log need of a verdict (the text itself stays in the review
    item, not in the audit log or a webhook)."""
    keys = ("orgs", "label", "score", "verdict", "list_version", "head_version")
    return {k: verdict[k] for k in keys if k in verdict} | {"bank": "text"}
