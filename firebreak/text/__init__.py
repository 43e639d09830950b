"""Lexical matching of designated organisations' names and aliases in text."""

from firebreak.text.matcher import AliasHit, AliasMatcher, bench_matcher
from firebreak.text.normalise import Form, Normalised, normalise

__all__ = ["AliasHit", "AliasMatcher", "Form", "Normalised", "bench_matcher", "normalise"]
