"""Signed evidence packages: one live incident, its files and their hashes, in one zip.

A package is what Firebreak hands to another platform or to the police about an incident:

- `manifest.json`: UTF-8 JSON with sorted keys: `format` (`firebreak-evidence/1`), `created_at`
  (ISO-8601, UTC), `created_by`, `record` (the incident as Firebreak keeps it), `files` (one
  `{"path", "bytes", "sha256", "md5"}` per file) and `signer` (`{"algorithm": "ed25519",
  "public_key": <PEM>, "fingerprint": <hex SHA-256 of the raw 32-byte public key>}`).
- `manifest.sig`: the base64 Ed25519 signature over the exact bytes of `manifest.json`.
- each file (the recording, frames) under its own name, stored as it is (no compression).

The signature covers the manifest and the manifest covers every file by size, SHA-256 and MD5, so
one check proves that nothing was changed, added or taken away since the package was signed. The
key that signed is inside the manifest: that proves integrity, not origin. Who signed is proved by
comparing the signer's fingerprint with one learned out of band (`trusted_fingerprint`).

Verification reads packages that may come from anyone: it refuses names that could escape the
folder they are extracted into, reads no more of a file than the manifest declares (so a zip bomb
stops where the declared size ends), and reports every problem as one line instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firebreak.errors import FirebreakError

EVIDENCE_FORMAT = "firebreak-evidence/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SIGNATURE_ALGORITHM = "ed25519"

CHUNK_BYTES = 1 << 20
"""Files are hashed and copied this much at a time: a recording is never held in memory whole."""
MAX_MANIFEST_BYTES = 64 << 20
"""A manifest bigger than this is refused unread (a real one is a few kB per thousand frames)."""
MAX_SIGNATURE_BYTES = 1024
MAX_ENTRIES = 100_000
"""A zip with more entries than this is refused before any of them is read."""

_RESERVED = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
_READABLE_COMPRESSION = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_SHA256_HEX = 64
_MD5_HEX = 32
_HEX = frozenset("0123456789abcdef")
# What zipfile, zlib and the JSON reader raise on damaged or hostile input.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    IndexError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    struct.error,
)


class EvidenceInvalid(FirebreakError):
    """An evidence package (or its signing key) that cannot be written or used: what and why."""

    def __init__(self, source: Path | str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = str(source)
        self.reason = reason


@dataclass(frozen=True)
class EvidenceFile:
    """One file to put in a package: `arcname` is its name inside, `path` where it is now."""

    arcname: str
    path: Path


@dataclass(frozen=True)
class PackageSummary:
    """A package just written."""

    path: Path
    files: int
    """Evidence files in it (the manifest and its signature are not counted)."""
    bytes: int
    """Size of the package file on disk."""
    signer_fingerprint: str
    """Hex SHA-256 of the raw 32-byte public key that signed it."""


@dataclass(frozen=True)
class VerifyReport:
    """What verification found: `ok` only when there is no problem at all."""

    ok: bool
    problems: list[str]
    """One line per problem, naming the file it is about; empty when ok."""
    manifest: dict[str, object]
    """The parsed manifest ({} when it could not be read); trust it only when ok."""
    signer_fingerprint: str | None
    """Fingerprint of the key in the manifest, None when there is no usable key. Without a
    `trusted_fingerprint` an ok report proves the package is intact, not who made it."""


# --- keys -------------------------------------------------------------------------------------


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key at `path` (PEM, PKCS8, unencrypted); made there, readable by its owner
    only (0600), when there is none. Raises EvidenceInvalid for a file that holds no such key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create_signing_key(path)
    except OSError as exc:
        raise EvidenceInvalid(path, f"cannot read signing key: {exc.strerror or exc}") from exc
    return _parse_signing_key(path, data)


def public_key_fingerprint(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key: short enough to read out over the phone."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _parse_signing_key(path: Path, data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted: it wants a password
        raise EvidenceInvalid(
            path, "signing key is encrypted; expected an unencrypted key"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EvidenceInvalid(
            path, "not a PEM private key (corrupt signing key file?): remove it to make a new one"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceInvalid(path, f"signing key is {type(key).__name__}, expected Ed25519")
    return key


def _create_signing_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise EvidenceInvalid(path, f"cannot create signing key: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            # A link never replaces a key another process made meanwhile: that one wins.
            os.link(tmp, path)
        except FileExistsError:
            return load_or_create_signing_key(path)
        except OSError:
            os.replace(tmp, path)  # file systems without hard links
    except OSError as exc:
        raise EvidenceInvalid(path, f"cannot create signing key: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return key


# --- names --------------------------------------------------------------------------------------


def _name_problem(name: str) -> str | None:
    """Why `name` may not be a file's name in a package (None when it may): anything that could
    land outside the folder it is extracted into, or mean different things to different tools."""
    if not name:
        return "empty name"
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        return "control character in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/"):
        return "absolute path"
    parts = name.split("/")
    if ":" in parts[0]:
        return "drive or stream name (':') in name"
    if ".." in parts:
        return "'..' in path"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path part"
    return None


def _set_problems(names: Iterable[str]) -> list[str]:
    """Names that clash: the same name twice, two names that differ only in case (one would
    overwrite the other on Windows and macOS), or a name that is also used as a folder."""
    problems = []
    seen: dict[str, str] = {}
    for name in names:
        folded = name.casefold()
        if folded in seen:
            other = seen[folded]
            what = "duplicate name" if other == name else f"differs only in case from {other}"
            problems.append(f"{name}: {what}")
        else:
            seen[folded] = name
    for folded, name in seen.items():
        parts = folded.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                problems.append(f"{name}: {seen[prefix]} is both a file and a folder")
                break
    return problems


# --- writing ------------------------------------------------------------------------------------


def write_evidence_package(
    dest: Path,
    record: Mapping[str, object],
    files: Sequence[EvidenceFile],
    key: Ed25519PrivateKey,
    created_by: str,
) -> PackageSummary:
    """Write the package for `record` and `files` to `dest`, signed with `key`.

    Each file is hashed as it is copied, so the hashes are those of the bytes in the package even
    when a recording is still growing (what is copied is the file as long as it was when copying
    began). The zip is written next to `dest` and moved into place only when complete, so `dest`
    is either the old file or the whole new one. Raises EvidenceInvalid for a name that is not
    allowed, a record that is not JSON, or a file that cannot be read.
    """
    for f in files:
        problem = _name_problem(f.arcname)
        if problem is None and f.arcname in _RESERVED:
            problem = "reserved for the package itself"
        if problem is not None:
            raise EvidenceInvalid(repr(f.arcname), f"not allowed in an evidence package: {problem}")
    clashes = _set_problems(f.arcname for f in files)
    if clashes:
        raise EvidenceInvalid(dest, f"not allowed in an evidence package: {clashes[0]}")
    try:
        record_json = json.loads(json.dumps(record, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise EvidenceInvalid("record", f"not JSON: {exc}") from exc

    public_key = key.public_key()
    fingerprint = public_key_fingerprint(public_key)
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    now = datetime.now(UTC).replace(microsecond=0)
    date_time = (now.year, now.month, now.day, now.hour, now.minute, now.second)

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise EvidenceInvalid(dest, f"cannot write: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
                listed = [_copy_into(zf, f, date_time) for f in files]
                manifest = {
                    "format": EVIDENCE_FORMAT,
                    "created_at": now.isoformat(),
                    "created_by": created_by,
                    "record": record_json,
                    "files": listed,
                    "signer": {
                        "algorithm": SIGNATURE_ALGORITHM,
                        "public_key": public_pem,
                        "fingerprint": fingerprint,
                    },
                }
                manifest_bytes = (
                    json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
                ).encode("utf-8")
                signature = base64.b64encode(key.sign(manifest_bytes)) + b"\n"
                zf.writestr(_entry(MANIFEST_NAME, date_time, zipfile.ZIP_DEFLATED), manifest_bytes)
                zf.writestr(_entry(SIGNATURE_NAME, date_time, zipfile.ZIP_STORED), signature)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        raise EvidenceInvalid(dest, f"cannot write: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return PackageSummary(
        path=dest,
        files=len(files),
        bytes=dest.stat().st_size,
        signer_fingerprint=fingerprint,
    )


def _entry(
    name: str, date_time: tuple[int, int, int, int, int, int], method: int
) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time)
    info.compress_type = method
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def _copy_into(
    zf: zipfile.ZipFile, f: EvidenceFile, date_time: tuple[int, int, int, int, int, int]
) -> dict[str, object]:
    """Copy one file into the zip, hashing it on the way; its manifest entry."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    copied = 0
    try:
        with f.path.open("rb") as src:
            st = os.fstat(src.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise EvidenceInvalid(f.path, "not a regular file")
            info = _entry(f.arcname, date_time, zipfile.ZIP_STORED)
            info.file_size = st.st_size  # lets zipfile choose ZIP64 for big recordings
            with zf.open(info, "w") as out:
                remaining = st.st_size
                while remaining > 0:
                    chunk = src.read(min(CHUNK_BYTES, remaining))
                    if not chunk:
                        break  # it shrank: the package holds what was there
                    sha256.update(chunk)
                    md5.update(chunk)
                    out.write(chunk)
                    copied += len(chunk)
                    remaining -= len(chunk)
    except OSError as exc:
        raise EvidenceInvalid(f.path, f"cannot read: {exc.strerror or exc}") from exc
    return {
        "path": f.arcname,
        "bytes": copied,
        "sha256": sha256.hexdigest(),
        "md5": md5.hexdigest(),
    }


# --- verifying ----------------------------------------------------------------------------------


class _Unreadable(Exception):
    """An entry that cannot be read; the message is the problem line."""


def verify_evidence_package(path: Path, trusted_fingerprint: str | None = None) -> VerifyReport:
    """Check the package at `path`: signature, format, signer (against `trusted_fingerprint`
    when given, hex, case and ':' ignored) and every file's presence, size, SHA-256 and MD5.

    Never raises for what is in the file: a damaged, truncated or hostile package gives a report
    with ok=False and one line per problem.
    """
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        return _report([f"{path}: no such file"], {}, None)
    except zipfile.BadZipFile as exc:
        return _report([f"{path}: not a zip file, or truncated ({exc})"], {}, None)
    except _READ_ERRORS as exc:
        return _report([f"{path}: cannot read the zip ({exc})"], {}, None)
    with zf:
        try:
            return _verify_open(zf, trusted_fingerprint)
        except _READ_ERRORS as exc:  # damage found where no finer check caught it
            return _report([f"{path}: damaged zip ({exc})"], {}, None)


def _report(problems: list[str], manifest: dict[str, object], signer: str | None) -> VerifyReport:
    return VerifyReport(not problems, problems, manifest, signer)


def _verify_open(zf: zipfile.ZipFile, trusted_fingerprint: str | None) -> VerifyReport:
    problems: list[str] = []
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        return _report([f"zip has {len(infos)} entries, more than {MAX_ENTRIES}"], {}, None)

    # Every name first: one bad name is reason enough not to extract the package at all.
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        problem = _entry_problem(info)
        if problem is not None:
            problems.append(f"{name!r}: {problem}")
        elif name not in entries:
            entries[name] = info
    problems.extend(_set_problems(info.filename for info in infos))

    manifest, signer = _check_manifest(zf, entries, trusted_fingerprint, problems)
    listed = _listed_files(manifest, problems) if manifest else {}

    for name in sorted(entries.keys() - _RESERVED - listed.keys()):
        problems.append(f"{name}: in the zip but not listed in the manifest")
    for name, (size, sha256, md5) in listed.items():
        entry = entries.get(name)
        if entry is None:
            problems.append(f"{name}: listed in the manifest but missing from the zip")
            continue
        problem = _check_file(zf, entry, size, sha256, md5)
        if problem is not None:
            problems.append(f"{name}: {problem}")
    return _report(problems, manifest, signer)


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.orig_filename  # before zipfile cuts it at a NUL
    is_dir = name.endswith("/")
    problem = _name_problem(name[:-1] if is_dir else name)
    if problem is not None:
        return problem
    if is_dir:
        return "folder entry (a package holds files only)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted entry"
    if info.compress_type not in _READABLE_COMPRESSION:
        return f"unsupported compression method {info.compress_type}"
    return None


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise _Unreadable(f"{info.filename}: {info.file_size} bytes, more than {limit}")
    try:
        with zf.open(info) as src:
            data = src.read(limit + 1)
    except _READ_ERRORS as exc:
        raise _Unreadable(f"{info.filename}: damaged in the zip ({exc})") from exc
    if len(data) > limit:
        raise _Unreadable(f"{info.filename}: more than {limit} bytes")
    return data


def _check_manifest(
    zf: zipfile.ZipFile,
    entries: Mapping[str, zipfile.ZipInfo],
    trusted_fingerprint: str | None,
    problems: list[str],
) -> tuple[dict[str, object], str | None]:
    """Read, parse and check the signature of the manifest; the manifest ({} when unreadable)
    and the signer's fingerprint (None when there is no usable key). Problems go to `problems`."""
    manifest_info = entries.get(MANIFEST_NAME)
    if manifest_info is None:
        problems.append(f"{MANIFEST_NAME}: missing")
        return {}, None
    try:
        manifest_bytes = _read_small(zf, manifest_info, MAX_MANIFEST_BYTES)
    except _Unreadable as exc:
        problems.append(str(exc))
        return {}, None
    try:
        parsed = json.loads(manifest_bytes.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        problems.append(f"{MANIFEST_NAME}: not valid UTF-8 JSON ({exc})")
        return {}, None
    if not isinstance(parsed, dict):
        problems.append(f"{MANIFEST_NAME}: not a JSON object")
        return {}, None
    manifest: dict[str, object] = parsed

    if manifest.get("format") != EVIDENCE_FORMAT:
        problems.append(
            f"{MANIFEST_NAME}: format is {manifest.get('format')!r}, expected {EVIDENCE_FORMAT!r}"
        )
    created_at = manifest.get("created_at")
    if not isinstance(created_at, str) or not _is_iso_time(created_at):
        problems.append(f"{MANIFEST_NAME}: created_at is not an ISO-8601 time")
    if not isinstance(manifest.get("created_by"), str):
        problems.append(f"{MANIFEST_NAME}: created_by is missing or not text")
    if not isinstance(manifest.get("record"), dict):
        problems.append(f"{MANIFEST_NAME}: record is missing or not an object")

    public_key, fingerprint = _signer_key(manifest, problems)
    if fingerprint is not None and trusted_fingerprint is not None:
        trusted = trusted_fingerprint.strip().replace(":", "").lower()
        if fingerprint != trusted:
            problems.append(
                f"signer: fingerprint {fingerprint} is not the trusted one {trusted_fingerprint}"
            )
    if public_key is None:
        return manifest, fingerprint

    signature_info = entries.get(SIGNATURE_NAME)
    if signature_info is None:
        problems.append(f"{SIGNATURE_NAME}: missing: the package is not signed")
        return manifest, fingerprint
    try:
        encoded = _read_small(zf, signature_info, MAX_SIGNATURE_BYTES)
    except _Unreadable as exc:
        problems.append(str(exc))
        return manifest, fingerprint
    try:
        signature = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        problems.append(f"{SIGNATURE_NAME}: not base64")
        return manifest, fingerprint
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        problems.append(
            f"{SIGNATURE_NAME}: bad signature: {MANIFEST_NAME} was changed after signing"
            " or was not signed by the key it names"
        )
    return manifest, fingerprint


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object whose keys are all different: with a key twice, tools would disagree on
    which value the signature covers."""
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _is_iso_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _signer_key(
    manifest: Mapping[str, object], problems: list[str]
) -> tuple[Ed25519PublicKey | None, str | None]:
    signer = manifest.get("signer")
    if not isinstance(signer, dict):
        problems.append(f"{MANIFEST_NAME}: signer is missing or not an object")
        return None, None
    if signer.get("algorithm") != SIGNATURE_ALGORITHM:
        problems.append(
            f"signer: algorithm is {signer.get('algorithm')!r}, expected {SIGNATURE_ALGORITHM!r}"
        )
        return None, None
    pem = signer.get("public_key")
    key: object = None
    if isinstance(pem, str):
        try:
            key = serialization.load_pem_public_key(pem.encode("utf-8"))
        except (ValueError, UnsupportedAlgorithm):
            key = None
    if not isinstance(key, Ed25519PublicKey):
        problems.append("signer: public_key is not an Ed25519 public key in PEM")
        return None, None
    fingerprint = public_key_fingerprint(key)
    if signer.get("fingerprint") != fingerprint:
        problems.append(
            f"signer: fingerprint {signer.get('fingerprint')!r} does not match its public key"
            f" ({fingerprint})"
        )
    return key, fingerprint


def _listed_files(
    manifest: Mapping[str, object], problems: list[str]
) -> dict[str, tuple[int, str, str]]:
    """The manifest's files as {name: (bytes, sha256, md5)}; entries that are not well formed
    are reported and left out."""
    files = manifest.get("files")
    if not isinstance(files, list):
        problems.append(f"{MANIFEST_NAME}: files is missing or not a list")
        return {}
    listed: dict[str, tuple[int, str, str]] = {}
    for index, entry in enumerate(files):
        where = f"{MANIFEST_NAME}: files[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        name, size = entry.get("path"), entry.get("bytes")
        sha256, md5 = entry.get("sha256"), entry.get("md5")
        if not isinstance(name, str):
            problems.append(f"{where}: path is missing or not text")
            continue
        problem = _name_problem(name)
        if problem is None and name in _RESERVED:
            problem = "reserved for the package itself"
        if problem is not None:
            problems.append(f"{where}: {name!r}: {problem}")
            continue
        if name in listed:
            problems.append(f"{name}: listed twice in the manifest")
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(f"{name}: bytes in the manifest is not a whole number >= 0")
            continue
        if not _is_hex(sha256, _SHA256_HEX) or not _is_hex(md5, _MD5_HEX):
            problems.append(f"{name}: sha256 or md5 in the manifest is not lower-case hex")
            continue
        assert isinstance(sha256, str) and isinstance(md5, str)
        listed[name] = (size, sha256, md5)
    problems.extend(f"{MANIFEST_NAME}: {clash}" for clash in _set_problems(listed))
    return listed


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _check_file(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, size: int, sha256: str, md5: str
) -> str | None:
    """Why the entry is not the file the manifest lists (None when it is). Reads at most one byte
    past the declared size, whatever the zip claims the entry holds."""
    if info.file_size != size:
        return f"{info.file_size} bytes in the zip, {size} in the manifest"
    sha = hashlib.sha256()
    md = hashlib.md5(usedforsecurity=False)
    read = 0
    try:
        with zf.open(info) as src:
            read = _hash_up_to(src, size + 1, (sha, md))
    except _READ_ERRORS as exc:
        return f"damaged in the zip ({exc})"
    if read != size:
        more = "more" if read > size else "fewer"
        return f"holds {more} bytes than the {size} in the manifest"
    if sha.hexdigest() != sha256:
        return "SHA-256 does not match the manifest (the file was changed)"
    if md.hexdigest() != md5:
        return "MD5 does not match the manifest (the file was changed)"
    return None


def _hash_up_to(src: IO[bytes], limit: int, hashes: Iterable[hashlib._Hash]) -> int:
    """Feed at most `limit` bytes of `src` to every hash, a chunk at a time; bytes read."""
    hashes = tuple(hashes)
    read = 0
    while read < limit:
        chunk = src.read(min(CHUNK_BYTES, limit - read))
        if not chunk:
            break
        for h in hashes:
            h.update(chunk)
        read += len(chunk)
    return read
