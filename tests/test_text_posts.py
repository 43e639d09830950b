"""Posts through verdicts, action rules, the review queue and the audit log (CLI and API).

The classifier here is a real ContextHead over a stand-in embedder that puts each post on one
axis by a marker word, so verdict thresholds are exercised exactly; the real embedder is tested
in test_text_context.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from firebreak.actions.rules import plan_text
from firebreak.errors import DecisionRefused
from firebreak.exchange.orgs import OrgFormat, parse_orgs
from firebreak.posts import PostDesk
from firebreak.reviews import ReviewDesk
from firebreak.service import Firebreak
from firebreak.settings import ActionRule, Settings
from firebreak.text.context import LABELS, ContextClassifier, ContextHead, TextEmbedder, Vectors
from firebreak.text.scan import StanceThresholds, TextScanner

from .test_api import Api
from .test_ui import _client_login

REGISTRY = (
    "name,aliases,category,source,designated_on\n"
    "Islamic State,ISIS|Daesh|داعش,terrorist organisation,UN,2014-05-30\n"
    "Example Front,EF|Victory or nothing,violent extremist,platform policy,\n"
)

# Marker words → the direction the stand-in embedder gives a post, and how strongly.
MARKERS = {"glory": ("support", 6.0), "maybe": ("support", 1.8), "reported": ("news", 6.0)}
MARKERS |= {"shame": ("counter", 6.0)}


class MarkerEmbedder(TextEmbedder):
    def embed(self, texts: Sequence[str], batch: int = 32) -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, LABELS.index("other")] = 1.0
            for word, (label, strength) in MARKERS.items():
                if word in text.lower():
                    out[row, LABELS.index(label)] = strength
        return out


def marker_classifier() -> ContextClassifier:
    weights = np.zeros((len(LABELS), TextEmbedder.dimension))
    weights[np.arange(len(LABELS)), np.arange(len(LABELS))] = 1.0
    head = ContextHead(
        LABELS,
        tuple(tuple(float(v) for v in row) for row in weights),
        (0.0,) * len(LABELS),
        version="marker",
    )
    return ContextClassifier(head, MarkerEmbedder())


def register(fb: Firebreak, csv_text: str = REGISTRY) -> int:
    """Import a registry CSV; its version."""
    data = csv_text.encode()
    fb.store.orgs.import_entries(
        parse_orgs(data, OrgFormat.CSV, "list.csv"),
        actor="tester",
        file_name="list.csv",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return fb.store.orgs.current_version()


def test_without_a_classifier_a_named_organisation_is_held_for_review(fb: Firebreak) -> None:
    version = register(fb)
    scanner = TextScanner.from_store(fb.store)
    named, plain = scanner.scan_many([(1, "so much about d@e$h today"), (2, "lunch was good")])
    assert named["verdict"] == "review" and named["label"] is None and named["score"] == 1.0
    assert named["orgs"] == [{"org": "Islamic State", "alias": "Daesh", "span": [14, 19]}]
    assert named["list_version"] == version
    assert plain["verdict"] == "no_match" and plain["orgs"] == [] and plain["score"] == 0.0


def test_stance_decides_what_naming_means(fb: Firebreak) -> None:
    register(fb)
    scanner = TextScanner.from_store(fb.store, marker_classifier(), StanceThresholds(0.8, 0.4))
    verdicts = scanner.scan_many(
        [
            ("a", "glory to ISIS"),
            ("b", "ISIS reported an attack, police say"),
            ("c", "shame on Daesh and everyone who cheers them"),
            ("d", "maybe ISIS has a point"),
            ("e", "glory to the fighters"),
        ]
    )
    by_id = {v["id"]: v for v in verdicts}
    assert by_id["a"]["label"] == "support" and by_id["a"]["verdict"] == "match"
    assert float(by_id["a"]["score"]) > 0.8  # type: ignore[arg-type]
    assert by_id["a"]["head_version"] == "marker"
    assert by_id["b"]["label"] == "news" and by_id["b"]["verdict"] == "no_match"
    assert by_id["c"]["label"] == "counter" and by_id["c"]["verdict"] == "no_match"
    # Weak support: a person looks at it.
    assert by_id["d"]["verdict"] == "review", by_id["d"]
    # Naming nothing listed: the classifier is not asked unless told to.
    assert by_id["e"]["label"] is None and by_id["e"]["verdict"] == "no_match"
    everything = TextScanner.from_store(
        fb.store, marker_classifier(), StanceThresholds(0.8, 0.4), classify_all=True
    )
    unnamed = everything.scan("e", "glory to the fighters")
    # Support without a listed name is held for review at most: no registry evidence.
    assert unnamed["label"] == "support" and unnamed["verdict"] == "review"


def test_text_rules_pick_by_organisation() -> None:
    rules = [
        ActionRule(bank="text", label="Example Front", verdict="match", actions=["hold"]),
        ActionRule(bank="*", verdict="match", actions=["block", "webhook"]),
    ]
    held = plan_text("match", "Example Front", rules)
    assert held.decision == "hold" and held.rule == 0
    blocked = plan_text("match", "Islamic State", rules)
    assert blocked.decision == "block" and blocked.actions == ("block", "webhook")
    assert plan_text("review", "Islamic State", rules).decision == "hold"  # the safe default
    assert plan_text("no_match", "Islamic State", rules).decision == "allow"


def test_posts_go_through_rules_review_queue_and_audit(fb: Firebreak) -> None:
    register(fb)
    scanner = TextScanner.from_store(fb.store, marker_classifier(), StanceThresholds(0.8, 0.4))
    desk = PostDesk(fb, scanner)
    outcomes = desk.scan(
        [("p1", "glory to ISIS"), ("p2", "maybe ISIS has a point"), ("p3", "ISIS reported")],
        "svc",
    )
    blocked, held, allowed = outcomes
    assert blocked.plan.decision == "block" and blocked.review is None
    assert held.plan.decision == "hold" and held.review is not None
    assert allowed.plan.decision == "allow"
    review = fb.store.reviews.get(held.review.id)
    assert review.kind == "text" and review.content_text == "maybe ISIS has a point"
    assert review.subject == "post:p2" and review.matches[0]["orgs"][0]["org"] == "Islamic State"

    entries = {e.action: e for e in fb.store.audit.entries()}
    assert {"text.block", "text.hold", "text.allow", "review.hold"} <= set(entries)
    assert entries["text.block"].evidence["list_version"] == 1
    assert entries["text.block"].evidence["head_version"] == "marker"
    # The post's own words stay in the review item, not in the audit log.
    assert all("glory" not in json.dumps(e.evidence) for e in fb.store.audit.entries())

    reviews = ReviewDesk(fb)
    with pytest.raises(DecisionRefused, match="allow-listed"):
        reviews.reject(held.review.id, "mod", allow_bank="allowed")
    decided = reviews.confirm(held.review.id, "mod", note="praise")
    assert decided.status == "confirmed" and decided.banked_bank is None
    assert fb.store.audit.entries()[0].action == "review.confirm"


def test_cli_text_scan_acts_when_asked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry = tmp_path / "list.csv"
    registry.write_text(REGISTRY, encoding="utf-8")
    assert cli("orgs", "import", registry).code == 0
    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        "\n".join(
            json.dumps({"id": i, "text": t}, ensure_ascii=False)
            for i, t in enumerate(["victory or nothing!!", "nice weather", "داعش"])
        ),
        encoding="utf-8",
    )
    result = cli("text", "scan", posts, "--act")
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["verdict"] for v in lines] == ["review", "no_match", "review"]
    assert lines[0]["decision"] == "hold" and lines[0]["review_id"] is not None
    assert lines[1]["decision"] == "allow" and lines[1]["review_id"] is None
    audit = cli("audit")
    assert audit.code == 0 and "text.hold" in audit.stdout


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    api = Api(Settings(home=tmp_path / "home"))
    with api.client:
        register(api.fb)
        yield api


def test_api_scans_posts_and_holds_them(api: Api) -> None:
    body = {"posts": [{"id": "x1", "text": "EF forever"}, {"id": 7, "text": "hello"}]}
    assert api.client.post("/v1/text/scan", json=body).status_code == 401
    answer = api.client.post("/v1/text/scan", json=body, headers=api.auth("service"))
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["verdicts"]
    assert first["id"] == "x1" and first["verdict"] == "review" and first["decision"] == "hold"
    assert first["orgs"][0] == {"org": "Example Front", "alias": "EF", "span": [0, 2]}
    assert second["id"] == 7 and second["decision"] == "allow"
    queue = api.client.get("/v1/reviews", headers=api.auth("moderator")).json()
    assert [(r["kind"], r["text"]) for r in queue] == [("text", "EF forever")]
    # The review console shows the post veiled, with what it names.
    _client_login(api.client, api.keys["moderator"])
    page = api.client.get(f"/ui/review/{first['review_id']}")
    assert page.status_code == 200
    assert 'class="media veiled" id="media-query"' in page.text
    assert '<blockquote class="preview post" lang="">EF forever</blockquote>' in page.text
    assert "<b>Example Front</b> as “EF”" in page.text
    decided = api.client.post(
        f"/v1/reviews/{first['review_id']}/decision",
        json={"decision": "reject", "note": "a fan page of the band EF"},
        headers=api.auth("moderator"),
    )
    assert decided.status_code == 200 and decided.json()["status"] == "rejected"
    too_many = {"posts": [{"text": "x"}] * 1001}
    assert (
        api.client.post("/v1/text/scan", json=too_many, headers=api.auth("service")).status_code
        == 422
    )
    too_long = {"posts": [{"text": "x" * 100_001}]}
    assert (
        api.client.post("/v1/text/scan", json=too_long, headers=api.auth("service")).status_code
        == 422
    )
