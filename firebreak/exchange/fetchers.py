"""Fetchers: hash lists brought in from elsewhere, and only what changed since the last time.

The model is python-threatexchange's `SignalExchangeAPI.fetch_iter`: a fetcher is given where to
look and the checkpoint its previous fetch left, and answers the hashes that are new since then
(`updates`), the ones the source took back (`removals`, for sources that say so) and the checkpoint
to give it next time. An unchanged source answers nothing at all.

Fetchers are found by name in a registry: `file` and `http` are built in; another is one class with
a `name` and a `fetch` method, registered with `register_fetcher(MyFetcher())` or published by a
package under the `firebreak.fetchers` entry point group (an instance, or a class made with no
arguments).

- `file`: a local hash list in any format (from `format`, else its header, else its extension).
  Checkpoint: the file's SHA-256 (with its size and mtime, for people reading it): an unchanged
  file answers nothing, a changed one its whole list.
- `http`: a hash list at an http:// or https:// URL, fetched with urllib: `max_bytes` and
  `timeout_s` bound what it reads and how long it takes, redirects stay on http(s). Checkpoint: the
  ETag and Last-Modified the server sent (given back as If-None-Match and If-Modified-Since, so an
  unchanged list costs one 304) and the body's SHA-256 (for servers that send neither).

A list file or URL is a snapshot, not a change log: when it changes, the fetcher answers every
hash in it and the import skips the items the bank already has. `fetch_into_bank` runs one fetch
into a bank and keeps the checkpoint under `FIREBREAK_HOME/fetch/`, one JSON file per bank and
source.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.client import HTTPException, HTTPMessage
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from firebreak import __version__
from firebreak.errors import BankNotFound, FirebreakError, ItemNotFound
from firebreak.exchange.formats import (
    HashRecord,
    ListFormat,
    guess_format,
    read_list,
    record_item_name,
)
from firebreak.signals.registry import signal_type_for_exchange_name
from firebreak.signals.video import VideoSignal

if TYPE_CHECKING:
    from firebreak.service import Firebreak

ENTRY_POINT_GROUP = "firebreak.fetchers"
DEFAULT_MAX_BYTES = 256 << 20
"""A list bigger than this is refused (a PDQ hash with its row is about 100 bytes)."""
DEFAULT_TIMEOUT_S = 60.0
STATE_DIR = "fetch"
"""Under FIREBREAK_HOME: the checkpoint of each bank and source."""

_CHUNK = 1 << 16
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_HTTP_SCHEMES = frozenset({"http", "https"})

Checkpoint = Mapping[str, Any]
"""What a fetcher needs to know what it already gave: JSON values only (it is kept as JSON)."""


class FetchFailed(FirebreakError):
    """A source that cannot be read, or that sends what breaks a limit: where and why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class UnknownFetcher(FirebreakError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown fetcher: {name} (known: {', '.join(known) or 'none'})")
        self.name = name


@dataclass(frozen=True)
class FetchConfig:
    """One fetch: where from, in which format, and what the previous fetch left."""

    location: str
    """A path, a URL: whatever the fetcher reads."""
    format: ListFormat | None = None
    """The list's format; None: the fetcher works it out (header, then extension)."""
    checkpoint: Checkpoint = field(default_factory=dict)
    """What the previous fetch returned; empty the first time (everything is new)."""
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    options: Mapping[str, str] = field(default_factory=dict)
    """Anything else a fetcher takes (third-party fetchers: a token's variable, a collection)."""


@dataclass(frozen=True)
class FetchResult:
    """What changed at the source since `FetchConfig.checkpoint`."""

    updates: tuple[HashRecord, ...]
    """Hashes to bank (those the bank has already are skipped when imported)."""
    checkpoint: Checkpoint
    """Give this back next time (it is stored only once the updates are in the bank)."""
    removals: tuple[HashRecord, ...] = ()
    """Hashes the source took back: the item each one made is removed from the bank."""
    changed: bool = True
    """False when the source said it has not changed: then there are no updates."""

    @classmethod
    def unchanged(cls, checkpoint: Checkpoint) -> FetchResult:
        return cls((), checkpoint, (), changed=False)


@runtime_checkable
class Fetcher(Protocol):
    """A source of hash lists. `name` is how `firebreak bank fetch --source` names it."""

    name: str

    def fetch(self, config: FetchConfig) -> FetchResult:
        """What is new at `config.location` since `config.checkpoint`; FetchFailed (or
        HashListInvalid for a list that cannot be read) when the source cannot be used."""
        ...


# --- registry -----------------------------------------------------------------------------------

_FETCHERS: dict[str, Fetcher] = {}
_entry_points_loaded = False


def register_fetcher(fetcher: Fetcher, *, replace: bool = False) -> Fetcher:
    """Make `fetcher` available by its name; ValueError when the name is taken (unless `replace`)
    or is not lower-case letters, digits, '_', '.' and '-'."""
    name = fetcher.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"fetcher name must be lower-case letters, digits, _ . -: {name!r}")
    if not replace and _FETCHERS.get(name, fetcher) is not fetcher:
        raise ValueError(f"a fetcher named {name!r} is already registered")
    _FETCHERS[name] = fetcher
    return fetcher


