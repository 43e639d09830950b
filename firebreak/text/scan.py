"""Posts scanned against the organisation registry: which designated organisations each names,
where, and under which registry version.

    registry (current version) ──► AliasMatcher (names, aliases, slogans; every evasion
                                    normalised) ──► context classifier (support, news,
                                    counter, other) ──► one verdict a post
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from firebreak.errors import FirebreakError
from firebreak.store import Store
from firebreak.text.context import HARMFUL, ContextClassifier, Stance
from firebreak.text.matcher import AliasMatcher

MAX_POST_CHARS = 100_000


class PostInvalid(FirebreakError):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class TextVerdict(StrEnum):
    MATCH = "match"
    REVIEW = "review"
    NO_MATCH = "no_match"


@dataclass(frozen=True)
class StanceThresholds:
    match: float = 0.8
    """P(support) from which a post naming an organisation is a match."""
    review: float = 0.4
    """P(support) from which it is held for review."""


@dataclass(frozen=True)
class TextScanner:
    """The registry's aliases, loaded once, the version they came from, and the context
    classifier when one is trained.

    A post's verdict: naming no designated organisation, no match (the classifier is not asked
    unless `classify_all`, and then flags support for review at most: without a listed name
    there is no registry evidence). Naming one: with no classifier, review (a person reads it);
    with one, match when it reads as support with P ≥ `thresholds.match`, review from
    `thresholds.review`, otherwise (news, counter-speech, other) no match."""

    matcher: AliasMatcher
    version: int
    classifier: ContextClassifier | None = None
    thresholds: StanceThresholds = StanceThresholds()
    classify_all: bool = False

    @classmethod
    def from_store(
        cls,
        store: Store,
        classifier: ContextClassifier | None = None,
        thresholds: StanceThresholds | None = None,
        classify_all: bool = False,
    ) -> TextScanner:
        version = store.orgs.current_version()
        entries = [
            (org.entry.name, text)
            for org in store.orgs.list()
            for text in (org.entry.name, *(a.text for a in org.entry.aliases))
        ]
        return cls(
            AliasMatcher(entries),
            version,
            classifier,
            thresholds or StanceThresholds(),
            classify_all,
        )

    def scan(self, post_id: object, text: str) -> dict[str, object]:
        """The verdict on one post: the contract of `firebreak text scan`."""
        return self.scan_many([(post_id, text)])[0]

    def scan_many(self, posts: Sequence[tuple[object, str]]) -> list[dict[str, object]]:
        """Verdicts on a batch of posts, in order; the classifier reads the batch at once.

        `label` is null when no classifier is trained or the post was not read by it; `score`
        is P(support) when it was read, else 1 when an organisation is named and 0 when not."""
        texts = [text[:MAX_POST_CHARS] for _, text in posts]
        hits = [self.matcher.scan(text) for text in texts]
        asked = [
            i for i, found in enumerate(hits) if self.classifier and (found or self.classify_all)
        ]
        stances: dict[int, Stance] = {}
        if self.classifier is not None and asked:
            read = self.classifier.classify([texts[i] for i in asked])
            stances = dict(zip(asked, read, strict=True))
        verdicts = []
        for i, (post_id, _) in enumerate(posts):
            stance = stances.get(i)
            verdict = self._verdict(bool(hits[i]), stance)
            record: dict[str, object] = {
                "id": post_id,
                "orgs": [{"org": h.org, "alias": h.alias, "span": list(h.span)} for h in hits[i]],
                "label": stance.label if stance else None,
                "score": round(stance.support, 4) if stance else (1.0 if hits[i] else 0.0),
                "verdict": verdict.value,
                "list_version": self.version,
            }
            if stance and self.classifier:
                record["head_version"] = self.classifier.head.version
            verdicts.append(record)
        return verdicts

    def _verdict(self, named: bool, stance: Stance | None) -> TextVerdict:
        if stance is None:
            return TextVerdict.REVIEW if named else TextVerdict.NO_MATCH
        if named and stance.label == HARMFUL and stance.support >= self.thresholds.match:
            return TextVerdict.MATCH
        if stance.support >= self.thresholds.review and (named or stance.label == HARMFUL):
            return TextVerdict.REVIEW
        return TextVerdict.NO_MATCH


def read_posts(lines: Iterable[str]) -> Iterator[tuple[object, str]]:
    """(id, text) of each `{"id": ..., "text": ...}` line; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            post = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PostInvalid(number, f"not JSON: {exc.msg}") from None
        if not isinstance(post, dict) or not isinstance(post.get("text"), str):
            raise PostInvalid(number, 'expected {"id": ..., "text": "..."}')
        yield post.get("id"), post["text"]
