"""Signed evidence packages: what is written verifies, and any change, addition, removal, hostile
name or foreign signer is caught and named, on real media made with ffmpeg."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firebreak.errors import FirebreakError
from firebreak.exchange.evidence import (
    EVIDENCE_FORMAT,
    EvidenceFile,
    EvidenceInvalid,
    PackageSummary,
    load_or_create_signing_key,
    public_key_fingerprint,
    verify_evidence_package,
    write_evidence_package,
)
from tests.conftest import ffmpeg

RECORD: dict[str, object] = {
    "name": "incident-0042",
    "stream": "rtmp://live.example/app/stream",
    "status": "open",
    "max_score": 0.9731,
    "alerts": [{"at": 12.5, "score": 0.97}],
    "note": "Übertragung — ünïcödé survives",
}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> list[EvidenceFile]:
    """A 2 s H.264 recording in MPEG-TS and two frames (JPEG, PNG), made with ffmpeg."""
    folder = tmp_path_factory.mktemp("evidence-media")
    recording = folder / "recording.ts"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "2",
        "-c:v",
        "libx264",
        recording,
    )
    jpg = folder / "0012.500.jpg"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120", "-frames:v", "1", jpg)
    png = folder / "0013.000.png"
    ffmpeg("-f", "lavfi", "-i", "smptebars=size=160x120", "-frames:v", "1", png)
    return [
        EvidenceFile("recording.ts", recording),
        EvidenceFile("frames/0012.500.jpg", jpg),
        EvidenceFile("frames/0013.000.png", png),
    ]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def package(tmp_path: Path, media: list[EvidenceFile], key: Ed25519PrivateKey) -> Path:
    dest = tmp_path / "incident-0042.zip"
    write_evidence_package(dest, RECORD, media, key, created_by="analyst@example.org")
    return dest


def rewrite(
    src: Path,
    dest: Path,
    change: Callable[[str, bytes], bytes | None] = lambda name, data: data,
    add: dict[str, bytes] | None = None,
) -> Path:
    """A copy of the zip at `src` with each entry passed through `change` (None drops it) and the
    entries in `add` appended, names as given (zipfile writes hostile names as they are)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(zipfile.ZipInfo(name), data)
    return dest


def resign(
    src: Path, dest: Path, key: Ed25519PrivateKey, edit: Callable[[dict[str, object]], None]
) -> Path:
    """A copy with the manifest edited and signed again with `key`: a well-signed package whose
    contents disagree with its manifest."""

    def change(name: str, data: bytes) -> bytes:
        if name == "manifest.json":
            manifest = json.loads(data)
            edit(manifest)
            return json.dumps(manifest, sort_keys=True).encode()
        return data

    out = rewrite(src, dest, change)
    manifest_bytes = zipfile.ZipFile(out).read("manifest.json")
    signature = base64.b64encode(key.sign(manifest_bytes))
    return rewrite(
        out, dest.with_suffix(".signed.zip"), lambda n, d: signature if n == "manifest.sig" else d
    )


def problems_about(path: Path, name: str, **kwargs: str) -> list[str]:
    report = verify_evidence_package(path, **kwargs)
    assert not report.ok
    assert report.problems
    return [p for p in report.problems if name in p]


# --- round trip ---------------------------------------------------------------------------------


def test_round_trip_verifies_and_records_every_file(
    tmp_path: Path, media: list[EvidenceFile], key: Ed25519PrivateKey
) -> None:
    dest = tmp_path / "out" / "incident-0042.zip"  # the folder is made
    summary = write_evidence_package(dest, RECORD, media, key, created_by="analyst@example.org")
    fingerprint = public_key_fingerprint(key.public_key())
    assert summary == PackageSummary(dest, 3, dest.stat().st_size, fingerprint)
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temp file left behind

    report = verify_evidence_package(dest)
    assert report.ok, report.problems
    assert report.problems == []
    assert report.signer_fingerprint == fingerprint
    assert verify_evidence_package(dest, trusted_fingerprint=fingerprint.upper()).ok

    manifest = report.manifest
    assert manifest["format"] == EVIDENCE_FORMAT
    assert manifest["created_by"] == "analyst@example.org"
    assert manifest["record"] == RECORD
    assert str(manifest["created_at"]).endswith("+00:00")
    assert manifest["signer"] == {
        "algorithm": "ed25519",
        "public_key": manifest["signer"]["public_key"],  # type: ignore[index]
        "fingerprint": fingerprint,
    }
    expected = [
        {
            "path": f.arcname,
            "bytes": f.path.stat().st_size,
            "sha256": hashlib.sha256(f.path.read_bytes()).hexdigest(),
            "md5": hashlib.md5(f.path.read_bytes()).hexdigest(),
        }
        for f in media
    ]
    assert manifest["files"] == expected

    with zipfile.ZipFile(dest) as zf:
        raw = zf.read("manifest.json")
        assert json.loads(raw) == manifest
        assert list(json.loads(raw)) == sorted(json.loads(raw))  # keys sorted as written
        key.public_key().verify(base64.b64decode(zf.read("manifest.sig")), raw)
        for f in media:
            assert zf.read(f.arcname) == f.path.read_bytes()
            assert zf.getinfo(f.arcname).compress_type == zipfile.ZIP_STORED
        assert sorted(zf.namelist()) == sorted(
            ["manifest.json", "manifest.sig", *(f.arcname for f in media)]
        )