def unregister_fetcher(name: str) -> None:
    _FETCHERS.pop(name, None)


def get_fetcher(name: str) -> Fetcher:
    """The fetcher registered as `name` (packages' entry points included); UnknownFetcher."""
    if name not in _FETCHERS:
        _load_entry_points()
    try:
        return _FETCHERS[name]
    except KeyError:
        raise UnknownFetcher(name, sorted(_FETCHERS)) from None


def fetcher_names() -> list[str]:
    _load_entry_points()
    return sorted(_FETCHERS)


def _load_entry_points() -> None:
    """Register what installed packages publish under ENTRY_POINT_GROUP, once. A plugin that
    fails to load is left out with a warning: it must not stop the others."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
            fetcher = loaded() if isinstance(loaded, type) else loaded
            if not isinstance(fetcher, Fetcher):
                raise TypeError("not a fetcher (it needs a name and a fetch method)")
            if fetcher.name not in _FETCHERS:
                register_fetcher(fetcher)
        except Exception as exc:
            warnings.warn(
                f"fetcher plugin {ep.name} ({ep.value}) left out: {exc}", RuntimeWarning, 2
            )


# --- snapshots: a whole list each time ----------------------------------------------------------


def snapshot_result(
    data: bytes, name: str, config: FetchConfig, extra: Mapping[str, Any] | None = None
) -> FetchResult:
    """A fetch of a source that is a whole list each time: nothing when its bytes (and format)
    are those of the checkpoint, else every record of it. `name` is the file name or URL (its
    extension may tell the format); `extra` goes into the checkpoint."""
    digest = hashlib.sha256(data).hexdigest()
    previous = config.checkpoint
    checkpoint: dict[str, Any] = {"sha256": digest, **(extra or {})}
    same_format = config.format is None or previous.get("format") == config.format.value
    if previous.get("sha256") == digest and same_format:
        return FetchResult.unchanged({**previous, **checkpoint})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FetchFailed(config.location, f"not UTF-8 text (byte {exc.start})") from None
    fmt = config.format or guess_format(name, text)
    checkpoint["format"] = fmt.value
    return FetchResult(tuple(read_list(text, fmt, config.location)), checkpoint)


class FileFetcher:
    """A hash list in a local file (`location` is its path)."""

    name = "file"

    def fetch(self, config: FetchConfig) -> FetchResult:
        path = Path(config.location).expanduser()
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)  # O_NONBLOCK: a FIFO must not hang the open
        except OSError as exc:
            raise FetchFailed(config.location, f"cannot open: {exc.strerror or exc}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise FetchFailed(config.location, "not a regular file")
        with os.fdopen(fd, "rb") as src:
            if st.st_size > config.max_bytes:
                raise FetchFailed(
                    config.location, f"{st.st_size} bytes, more than {config.max_bytes}"
                )
            try:
                data = src.read(config.max_bytes + 1)
            except OSError as exc:
                raise FetchFailed(config.location, f"cannot read: {exc.strerror or exc}") from None
        if len(data) > config.max_bytes:
            raise FetchFailed(config.location, f"more than {config.max_bytes} bytes")
        extra = {"size": len(data), "mtime_ns": st.st_mtime_ns}
        return snapshot_result(data, path.name, config, extra)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, except to anything but http(s) (it would follow one to ftp://)."""

    max_redirections = 5

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in _HTTP_SCHEMES:
            fp.close()
            raise FetchFailed(req.full_url, f"redirected to a URL that is not http(s): {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class HttpFetcher:
    """A hash list at an http:// or https:// URL (`location`)."""

    name = "http"

    def fetch(self, config: FetchConfig) -> FetchResult:
        url = config.location
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.hostname:
            raise FetchFailed(url, "only http:// and https:// URLs can be fetched")
        headers = {
            "User-Agent": f"firebreak/{__version__}",
            "Accept": "text/csv, text/plain;q=0.9, */*;q=0.1",
            "Accept-Encoding": "identity",
        }
        previous = config.checkpoint
        if previous.get("url") == url:  # validators of another URL say nothing about this one
            if isinstance(previous.get("etag"), str):
                headers["If-None-Match"] = previous["etag"]
            if isinstance(previous.get("last_modified"), str):
                headers["If-Modified-Since"] = previous["last_modified"]
        request = urllib.request.Request(url, headers=headers)
        opener = urllib.request.build_opener(_HttpOnlyRedirects())
        deadline = time.monotonic() + config.timeout_s
        try:
            with opener.open(request, timeout=config.timeout_s) as response:
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise FetchFailed(url, f"compressed answer ({encoding}) not supported")
                data = _read_limited(response, url, config, deadline)
                etag = response.headers.get("ETag")
                last_modified = response.headers.get("Last-Modified")
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 304:
                return FetchResult.unchanged(previous)
            raise FetchFailed(url, f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise FetchFailed(url, f"cannot fetch: {exc.reason}") from None
        except (TimeoutError, OSError, HTTPException) as exc:
            raise FetchFailed(url, f"cannot fetch: {exc or type(exc).__name__}") from None
        extra: dict[str, Any] = {"url": url, "size": len(data)}
        if etag:
            extra["etag"] = etag
        if last_modified:
            extra["last_modified"] = last_modified
        return snapshot_result(data, parts.path, config, extra)


def _read_limited(response: Any, url: str, config: FetchConfig, deadline: float) -> bytes:
    """The body, a chunk at a time: FetchFailed past `max_bytes` or past the deadline."""
    length = response.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > config.max_bytes:
        raise FetchFailed(url, f"{int(length)} bytes, more than {config.max_bytes}")
    read = getattr(response, "read1", response.read)
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise FetchFailed(url, f"took longer than {config.timeout_s:g} s")
        chunk = read(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > config.max_bytes:
            raise FetchFailed(url, f"more than {config.max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


register_fetcher(FileFetcher())
register_fetcher(HttpFetcher())


# --- into a bank --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchSummary:
    bank: str
    source: str
    location: str
    changed: bool
    """False: the source had nothing new since the last fetch."""
    fetched: int
    """Records the fetcher gave."""
    added: int
    """Items banked."""
    skipped: int
    """Items the bank had already."""
    passed_through: int
    """Signals of types Firebreak does not know, kept as they are."""
    removed: int
    """Items removed because the source took their hashes back."""
    created_bank: bool


def state_path(home: Path, bank: str, source: str, location: str) -> Path:
    """Where the checkpoint of `source` at `location` into `bank` is kept."""
    key = json.dumps([bank, source, location], ensure_ascii=False)
    return home / STATE_DIR / f"{source}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def fetch_into_bank(
    fb: Firebreak,
    bank: str,
    source: str,
    location: str,
    fmt: ListFormat | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    options: Mapping[str, str] | None = None,
) -> FetchSummary:
    """Fetch what is new from `source` at `location` and bank it in `bank` (a block bank, made
    when missing). The checkpoint is stored only after the import: a list that fails to fetch
    or to validate changes nothing and is fetched whole next time."""
    fetcher = get_fetcher(source)
    created = False
    try:
        target = fb.store.get_bank(bank)
    except BankNotFound:
        fb.create_bank(bank, "block")
        target = fb.store.get_bank(bank)  # its times as the store gives them back
        created = True
    path = state_path(fb.settings.home, bank, source, location)
    state = _read_state(path)
    # A checkpoint is worth something only for the bank it was made with: a bank deleted and
    # made again under the same name (even with the same id) starts from nothing.
    same_bank = [target.id, target.created_at.isoformat()]
    checkpoint = state.get("checkpoint") if state.get("bank") == same_bank else None
    config = FetchConfig(
        location,
        fmt,
        checkpoint if isinstance(checkpoint, dict) else {},
        max_bytes,
        timeout_s,
        dict(options or {}),
    )
    result = fetcher.fetch(config)

    # Updates first: a list that does not validate changes nothing at all.
    added = skipped = passed = 0
    if result.updates:
        summary = fb.import_hashes(bank, result.updates, fmt or ListFormat.TE, location)
        added, skipped, passed = summary.added, summary.skipped, summary.passed_through
    removed = 0
    if result.removals:
        updated = {_item_name(r) for r in result.updates}
        names = {i.name for i in fb.store.items(bank)} - updated
        for name in dict.fromkeys(_item_name(r) for r in result.removals):
            if name in names:
                with contextlib.suppress(ItemNotFound):
                    fb.remove_item(bank, name)
                    removed += 1

    _write_state(
        path,
        {
            "bank": same_bank,
            "bank_name": bank,
            "source": source,
            "location": location,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "checkpoint": dict(result.checkpoint),
        },
    )
    return FetchSummary(
        bank=bank,
        source=source,
        location=location,
        changed=result.changed,
        fetched=len(result.updates),
        added=added,
        skipped=skipped,
        passed_through=passed,
        removed=removed,
        created_bank=created,
    )


def _item_name(record: HashRecord) -> str:
    """The name the import gives the item of `record` (a digest's value canonical first)."""
    known = signal_type_for_exchange_name(record.signal_type)
    if known is not None and known is not VideoSignal:
        with contextlib.suppress(ValueError):
            record = replace(record, value=known.validate(record.value))
    return record_item_name(record)


def _read_state(path: Path) -> dict[str, Any]:
    """The stored state; {} when there is none or it cannot be read (then all is fetched again,
    and what the bank has already is skipped)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise FetchFailed(str(path), f"cannot keep the checkpoint: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError) as exc:
        raise FetchFailed(str(path), f"cannot keep the checkpoint: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT_S",
    "ENTRY_POINT_GROUP",
    "Checkpoint",
    "FetchConfig",
    "FetchFailed",
    "FetchResult",
    "FetchSummary",
    "Fetcher",
    "FileFetcher",
    "HttpFetcher",
    "UnknownFetcher",
    "fetch_into_bank",
    "fetcher_names",
    "get_fetcher",
    "register_fetcher",
    "snapshot_result",
    "state_path",
    "unregister_fetcher",
]
