"""Lexical matching of organisation aliases in posts and on-screen text.

All aliases go into one Aho-Corasick automaton (``pyahocorasick``) over their
normalised forms (see :mod:`firebreak.text.normalise`); Latin aliases also go
into a second, small automaton of consonant skeletons used only against Arabic
script.  A scan normalises the text once per form, maps each raw hit back to
the original text and keeps it only when it passes the boundary rule:

* every alias whose matching form has at most :data:`WORD_BOUNDARY_MAX`
  characters must start and end at word boundaries of the original text
  ("IS" is not found in "this" or "crisis", "ISIS" is not found in "crisis");
* aliases of at most :data:`SHORT_ALIAS_MAX` characters must in addition be one
  written word: no whitespace inside the span ("I.S." matches, "i s" does not);
* aliases of up to :data:`WORD_BOUNDARY_MAX` characters may run across inserted
  punctuation ("is-is", "I.S.I.S") and across spaces only when the spaces split
  them into single letters ("i s i s"): "is is" is two words, not "ISIS"; longer
  aliases may run across any separators ("al shabaab");
* an acronym (an alias of at most :data:`SHORT_ALIAS_MAX` characters written in
  capitals in the registry, such as "IS") matches only where the post writes it
  without small letters: "IS", "I.S.", "1$" or Cyrillic "ІЅ", never the English
  word "is" or a sentence's "Is".

Overlapping hits are resolved longest first; hits are unique per (org, span).
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

from firebreak.text.normalise import (
    Form,
    Normalised,
    form_of,
    is_arabic,
    is_ignorable,
    is_word_char,
    normalise,
    skeleton,
)

__all__ = ["SHORT_ALIAS_MAX", "WORD_BOUNDARY_MAX", "AliasHit", "AliasMatcher", "bench_matcher"]

SHORT_ALIAS_MAX = 3
WORD_BOUNDARY_MAX = 5
_SKELETON_MIN = 3


@dataclass(frozen=True, slots=True)
class AliasHit:
    org: str
    alias: str
    span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class _Alias:
    org: str
    alias: str

    @property
    def acronym(self) -> bool:
        letters = [c for c in self.alias if c.isalpha()]
        return (
            bool(letters)
            and len(self.alias) <= SHORT_ALIAS_MAX + 3
            and all(c.isupper() for c in letters)
        )


# The automaton value for one key: the key's length and every alias with that form.
_Value = tuple[int, list[_Alias]]


def _add(automaton: ahocorasick.Automaton, key: str, alias: _Alias) -> None:
    value: _Value | None = automaton.get(key, None)
    if value is None:
        automaton.add_word(key, (len(key), [alias]))
    elif alias not in value[1]:
        value[1].append(alias)


def _has_arabic(text: str) -> bool:
    return any(is_arabic(c) for c in text if not c.isascii())


def _at_boundary(text: str, start: int, end: int) -> bool:
    before = start - 1
    while before >= 0 and is_ignorable(text[before]):
        before -= 1
    after = end
    while after < len(text) and is_ignorable(text[after]):
        after += 1
    return not (before >= 0 and is_word_char(text[before])) and not (
        after < len(text) and is_word_char(text[after])
    )


def _spaced_words(span: str) -> bool:
    """Whether spaces in `span` separate pieces of more than one letter (words, not a name
    spelled out letter by letter)."""
    pieces = span.split()
    return len(pieces) > 1 and any(sum(is_word_char(c) for c in p) > 1 for p in pieces)


class AliasMatcher:
    """Find aliases of organisations in free text; spans refer to the original text."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self._main = ahocorasick.Automaton()
        self._skeletons = ahocorasick.Automaton()
        self.size = 0
        for org, alias_text in entries:
            alias = _Alias(org, alias_text)
            primary = form_of(alias_text, Form.PRIMARY)
            for key in {primary, form_of(alias_text, Form.TRANSLIT)}:
                if key:
                    _add(self._main, key, alias)
            if primary.isascii() and primary:
                skel = skeleton(primary)
                if len(skel) >= _SKELETON_MIN:
                    _add(self._skeletons, skel, alias)
            self.size += 1
        self._main.make_automaton()
        self._skeletons.make_automaton()

    def _forms(self, text: str) -> list[tuple[Form, str, ahocorasick.Automaton]]:
        primary = form_of(text, Form.PRIMARY)
        forms = [(Form.PRIMARY, primary, self._main)]
        if not text.isascii():
            translit = form_of(text, Form.TRANSLIT)
            if translit != primary:
                forms.append((Form.TRANSLIT, translit, self._main))
            if len(self._skeletons) and _has_arabic(text):
                forms.append((Form.SKELETON, form_of(text, Form.SKELETON), self._skeletons))
        return forms

    def scan(self, text: str) -> list[AliasHit]:
        candidates: list[AliasHit] = []
        for form, folded, automaton in self._forms(text):
            if not folded or automaton.kind != ahocorasick.AHOCORASICK:
                continue
            mapped: Normalised | None = None
            for end, (length, aliases) in automaton.iter(folded):
                if mapped is None:
                    mapped = normalise(text, form)
                start, stop = mapped.source_span(end - length + 1, end + 1)
                if length <= WORD_BOUNDARY_MAX and not _at_boundary(text, start, stop):
                    continue
                if length <= SHORT_ALIAS_MAX and any(c.isspace() for c in text[start:stop]):
                    continue
                if length <= WORD_BOUNDARY_MAX and _spaced_words(text[start:stop]):
                    continue
                lower = length <= SHORT_ALIAS_MAX and any(c.islower() for c in text[start:stop])
                candidates.extend(
                    AliasHit(a.org, a.alias, (start, stop))
                    for a in aliases
                    if not (lower and a.acronym)
                )
        return _resolve(candidates)


