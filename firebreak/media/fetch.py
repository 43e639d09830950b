"""Media fetched from a URL under limits: http(s) only, a size cap, a time cap, and no loopback,
link-local or private addresses unless allowed, so that whoever hands Firebreak a URL (an API
client, a queued upload event) cannot turn it against the network it runs in."""

from __future__ import annotations

import ipaddress
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from firebreak.errors import MediaRejected

_CHUNK = 1 << 20
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class MediaTooLarge(MediaRejected):
    """Over the size limit (the API answers 413 rather than 422)."""


def safe_name(name: str | None, default: str = "upload") -> str:
    """A file name that is safe as a path part and keeps the original's extension."""
    base = _SAFE.sub("_", (name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")
    return base[:200] or default


def copy_limited(
    source: BinaryIO, dest: Path, limit: int, what: str, deadline: float | None = None
) -> int:
    """Stream `source` into `dest`, refusing more than `limit` bytes, nothing at all, or (with a
    monotonic `deadline`) a transfer still going on after it. The bytes written."""
    written = 0
    with dest.open("wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise MediaTooLarge(what, f"larger than the limit of {limit} bytes")
            if deadline is not None and time.monotonic() > deadline:
                raise MediaRejected(what, "took longer than the time limit")
            out.write(chunk)
    if written == 0:
        raise MediaRejected(what, "empty")
    return written


def check_public(url: str) -> urllib.parse.ParseResult:
    """The parsed URL when it is http(s) and every address its host resolves to is public."""
    parsed = _http(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise MediaRejected(url, f"cannot resolve {host}") from None
    if any(not ipaddress.ip_address(info[4][0]).is_global for info in infos):
        raise MediaRejected(url, f"{host} is not a public address; not fetched")
    return parsed


def _http(url: str) -> urllib.parse.ParseResult:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise MediaRejected(url, "only http:// and https:// URLs are fetched")
    return parsed


def fetch_media(
    url: str,
    folder: Path,
    *,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool = False,
    dest: Path | None = None,
) -> Path:
    """`url` fetched into `folder` (or to `dest`) under the limits; MediaRejected (MediaTooLarge
    for the size) when it cannot be."""
    parsed = _http(url) if allow_private else check_public(url)
    path = dest or folder / safe_name(parsed.path, "fetched")
    request = urllib.request.Request(url, headers={"User-Agent": "firebreak"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            copy_limited(response, path, max_bytes, url, time.monotonic() + timeout_s)
    except urllib.error.HTTPError as exc:
        raise MediaRejected(url, f"fetching failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MediaRejected(url, f"fetching failed: {getattr(exc, 'reason', exc)}") from None
    return path
