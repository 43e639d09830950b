"""The HTTP API on real media: keys and roles, banks, scanning, allow lists, HMA's routes, bad
uploads, incidents, and freshness across API processes sharing one store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firebreak.api.app import create_app
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.store import IncidentAlert

from .conftest import ffmpeg

ROLES = ("admin", "moderator", "service", "partner")


class Api:
    """A client of one app, with a key of each role."""

    def __init__(
        self, settings: Settings, client_host: str = "testclient", make_keys: bool = True
    ) -> None:
        self.app = create_app(settings)
        self.client = TestClient(self.app, client=(client_host, 50000))
        self.keys = {
            role: self.fb.store.keys.create(f"{role}-key", role, "test")[1]
            for role in (ROLES if make_keys else ())
        }

    @property
    def fb(self) -> Firebreak:
        fb: Firebreak = self.app.state.fb
        return fb

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    api = Api(Settings(home=tmp_path / "home"))
    with api.client:
        yield api


@pytest.fixture(scope="module")
def media(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("api-media")
    made = {
        "clip": clips["cockatoo.mp4"],
        "copy": folder / "copy.mp4",
        "other": clips["bikes.mp4"],
        "photo": folder / "photo.jpg",
        "photo-copy": folder / "photo-copy.jpg",
    }
    ffmpeg("-i", made["clip"], "-t", "12", "-vf", "hflip,scale=480:-2", "-crf", "30", made["copy"])
    ffmpeg("-ss", "3", "-i", clips["bikes.mp4"], "-frames:v", "1", made["photo"])
    ffmpeg("-i", made["photo"], "-vf", "scale=iw/2:-2", "-q:v", "8", made["photo-copy"])
    return made


def _upload(path: Path, field: str = "file") -> dict[str, tuple[str, bytes]]:
    return {field: (path.name, path.read_bytes())}


def test_every_route_refuses_a_missing_or_bad_key(api: Api) -> None:
    client = api.client
    bad = {"Authorization": "Bearer fbk_00000000_not-a-key"}

    for method, path in (
        ("get", "/v1/banks"),
        ("post", "/v1/scan"),
        ("get", "/v1/incidents"),
        ("get", "/v1/audit"),
        ("get", "/c/banks"),
        ("get", "/m/raw_lookup?signal_type=pdq&signal=00"),
    ):
        assert getattr(client, method)(path).status_code == 401, path
        assert getattr(client, method)(path, headers=bad).status_code == 401, path

    api.fb.store.keys.revoke("service-key", "test")
    assert client.get("/v1/banks", headers=api.auth("service")).status_code == 401


def test_roles_grant_only_their_permissions(api: Api) -> None:
    client = api.client
    body = {"name": "attacks"}

    assert client.post("/v1/banks", json=body, headers=api.auth("partner")).status_code == 403
    assert client.post("/v1/banks", json=body, headers=api.auth("moderator")).status_code == 403
    assert client.get("/v1/incidents", headers=api.auth("service")).status_code == 403
    assert client.post("/v1/banks", json=body, headers=api.auth("admin")).status_code == 201
    assert client.get("/v1/banks", headers=api.auth("partner")).status_code == 200
    assert client.get("/v1/whoami", headers=api.auth("moderator")).json() == {
        "name": "moderator-key",
        "role": "moderator",
    }


def test_bank_settings_and_item_metadata_come_back_on_read(
    api: Api, media: dict[str, Path]
) -> None:
    client, admin = api.client, api.auth("admin")
    created = client.post(
        "/v1/banks", json={"name": "attacks", "metadata": {"source": "GIFCT"}}, headers=admin
    )
    changed = client.patch(
        "/v1/banks/attacks", json={"match_score": 0.7, "enabled": True}, headers=admin
    )
    added = client.post(
        "/v1/banks/attacks/items",
        files=_upload(media["clip"]),
        data={"name": "attack-1", "metadata": json.dumps({"incident": "2019-03-15"})},
        headers=api.auth("service"),
    )
    item = client.get("/v1/banks/attacks/items/attack-1", headers=api.auth("partner")).json()

    assert created.status_code == 201 and created.json()["metadata"] == {"source": "GIFCT"}
    assert changed.json()["match_score"] == 0.7
    assert added.status_code == 201, added.text
    assert item["metadata"] == {"incident": "2019-03-15"}
    assert {h["type"] for h in item["hashes"]} == {"md5", "sha256", "video"}
    assert client.get("/v1/banks/attacks", headers=admin).json()["item_count"] == 1
    removed = client.delete("/v1/banks/attacks/items/attack-1", headers=api.auth("service"))
    assert removed.status_code == 200
    assert client.get("/v1/banks/attacks/items/attack-1", headers=admin).status_code == 404


def test_scan_blocks_a_manipulated_copy_and_audits_it(api: Api, media: dict[str, Path]) -> None:
    api.fb.create_bank("attacks")
    api.fb.bank_file("attacks", media["clip"])

    copy = api.client.post("/v1/scan", files=_upload(media["copy"]), headers=api.auth("service"))
    other = api.client.post("/v1/scan", files=_upload(media["other"]), headers=api.auth("service"))

    assert copy.status_code == 200, copy.text
    assert copy.json()["verdict"] == "match" and copy.json()["decision"] == "block"
    assert copy.json()["matches"][0]["item"] == "cockatoo.mp4"
    assert other.json()["verdict"] == "no_match" and other.json()["decision"] == "allow"
    audit = api.client.get("/v1/audit", headers=api.auth("moderator")).json()
    assert audit[0]["action"] == "scan.block" and audit[0]["actor"] == "key:service-key"


def test_allow_list_match_suppresses_block_list_matches(api: Api, media: dict[str, Path]) -> None:
    api.fb.create_bank("attacks")
    api.fb.bank_file("attacks", media["clip"])
    api.fb.create_bank("news-footage", "allow")
    api.fb.bank_file("news-footage", media["clip"], "broadcast.mp4")
    photo_bank_id = api.fb.create_bank("photos").id
    assert photo_bank_id

    scanned = api.client.post("/v1/scan", files=_upload(media["copy"]), headers=api.auth("service"))

    assert scanned.json()["verdict"] == "no_match"
    assert scanned.json()["decision"] == "allow"
    assert scanned.json()["allowed_by"] == {"bank": "news-footage", "item": "broadcast.mp4"}


def test_disabled_bank_matches_nothing(api: Api, media: dict[str, Path]) -> None:
    api.fb.create_bank("attacks")
    api.fb.bank_file("attacks", media["clip"])
    api.client.patch("/v1/banks/attacks", json={"enabled": False}, headers=api.auth("admin"))

    scanned = api.client.post("/v1/scan", files=_upload(media["copy"]), headers=api.auth("service"))

    assert scanned.json()["verdict"] == "no_match" and scanned.json()["matches"] == []


def test_hma_routes_keep_hmas_shapes(api: Api, media: dict[str, Path]) -> None:
    client, key = api.client, api.auth("service")
    admin = api.auth("admin")

    created = client.post("/c/banks", json={"name": "TEST_BANK"}, headers=admin)
    added = client.post(
        "/c/bank/TEST_BANK/content", files=_upload(media["photo"], "photo"), headers=key
    )
    hashed = client.post("/h/hash", files=_upload(media["photo-copy"], "photo"), headers=key)
    pdq = hashed.json()["pdq"]
    raw = client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq}", headers=key)
    raw_distance = client.get(
        f"/m/raw_lookup?signal_type=pdq&signal={pdq}&include_distance=true", headers=key
    )
    by_hash = client.get(f"/m/lookup?signal_type=pdq&signal={pdq}", headers=key)
    by_file = client.post("/m/lookup", files=_upload(media["photo-copy"], "photo"), headers=key)

    assert created.status_code == 201
    assert created.json() == {"name": "TEST_BANK", "matching_enabled_ratio": 1.0}
    assert client.get("/c/banks", headers=key).json() == [
        {"name": "TEST_BANK", "matching_enabled_ratio": 1.0}
    ]
    content_id = added.json()["id"]
    assert set(added.json()["signals"]) == {"pdq", "video_md5", "video_sha256"}
    assert raw.json() == {"matches": [content_id]}
    assert raw_distance.json()["matches"][0]["content_id"] == content_id
    assert int(raw_distance.json()["matches"][0]["distance"]) <= 31
    assert by_hash.json() == ["TEST_BANK"]
    assert by_file.json() == {"pdq": ["TEST_BANK"]}

    signal = client.post("/c/bank/TEST_BANK/signal", json={"pdq": "f" * 64}, headers=key)
    assert signal.status_code == 200 and signal.json()["signals"] == {"pdq": "f" * 64}
    disabled = client.put("/c/bank/TEST_BANK", json={"enabled": False}, headers=admin)
    assert disabled.json()["matching_enabled_ratio"] == 0.0
    assert client.get(f"/m/lookup?signal_type=pdq&signal={pdq}", headers=key).json() == []
    deleted = client.delete(f"/c/bank/TEST_BANK/content/{content_id}", headers=key)
    assert deleted.json() == {"deleted": 1}
    assert client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq}", headers=key).json() == {
        "matches": []
    }


def test_hma_routes_take_keyless_clients_only_from_trusted_networks(tmp_path: Path) -> None:
    trusted = Api(Settings(home=tmp_path / "a", hma_trusted_networks="10.0.0.0/8"), "10.1.2.3")
    outside = Api(Settings(home=tmp_path / "b", hma_trusted_networks="10.0.0.0/8"), "192.0.2.7")

    with trusted.client, outside.client:
        assert trusted.client.get("/c/banks").status_code == 200
        assert trusted.client.get("/v1/banks").status_code == 401  # only the HMA routes
        assert outside.client.get("/c/banks").status_code == 401


def test_bad_uploads_are_refused_with_a_reason_and_the_service_stays_up(
    tmp_path: Path, media: dict[str, Path]
) -> None:
    api = Api(Settings(home=tmp_path / "home", api_max_upload_bytes=200_000))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(media["clip"].read_bytes()[:150_000])
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 100)
    key = api.auth("service")

    with api.client as client:
        huge = client.post("/v1/scan", files=_upload(media["clip"]), headers=key)
        broken = client.post("/v1/scan", files=_upload(corrupt), headers=key)
        garbage = client.post("/h/hash", files=_upload(noise, "photo"), headers=key)
        empty = client.post("/v1/hash", files={"file": ("x.jpg", b"")}, headers=key)
        fetch = client.get("/h/hash?url=http://127.0.0.1:9/x.jpg", headers=key)
        alive = client.get("/v1/banks", headers=key)

    assert huge.status_code == 413 and "limit" in huge.json()["detail"]
    assert broken.status_code == 422 and broken.json()["detail"]
    assert garbage.status_code == 422 and garbage.json()["detail"]
    assert empty.status_code == 422
    assert fetch.status_code == 422 and "not a public address" in fetch.json()["detail"]
    assert alive.status_code == 200
    assert list((tmp_path / "home" / "uploads").iterdir()) == []  # nothing left behind


def test_reviewers_work_the_incident_queue(api: Api) -> None:
    incidents = api.fb.store.incidents
    alert = IncidentAlert(20.0, 0.0, "model:weapons", "review", score=0.7)
    incidents.record_alert("stream-a", "rtmp://x/live/a", None, alert, "live")
    moderator = api.auth("moderator")

    queue = api.client.get("/v1/incidents", headers=moderator).json()
    confirm = api.client.post(
        "/v1/incidents/stream-a/decision", json={"decision": "confirm"}, headers=moderator
    )
    reject = api.client.post(
        "/v1/incidents/stream-a/decision",
        json={"decision": "reject", "note": "airsoft"},
        headers=moderator,
    )

    assert [i["name"] for i in queue] == ["stream-a"]
    assert confirm.status_code == 409  # nothing recorded, nothing to bank
    assert reject.status_code == 200 and reject.json()["status"] == "rejected"
    assert api.client.get("/v1/incidents", headers=moderator).json() == []
    missing = api.client.get("/v1/incidents/nobody", headers=moderator)
    assert missing.status_code == 404


def test_new_content_is_matchable_at_once_in_another_api_process(
    tmp_path: Path, media: dict[str, Path]
) -> None:
    settings = Settings(home=tmp_path / "home")
    first, second = Api(settings), Api(settings, make_keys=False)
    key_first = first.auth("admin")
    key_second = {"Authorization": f"Bearer {first.keys['service']}"}  # one store, one key table

    with first.client, second.client:
        first.client.post("/c/banks", json={"name": "SHARED"}, headers=key_first)
        hashed = first.client.post(
            "/h/hash", files=_upload(media["photo"], "photo"), headers=key_first
        )
        before = second.client.get(
            f"/m/lookup?signal_type=pdq&signal={hashed.json()['pdq']}", headers=key_second
        )
        first.client.post(
            "/c/bank/SHARED/content", files=_upload(media["photo"], "photo"), headers=key_first
        )
        after = second.client.get(
            f"/m/lookup?signal_type=pdq&signal={hashed.json()['pdq']}", headers=key_second
        )

    assert before.json() == [] and after.json() == ["SHARED"]


def test_openapi_document_is_served(api: Api) -> None:
    document = api.client.get("/openapi.json").json()

    assert {"/v1/scan", "/m/raw_lookup", "/c/bank/{bank_name}/content"} <= set(document["paths"])


def test_serve_runs_the_api_with_its_docs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    key = cli("keys", "create", "ops", "--role", "admin").stdout.strip()
    env = {**os.environ, "FIREBREAK_HOME": str(cli.home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "firebreak.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/docs", timeout=2) as docs:
                    assert docs.status == 200
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
        request = urllib.request.Request(
            f"{base}/v1/whoami", headers={"Authorization": f"Bearer {key}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read()) == {"name": "ops", "role": "admin"}
    finally:
        server.terminate()
        server.wait(10)
