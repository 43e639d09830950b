"""Hamming index over 256-bit codes, built from the store, saved and reloaded."""

from firebreak.index.hamming import HammingIndex, IndexHit, brute_force_radius_search, hex_codes
from firebreak.index.persisted import StoreIndex

__all__ = ["HammingIndex", "IndexHit", "StoreIndex", "brute_force_radius_search", "hex_codes"]
