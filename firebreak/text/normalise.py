"""Text normalisation for alias matching, with a map back to the original text.

Every form is built one original character at a time, so each character of a
matching form comes from exactly one character of the original text; the
``origins`` of a :class:`Normalised` record that index, and
:meth:`Normalised.source_span` turns a span of the form into a span of the
original.

Three forms are produced:

``PRIMARY``
    NFKC compatibility folding, confusables, case folding, NFD with combining marks dropped,
    format characters (zero-width space/joiners, word joiner, BOM, soft hyphen,
    …) dropped, confusable look-alikes mapped to Latin using Unicode's
    confusables table (bundled by ``confusable-homoglyphs``), leetspeak mapped
    (see :data:`LEET`) and every non-alphanumeric character dropped, so
    "I.S.I.S", "i s i s" and "is-is" all become ``isis``.  Letters of other
    scripts (Arabic, non-confusable Cyrillic, …) are kept as they are.
``TRANSLIT``
    Each character is first transliterated to ASCII with ``anyascii`` and then
    put through the primary pipeline, so Cyrillic/Arabic writing of a Latin
    alias (and the reverse) meet in one form.
``SKELETON``
    For Arabic script only: the transliteration with the vowels ``aeiou``
    dropped (Arabic script mostly leaves short vowels unwritten, so "Hamas"
    and "حماس" share the skeleton ``hms``).  Characters of other scripts
    become :data:`BREAK`, so a skeleton never matches Latin text.
"""

from __future__ import annotations

import enum
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from anyascii import anyascii

__all__ = [
    "BREAK",
    "LEET",
    "Form",
    "Normalised",
    "confusable_map",
    "form_of",
    "is_arabic",
    "is_ignorable",
    "is_word_char",
    "normalise",
    "normalise_char",
    "skeleton",
]

#: Leetspeak: one canonical mapping, applied to aliases and text alike.
LEET: dict[str, str] = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "@": "a",
    "$": "s",
}

#: Stands in the skeleton form for characters outside Arabic script; never part of a key.
BREAK = "\x00"

_VOWELS = frozenset("aeiou")
_IGNORABLE_CATEGORIES = frozenset({"Mn", "Me", "Cf"})


class Form(enum.Enum):
    PRIMARY = "primary"
    TRANSLIT = "translit"
    SKELETON = "skeleton"


@cache
def confusable_map() -> dict[str, str]:
    """Non-ASCII characters that Unicode lists as confusable with one ASCII letter.

    Maps each to a lower-case Latin letter, preferring a homoglyph of the same
    case when the table offers several (upper-case Cyrillic I looks like "I",
    not "l").  Read from the data file bundled with
    ``confusable-homoglyphs``; no network access.
    """
    data = (resources.files("confusable_homoglyphs") / "confusables.json").read_text("utf-8")
    table: dict[str, list[dict[str, str]]] = json.loads(data)
    out: dict[str, str] = {}
    for char, glyphs in table.items():
        if len(char) != 1 or char.isascii():
            continue
        letters = [
            g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()
        ]
        if not letters:
            continue
        same_case = [c for c in letters if c.isupper() == char.isupper()]
        letter = (same_case or letters)[0].lower()
        # The table lists "I" itself as a look-alike of "l"; an upper-case
        # vertical stroke (Cyrillic I, Greek Iota) reads as "I" in Latin text.
        if letter == "l" and char.isupper():
            letter = "i"
        out[char] = letter
    return out


def is_ignorable(char: str) -> bool:
    """Zero-width/format characters and combining marks: invisible inside a word."""
    return unicodedata.category(char) in _IGNORABLE_CATEGORIES


def is_word_char(char: str) -> bool:
    """A character that continues a word (letters, digits and the leetspeak symbols)."""
    return char.isalnum() or char in LEET


def is_arabic(char: str) -> bool:
    return unicodedata.name(char, "").startswith("ARABIC")


def _fold(char: str) -> str:
    """The primary pipeline for one character (already ASCII or not)."""
    confusables = confusable_map()
    # Look-alikes are looked up before case folding as well as after it: upper-case
    # Greek Eta looks like H, its lower case (eta) does not look like h.
    compat = unicodedata.normalize("NFKC", char)
    cased = "".join(confusables.get(c) or c.casefold() for c in compat)
    folded = unicodedata.normalize("NFD", cased)
    out: list[str] = []
    for ch in folded:
        if unicodedata.category(ch) in _IGNORABLE_CATEGORIES:
            continue
        ch = confusables.get(ch, ch)
        ch = LEET.get(ch, ch)
        if ch.isalnum():
            out.append(ch)
    return "".join(out)


def _translit(char: str) -> str:
    if char.isascii():
        return _fold(char)
    return "".join(_fold(c) for c in anyascii(char))


def skeleton(folded: str) -> str:
    """Drop the vowels of an already folded ASCII string."""
    return "".join(c for c in folded if c not in _VOWELS)


def _skeleton_char(char: str) -> str:
    if is_arabic(char):
        return skeleton(_translit(char))
    return BREAK if is_word_char(char) else ""


_PIPELINES: dict[Form, Callable[[str], str]] = {
    Form.PRIMARY: _fold,
    Form.TRANSLIT: _translit,
    Form.SKELETON: _skeleton_char,
}


class _CharTable(dict[int, str]):
    """A ``str.translate`` table that fills itself in on first sight of a character."""

    def __init__(self, fn: Callable[[str], str]) -> None:
        super().__init__()
        self._fn = fn

    def __missing__(self, key: int) -> str:
        value = self._fn(chr(key))
        self[key] = value
        return value


_TABLES: dict[Form, _CharTable] = {form: _CharTable(fn) for form, fn in _PIPELINES.items()}


def normalise_char(char: str, form: Form = Form.PRIMARY) -> str:
    """The matching form of one original character (possibly empty or several characters)."""
    return _TABLES[form][ord(char)]


def form_of(text: str, form: Form = Form.PRIMARY) -> str:
    """The matching form of ``text`` alone, without the map back (the fast path)."""
    return text.translate(_TABLES[form])


@dataclass(frozen=True, slots=True)
class Normalised:
    """A matching form and, for each of its characters, the original character it came from."""

    original: str
    form: str
    origins: tuple[int, ...]

    def source_range(self, index: int) -> tuple[int, int]:
        """The index range in the original text of character ``index`` of the form."""
        origin = self.origins[index]
        return origin, origin + 1

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The original span covering form characters ``start:end`` (end exclusive).

        Combining marks that follow the last character are included, so a
        decorated final letter is reported whole.
        """
        if not 0 <= start < end <= len(self.form):
            raise ValueError(f"empty or out-of-range span {start}:{end}")
        first = self.origins[start]
        last = self.origins[end - 1] + 1
        while last < len(self.original) and unicodedata.category(self.original[last]) in {
            "Mn",
            "Me",
        }:
            last += 1
        return first, last


def normalise(text: str, form: Form = Form.PRIMARY) -> Normalised:
    """The matching form of ``text`` together with its map back to ``text``."""
    table = _TABLES[form]
    pieces: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        piece = table[ord(char)]
        if piece:
            pieces.append(piece)
            origins.extend([index] * len(piece))
    return Normalised(original=text, form="".join(pieces), origins=tuple(origins))