def test_rewriting_replaces_the_old_package_whole(
    package: Path, media: list[EvidenceFile], key: Ed25519PrivateKey
) -> None:
    write_evidence_package(package, {"name": "second"}, media[:1], key, created_by="x")
    report = verify_evidence_package(package)
    assert report.ok, report.problems
    assert report.manifest["record"] == {"name": "second"}
    assert [p.name for p in package.parent.iterdir()] == [package.name]


def test_unreadable_file_leaves_the_old_package_and_no_temp_file(
    package: Path, media: list[EvidenceFile], key: Ed25519PrivateKey
) -> None:
    before = package.read_bytes()
    missing = EvidenceFile("gone.ts", package.parent / "gone.ts")
    with pytest.raises(EvidenceInvalid, match=r"gone\.ts: cannot read"):
        write_evidence_package(package, RECORD, [*media, missing], key, created_by="x")
    assert package.read_bytes() == before
    assert [p.name for p in package.parent.iterdir()] == [package.name]


@pytest.mark.parametrize(
    "arcname",
    [
        "/etc/passwd",
        "../escape.ts",
        "frames/../../escape.jpg",
        "frames\\0001.jpg",
        "C:/x.ts",
        "",
        "frames//0001.jpg",
        "./x.ts",
        "a\x00b",
        "manifest.json",
        "manifest.sig",
    ],
)
def test_writer_refuses_unsafe_names(
    tmp_path: Path, media: list[EvidenceFile], key: Ed25519PrivateKey, arcname: str
) -> None:
    with pytest.raises(EvidenceInvalid, match="not allowed"):
        write_evidence_package(
            tmp_path / "p.zip", RECORD, [EvidenceFile(arcname, media[1].path)], key, "x"
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "names",
    [["a.jpg", "a.jpg"], ["frames/A.jpg", "frames/a.jpg"], ["frames", "frames/a.jpg"]],
)
def test_writer_refuses_clashing_names(
    tmp_path: Path, media: list[EvidenceFile], key: Ed25519PrivateKey, names: list[str]
) -> None:
    files = [EvidenceFile(name, media[1].path) for name in names]
    with pytest.raises(EvidenceInvalid, match="not allowed"):
        write_evidence_package(tmp_path / "p.zip", RECORD, files, key, "x")


def test_writer_refuses_a_record_that_is_not_json(
    tmp_path: Path, media: list[EvidenceFile], key: Ed25519PrivateKey
) -> None:
    with pytest.raises(EvidenceInvalid, match="record: not JSON"):
        write_evidence_package(tmp_path / "p.zip", {"at": object()}, media, key, "x")


# --- keys ---------------------------------------------------------------------------------------


def test_key_is_created_private_and_reloads_with_the_same_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "evidence.pem"
    first = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_signing_key(path)
    fingerprint = public_key_fingerprint(first.public_key())
    assert public_key_fingerprint(again.public_key()) == fingerprint
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    assert [p.name for p in path.parent.iterdir()] == ["evidence.pem"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key at all",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        bytes(range(256)),
    ],
)
def test_corrupt_key_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "evidence.pem"
    path.write_bytes(content)
    with pytest.raises(FirebreakError, match=r"evidence\.pem: not a PEM private key"):
        load_or_create_signing_key(path)
    assert path.read_bytes() == content  # never replaced behind the user's back


def test_key_of_another_kind_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(EvidenceInvalid, match="expected Ed25519"):
        load_or_create_signing_key(path)


# --- tampering ----------------------------------------------------------------------------------


def test_changed_file_byte_is_named(package: Path, tmp_path: Path) -> None:
    def flip(name: str, data: bytes) -> bytes:
        if name == "recording.ts":
            return data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
        return data

    tampered = rewrite(package, tmp_path / "tampered.zip", flip)
    found = problems_about(tampered, "recording.ts")
    assert found == ["recording.ts: SHA-256 does not match the manifest (the file was changed)"]


