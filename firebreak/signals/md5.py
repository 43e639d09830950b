"""MD5 of the file's bytes: catches byte-identical re-uploads at no decoding cost."""

from firebreak.signals.base import ExactFileSignal


class Md5Signal(ExactFileSignal):
    name = "md5"
    exchange_name = "video_md5"
    hex_length = 32
