"""Media into the API: uploads streamed to disk under a size limit, and URLs fetched with limits.

Nothing is held in memory whole; a file over `api_max_upload_bytes` is refused (413) as soon as
it passes the limit, and its partial copy removed. URLs are fetched over http(s) only, and not
from loopback, link-local or private addresses unless `api_fetch_private` allows it, so the API
cannot be turned against the network it runs in.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException, UploadFile

from firebreak.settings import Settings

_CHUNK = 1 << 20
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str | None, default: str = "upload") -> str:
    """A file name that is safe as a path part and keeps the original's extension."""
    base = _SAFE.sub("_", (name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")
    return base[:200] or default


def _copy_limited(source: BinaryIO, dest: Path, limit: int, what: str) -> None:
    written = 0
    with dest.open("wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise HTTPException(413, f"{what} is larger than the limit of {limit} bytes")
            out.write(chunk)
    if written == 0:
        raise HTTPException(422, f"{what} is empty")


@contextmanager
def saved_upload(upload: UploadFile, settings: Settings) -> Iterator[Path]:
    """The upload as a file in a private temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=_uploads_dir(settings)))
    try:
        path = folder / safe_name(upload.filename)
        _copy_limited(upload.file, path, settings.api_max_upload_bytes, "the upload")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fetched_url(url: str, settings: Settings) -> Iterator[Path]:
    """The media at `url`, fetched under the size and time limits, removed afterwards."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise HTTPException(422, "only http:// and https:// URLs are fetched")
    if not settings.api_fetch_private:
        _refuse_internal(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    folder = Path(tempfile.mkdtemp(prefix="fetch-", dir=_uploads_dir(settings)))
    try:
        path = folder / safe_name(parsed.path, "fetched")
        request = urllib.request.Request(url, headers={"User-Agent": "firebreak"})
        try:
            with urllib.request.urlopen(request, timeout=settings.api_fetch_timeout_s) as response:
                _copy_limited(response, path, settings.api_max_upload_bytes, "the fetched file")
        except urllib.error.HTTPError as exc:
            raise HTTPException(422, f"fetching the URL failed: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HTTPException(422, f"fetching the URL failed: {reason}") from None
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _refuse_internal(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise HTTPException(422, f"cannot resolve {host}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise HTTPException(422, f"{host} is not a public address; not fetched")


def _uploads_dir(settings: Settings) -> Path:
    folder = settings.home / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
