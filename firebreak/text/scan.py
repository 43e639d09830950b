"""Posts scanned against the organisation registry: which designated organisations each names,
where, and under which registry version.

    registry (current version) ──► AliasMatcher (names, aliases, slogans; every evasion
                                    normalised) ──► one verdict a post
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from firebreak.errors import FirebreakError
from firebreak.store import Store
from firebreak.text.matcher import AliasMatcher

MAX_POST_CHARS = 100_000


class PostInvalid(FirebreakError):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class TextScanner:
    """The registry's aliases, loaded once, and the version they came from."""

    matcher: AliasMatcher
    version: int

    @classmethod
    def from_store(cls, store: Store) -> TextScanner:
        version = store.orgs.current_version()
        entries = [
            (org.entry.name, text)
            for org in store.orgs.list()
            for text in (org.entry.name, *(a.text for a in org.entry.aliases))
        ]
        return cls(AliasMatcher(entries), version)

    def scan(self, post_id: object, text: str) -> dict[str, object]:
        """The verdict on one post: the contract of `firebreak text scan`. `label` is null until
        a context classifier is trained; `score` is 1 when an organisation is named."""
        hits = self.matcher.scan(text[:MAX_POST_CHARS])
        return {
            "id": post_id,
            "orgs": [{"org": h.org, "alias": h.alias, "span": list(h.span)} for h in hits],
            "label": None,
            "score": 1.0 if hits else 0.0,
            "list_version": self.version,
        }


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