def test_flipped_byte_in_the_zip_itself_is_named(package: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(package) as zf:
        info = zf.getinfo("frames/0012.500.jpg")
    raw = bytearray(package.read_bytes())
    # past the local header (30 bytes + name + extra), into the stored JPEG data
    at = info.header_offset + 30 + len(info.filename.encode()) + 200
    raw[at] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    found = problems_about(damaged, "frames/0012.500.jpg")
    assert len(found) == 1 and "damaged in the zip" in found[0]


def test_changed_manifest_breaks_the_signature(package: Path, tmp_path: Path) -> None:
    def edit(name: str, data: bytes) -> bytes:
        return data.replace(b"incident-0042", b"incident-0043") if name == "manifest.json" else data

    tampered = rewrite(package, tmp_path / "tampered.zip", edit)
    found = problems_about(tampered, "manifest.sig")
    assert len(found) == 1 and "bad signature" in found[0]


def test_missing_or_garbled_signature(package: Path, tmp_path: Path) -> None:
    unsigned = rewrite(
        package, tmp_path / "unsigned.zip", lambda n, d: None if n == "manifest.sig" else d
    )
    assert problems_about(unsigned, "manifest.sig") == [
        "manifest.sig: missing: the package is not signed"
    ]
    garbled = rewrite(
        package,
        tmp_path / "garbled.zip",
        lambda n, d: b"!!not base64!!" if n == "manifest.sig" else d,
    )
    assert problems_about(garbled, "manifest.sig") == ["manifest.sig: not base64"]


def test_unlisted_file_is_refused(package: Path, tmp_path: Path) -> None:
    extra = rewrite(package, tmp_path / "extra.zip", add={"frames/9999.jpg": b"\xff\xd8planted"})
    assert problems_about(extra, "frames/9999.jpg") == [
        "frames/9999.jpg: in the zip but not listed in the manifest"
    ]


def test_listed_file_missing_is_refused(package: Path, tmp_path: Path) -> None:
    dropped = rewrite(
        package, tmp_path / "dropped.zip", lambda n, d: None if n == "frames/0013.000.png" else d
    )
    assert problems_about(dropped, "frames/0013.000.png") == [
        "frames/0013.000.png: listed in the manifest but missing from the zip"
    ]


@pytest.mark.parametrize(
    "name", ["../../evil.sh", "/etc/cron.d/evil", "frames/../../evil", "..\\evil.bat", "C:/evil"]
)
def test_traversal_names_in_the_zip_are_refused(package: Path, tmp_path: Path, name: str) -> None:
    hostile = rewrite(package, tmp_path / "hostile.zip", add={name: b"#!/bin/sh\nrm -rf ~\n"})
    report = verify_evidence_package(hostile)
    assert not report.ok
    assert any(p.startswith(repr(name)) for p in report.problems), report.problems


def test_empty_name_folder_and_symlink_entries_are_refused(package: Path, tmp_path: Path) -> None:
    link = zipfile.ZipInfo("frames/link.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(rewrite(package, tmp_path / "hostile.zip"), "a") as zf:
        zf.writestr(zipfile.ZipInfo("\x00evil"), b"x")  # zipfile writes it with an empty name
        zf.writestr(zipfile.ZipInfo("frames/"), b"")
        zf.writestr(link, "/etc/passwd")
    report = verify_evidence_package(tmp_path / "hostile.zip")
    assert not report.ok
    assert "'': empty name" in report.problems
    assert "'frames/': folder entry (a package holds files only)" in report.problems
    assert "'frames/link.jpg': symbolic link" in report.problems


def test_traversal_name_in_the_manifest_is_refused(
    package: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    def edit(manifest: dict[str, object]) -> None:
        files = manifest["files"]
        assert isinstance(files, list)
        files[0]["path"] = "../recording.ts"

    hostile = resign(package, tmp_path / "hostile.zip", key, edit)
    report = verify_evidence_package(hostile)
    assert not report.ok
    assert "manifest.json: files[0]: '../recording.ts': '..' in path" in report.problems


def test_duplicate_entries_are_refused(package: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = rewrite(package, tmp_path / "twice.zip", add={"recording.ts": b"other bytes"})
    found = problems_about(twice, "recording.ts")
    assert "recording.ts: duplicate name" in found


def test_size_mismatch_is_caught_before_reading(
    package: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    def edit(manifest: dict[str, object]) -> None:
        files = manifest["files"]
        assert isinstance(files, list)
        files[0]["bytes"] = 10  # a signer that declared 10 bytes for a bigger entry

    lying = resign(package, tmp_path / "lying.zip", key, edit)
    found = problems_about(lying, "recording.ts")
    assert len(found) == 1 and "10 in the manifest" in found[0]


def test_deflate_bomb_is_read_no_further_than_declared(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"\0" * 1000)
    package = tmp_path / "p.zip"
    write_evidence_package(package, RECORD, [EvidenceFile("data.bin", small)], key, "x")

    bomb = zipfile.ZipInfo("data.bin")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(package) as zin, zipfile.ZipFile(tmp_path / "bomb.zip", "w") as zout:
        for info in zin.infolist():
            if info.filename != "data.bin":
                zout.writestr(info, zin.read(info))
        with zout.open(bomb, "w") as out:
            for _ in range(64):
                out.write(b"\0" * (1 << 20))  # 64 MiB of zeros, a few kB compressed
    assert (tmp_path / "bomb.zip").stat().st_size < 1 << 20
    found = problems_about(tmp_path / "bomb.zip", "data.bin")
    assert found == ["data.bin: 67108864 bytes in the zip, 1000 in the manifest"]


def test_wrong_format_is_refused(package: Path, tmp_path: Path, key: Ed25519PrivateKey) -> None:
    def edit(manifest: dict[str, object]) -> None:
        manifest["format"] = "firebreak-evidence/99"

    other = resign(package, tmp_path / "other.zip", key, edit)
    report = verify_evidence_package(other)
    assert report.problems == [
        "manifest.json: format is 'firebreak-evidence/99', expected 'firebreak-evidence/1'"
    ]


def test_wrong_trusted_fingerprint_is_refused(package: Path, tmp_path: Path) -> None:
    stranger = public_key_fingerprint(Ed25519PrivateKey.generate().public_key())
    report = verify_evidence_package(package, trusted_fingerprint=stranger)
    assert not report.ok
    assert len(report.problems) == 1 and "not the trusted one" in report.problems[0]
    assert report.signer_fingerprint is not None and report.signer_fingerprint != stranger


def test_forger_key_with_the_real_fingerprint_claimed_is_refused(
    package: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    """A forger puts their own key in the manifest, keeps the real signer's fingerprint and signs:
    the fingerprint is computed from the key, never taken from the manifest."""
    from cryptography.hazmat.primitives import serialization

    real = public_key_fingerprint(key.public_key())
    forger = Ed25519PrivateKey.generate()
    forger_pem = (
        forger.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    def edit(manifest: dict[str, object]) -> None:
        manifest["signer"] = {"algorithm": "ed25519", "public_key": forger_pem, "fingerprint": real}

    forged = resign(package, tmp_path / "forged.zip", forger, edit)
    report = verify_evidence_package(forged, trusted_fingerprint=real)
    assert not report.ok
    assert report.signer_fingerprint == public_key_fingerprint(forger.public_key())
    assert not any("bad signature" in p for p in report.problems)  # the forger did sign it
    assert any("does not match its public key" in p for p in report.problems)
    assert any("not the trusted one" in p for p in report.problems)


def test_signature_by_a_key_other_than_the_one_named_is_refused(
    package: Path, tmp_path: Path
) -> None:
    forged = resign(package, tmp_path / "forged.zip", Ed25519PrivateKey.generate(), lambda m: None)
    found = problems_about(forged, "manifest.sig")
    assert len(found) == 1 and "bad signature" in found[0]


# --- not a package at all -----------------------------------------------------------------------


def test_truncated_zip_is_a_problem_not_an_exception(package: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    report = verify_evidence_package(truncated)
    assert not report.ok
    assert report.manifest == {} and report.signer_fingerprint is None
    assert len(report.problems) == 1 and "not a zip file, or truncated" in report.problems[0]


def test_not_a_zip_is_a_problem_not_an_exception(media: list[EvidenceFile], tmp_path: Path) -> None:
    for path in (media[0].path, tmp_path / "missing.zip", tmp_path):
        report = verify_evidence_package(path)
        assert not report.ok
        assert report.manifest == {}
        assert len(report.problems) == 1 and str(path) in report.problems[0]


def test_random_damage_never_raises(package: Path, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    original = package.read_bytes()
    damaged = tmp_path / "damaged.zip"
    for _ in range(500):
        raw = bytearray(original)
        tail = rng.random() < 0.5  # half the time in the central directory, where names are
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(raw) - 300, len(raw)) if tail else rng.randrange(len(raw))
            raw[at] = rng.randrange(256)
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw))]
        damaged.write_bytes(bytes(raw))
        report = verify_evidence_package(damaged)  # never raises
        # a change where nothing is signed or checked (a timestamp, say) may leave it valid
        assert report.ok == (report.problems == [])
