"""Media into the API: uploads streamed to disk under a size limit, and URLs fetched with limits.

Nothing is held in memory whole; a file over `api_max_upload_bytes` is refused (413) as soon as
it passes the limit, and its partial copy removed. URLs are fetched over http(s) only, and not
from loopback, link-local or private addresses unless `api_fetch_private` allows it, so the API
cannot be turned against the network it runs in.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import HTTPException, UploadFile

from firebreak.errors import MediaRejected
from firebreak.media.fetch import MediaTooLarge, copy_limited, fetch_media, safe_name
from firebreak.settings import Settings

__all__ = ["fetched_url", "safe_name", "saved_upload"]


def _refused(exc: MediaRejected) -> HTTPException:
    return HTTPException(413 if isinstance(exc, MediaTooLarge) else 422, str(exc))


@contextmanager
def saved_upload(upload: UploadFile, settings: Settings) -> Iterator[Path]:
    """The upload as a file in a private temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=_uploads_dir(settings)))
    try:
        path = folder / safe_name(upload.filename)
        try:
            copy_limited(upload.file, path, settings.api_max_upload_bytes, "the upload")
        except MediaRejected as exc:
            raise _refused(exc) from None
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fetched_url(url: str, settings: Settings) -> Iterator[Path]:
    """The media at `url`, fetched under the size and time limits, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="fetch-", dir=_uploads_dir(settings)))
    try:
        try:
            path = fetch_media(
                url,
                folder,
                max_bytes=settings.api_max_upload_bytes,
                timeout_s=settings.api_fetch_timeout_s,
                allow_private=settings.api_fetch_private,
            )
        except MediaRejected as exc:
            raise _refused(exc) from None
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _uploads_dir(settings: Settings) -> Path:
    folder = settings.home / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
