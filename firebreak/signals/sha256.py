"""SHA-256 of the file's bytes: the collision-resistant exact match."""

from firebreak.signals.base import ExactFileSignal


class Sha256Signal(ExactFileSignal):
    name = "sha256"
    exchange_name = "video_sha256"
    hex_length = 64
