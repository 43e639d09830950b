"""From aligned frame hits and exact digests to scored matches and one verdict per file."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from firebreak.match.align import Alignment, Segment
from firebreak.store import BankRule, Item


class Verdict(enum.StrEnum):
    MATCH = "match"
    REVIEW = "review"
    NO_MATCH = "no_match"


@dataclass(frozen=True)
class ItemMatch:
    """One banked item the query matched, how strongly, on which signals, and where."""

    item: Item
    score: float
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    query_segment: Segment | None = None
    item_segment: Segment | None = None


def frame_closeness(distance: int, threshold: int) -> float:
    """1 for identical frames, 0.5 at the threshold, 0 at twice the threshold."""
    return max(0.0, 1.0 - distance / (2.0 * (threshold + 1)))


def score_alignment(
    alignment: Alignment,
    item_frames_in_segment: int,
    frames_for_full_confidence: int,
    threshold: int,
) -> float:
    """Score in [0, 1]: closeness of the aligned frames × the share of the item's frames in the
    aligned segment that were found × whether enough distinct item frames agree to rule out
    coincidence.

    Coverage counts item frames, not query frames: queries are sampled far denser than banks, and
    only the query frames close in time to a banked sample can be expected to hit it."""
    hits = alignment.hits
    closeness = sum(frame_closeness(h.distance, threshold) for h in hits) / len(hits)
    coverage = min(1.0, alignment.matched_item_frames / max(1, item_frames_in_segment))
    evidence = min(1.0, alignment.matched_item_frames / max(1, frames_for_full_confidence))
    return closeness * (0.5 + 0.5 * coverage) * evidence


def decide(matches: list[ItemMatch], match_score: float, review_score: float) -> Verdict:
    best = max((m.score for m in matches), default=0.0)
    if best >= match_score:
        return Verdict.MATCH
    if best >= review_score:
        return Verdict.REVIEW
    return Verdict.NO_MATCH


@dataclass(frozen=True)
class Judgement:
    """A query's matches judged by the rules of their banks.

    `matches` are those worth showing (at or above their bank's review score), best first;
    `acted_on` are the block-list matches at or above their bank's match score; `allowed` is the
    allow-list match that suppresses them, if any."""

    verdict: Verdict
    matches: tuple[ItemMatch, ...]
    acted_on: tuple[ItemMatch, ...]
    allowed: ItemMatch | None


def judge(
    matches: Iterable[ItemMatch],
    rules: Mapping[str, BankRule],
    match_score: float,
    review_score: float,
) -> Judgement:
    """Apply each bank's rules: a disabled bank (or item) matches nothing; a bank's own thresholds stand
    in for the settings'; a match from an allow-list bank suppresses every block-list match
    on the same query (the item is known and allowed: news footage, a counter-speech clip)."""
    shown: list[ItemMatch] = []
    acted: list[ItemMatch] = []
    allowed: ItemMatch | None = None
    for m in matches:
        rule = rules.get(m.item.bank)
        if rule is None or not rule.enabled or not m.item.enabled:
            continue
        bank_match = match_score if rule.match_score is None else rule.match_score
        bank_review = review_score if rule.review_score is None else rule.review_score
        if m.score < min(bank_review, bank_match):
            continue
        shown.append(m)
        if m.score < bank_match:
            continue
        if rule.kind == "allow":
            if allowed is None or m.score > allowed.score:
                allowed = m
        else:
            acted.append(m)
    order = lambda m: (-m.score, m.item.bank, m.item.name)  # noqa: E731
    shown.sort(key=order)
    acted.sort(key=order)
    if allowed is not None:
        return Judgement(Verdict.NO_MATCH, tuple(shown), (), allowed)
    blocks = [m for m in shown if rules[m.item.bank].kind != "allow"]
    verdict = Verdict.MATCH if acted else Verdict.REVIEW if blocks else Verdict.NO_MATCH
    return Judgement(verdict, tuple(shown), tuple(acted), None)


def fuse_picture_and_sound(picture: ItemMatch, sound: ItemMatch) -> ItemMatch:
    """One match from a picture match and a soundtrack match of the same item.

    Independent evidence adds up like two detectors that each may miss: 1 - (1-p)(1-s). The
    picture's segments stand when the picture matched on its own; the sound's otherwise."""
    score = 1.0 - (1.0 - picture.score) * (1.0 - sound.score)
    lead = picture if picture.score >= sound.score else sound
    return ItemMatch(
        picture.item,
        score,
        {**picture.signals, **sound.signals},
        lead.query_segment,
        lead.item_segment,
    )