def _resolve(candidates: list[AliasHit]) -> list[AliasHit]:
    """Longest span wins on overlap; one hit per (org, span)."""
    candidates.sort(key=lambda h: (h.span[0] - h.span[1], h.span[0]))
    spans: list[tuple[int, int]] = []
    seen: set[tuple[str, tuple[int, int]]] = set()
    kept: list[AliasHit] = []
    for hit in candidates:
        if (hit.org, hit.span) in seen:
            continue
        start, end = hit.span
        if any(s < end and start < e and (s, e) != hit.span for s, e in spans):
            continue
        if hit.span not in spans:
            spans.append(hit.span)
        seen.add((hit.org, hit.span))
        kept.append(hit)
    kept.sort(key=lambda h: (h.span, h.org))
    return kept


def bench_matcher(n_aliases: int = 10_000, n_posts: int = 10_000, seed: int = 0) -> float:
    """Posts scanned per second on this core with ``n_aliases`` aliases loaded.

    Aliases are random 4-20 letter words; posts are ~30 words of random text
    with some mixed-script, zero-width and leetspeak noise and an occasional
    planted alias.  Building the matcher is not timed.
    """
    rng = random.Random(seed)
    letters = string.ascii_lowercase

    def word(lo: int, hi: int) -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))

    aliases = [(f"org{i % 500}", word(4, 20)) for i in range(n_aliases)]
    matcher = AliasMatcher(aliases)
    noise = ["\u200b", "Тhe", "1s", "ИГИЛ", "داعش", "ＦＵＬＬ", "café"]
    posts: list[str] = []
    for _ in range(n_posts):
        words = [word(1, 9) for _ in range(30)]
        if rng.random() < 0.2:
            words[rng.randrange(30)] = rng.choice(noise)
        if rng.random() < 0.05:
            words[rng.randrange(30)] = rng.choice(aliases)[1]
        posts.append(" ".join(words))
    started = time.perf_counter()
    for post in posts:
        matcher.scan(post)
    elapsed = time.perf_counter() - started
    return n_posts / elapsed if elapsed > 0 else float("inf")
