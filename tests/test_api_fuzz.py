"""Schemathesis against the API's own OpenAPI document, in-process: no request, however odd,
gets a server error, and answers keep to the document.

The app runs over a Firebreak home with one bank holding one real image; path parameters and
hashes are drawn partly from what exists, so routes find something as well as nothing, and partly
from values that broke parsers before. Each run is Schemathesis's own (examples, coverage and
fuzzing phases; seeded and deterministic), bounded to a few dozen examples per operation so the
file takes well under two minutes on a small machine. Then the inputs fuzzing found, kept as
regression cases; HMA's free-form JSON bodies, which Schemathesis cannot aim at, under Hypothesis;
and junk uploads on every upload route. Names never reach DNS and nothing is fetched.
"""

from __future__ import annotations

import json
import socket
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi

from firebreak.api.app import create_app
from firebreak.service import Firebreak
from firebreak.settings import Settings

from .conftest import ffmpeg

SEED = 20_240_611
ADMIN_EXAMPLES = 40  # per operation, in the fuzzing phase (the coverage phase adds its own)
BAD_KEY_EXAMPLES = 8
BAD_KEY = "fbk_00000000_not-a-key"
# What Schemathesis checks in the admin run. Left out: status_code_conformance (the document
# names 2xx and 422 only; 401, 403, 404, 409 and 413 are refusals its text describes),
# positive_data_acceptance (valid input naming a bank that does not exist is rightly a 404) and
# negative_data_rejection (pydantic's lax mode takes `"enabled": 0` as false, harmlessly).
ADMIN_CHECKS = (
    "not_a_server_error",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
# Values that broke parsers and the database before, mixed into what Schemathesis generates:
# nesting past Python's recursion limit, numbers past 64 bits or past a float, NaN spelled out.
ODD_STRINGS = ["[" * 5000, "\x00", "nan", "-inf", "9" * 400, "a/b", "..", " ", "\u00e9" * 300]
ODD_INTEGERS = [2**63, 2**64, -(2**63) - 1, -1]
ODD_NUMBERS = [1e308, -1e308, 5e-324]
FEATURE = f"{'0' * 64},0,"  # a vPDQ feature string, less its timestamp
SPACED_HEX = "ab " * 42 + "ab"  # a thumbnail's 128 characters, but 43 bytes of hex


@dataclass
class Fuzzed:
    """The app under test, what its store holds, and an admin key."""

    app: FastAPI
    key: str
    image: Path
    bank: str
    item: str
    item_id: int
    hashes: dict[str, str]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def client(self) -> TestClient:
        return TestClient(self.app)  # not entered: the app's lifespan is Schemathesis's

    def bank_named(self, name: str) -> str:
        """A bank of this name (the fuzzing may have deleted any other)."""
        fb: Firebreak = self.app.state.fb
        if name not in fb.store.bank_rules():
            fb.create_bank(name)
        return name


@dataclass(frozen=True)
class Exchange:
    """One request Schemathesis sent, and the answer."""

    method: str
    uri: str
    headers: dict[str, str]
    body: bytes | None
    status: int
    answer: bytes


@dataclass
class Run:
    """What one Schemathesis run found: its problems, and every exchange."""

    problems: list[str] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)


_GETADDRINFO = socket.getaddrinfo


def _numeric_only(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """getaddrinfo without DNS: addresses as they are, any name as loopback (then refused)."""
    numeric = kwargs | {"flags": socket.AI_NUMERICHOST}
    try:
        return _GETADDRINFO(host, port, *args, **numeric)
    except socket.gaierror:
        return _GETADDRINFO("127.0.0.1", port, *args, **numeric)


def _offline(*_: Any, **__: Any) -> Any:
    raise urllib.error.URLError("the network is off in this test")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    folder = tmp_path_factory.mktemp("fuzz")
    image = folder / "photo.jpg"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1", image)
    # No live stream may start (a fuzzed URL would be watched); uploads over 1 MB are refused.
    settings = Settings(home=folder / "home", api_max_upload_bytes=1_000_000, live_max_streams=0)
    app = create_app(settings)
    fb: Firebreak = app.state.fb
    fb.create_bank("attacks")
    outcome = fb.bank_file("attacks", image, "photo.jpg")
    hashes = fb.hma_hashes(image) | {"video_md5": outcome.item.source_md5 or ""}
    _, key = fb.store.keys.create("fuzz-admin", "admin", "test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", _numeric_only)
        patch.setattr(urllib.request, "urlopen", _offline)
        try:
            yield Fuzzed(app, key, image, "attacks", outcome.item.name, outcome.item.id, hashes)
        finally:
            asgi.shutdown_lifespans()  # the app's lifespan ends: streams stopped, store closed
            fb.close()


def _config(fuzzed: Fuzzed, authorization: str, examples: int, checks: tuple[str, ...]) -> Any:
    signals = [
        fuzzed.hashes["pdq"],
        fuzzed.hashes["video_md5"],
        json.dumps([f"{FEATURE}0"]),
        f"{FEATURE}nan",
        "[" * 5000,
        SPACED_HEX,
    ]
    return {
        "seed": SEED,
        "workers": 1,
        "continue-on-failure": True,
        "cache": {"enabled": False},
        "headers": {"Authorization": authorization},
        "generation": {
            "mode": "all",
            "max-examples": examples,
            "deterministic": True,
            "no-shrink": True,
            "database": "none",
            "dictionaries": {
                "string": {"dictionary": "odd_strings", "probability": 0.2},
                "integer": {"dictionary": "odd_integers", "probability": 0.2},
                "number": {"dictionary": "odd_numbers", "probability": 0.2},
            },
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False} | {name: {"enabled": True} for name in checks},
        "dictionaries": {
            "banks": {"values": [fuzzed.bank, "no-such-bank"]},
            "items": {"values": [fuzzed.item, "no-such-item"]},
            "ids": {"values": [fuzzed.item_id, 0, 2**63, 2**64]},
            "types": {"values": ["pdq", "vpdq", "video_md5"]},
            "signals": {"values": signals},
            "odd_strings": {"values": ODD_STRINGS},
            "odd_integers": {"values": ODD_INTEGERS},
            "odd_numbers": {"values": ODD_NUMBERS},
        },
        "parameters": {
            "path.bank": {"dictionary": "banks", "probability": 0.5},
            "path.bank_name": {"dictionary": "banks", "probability": 0.5},
            "path.item": {"dictionary": "items", "probability": 0.5},
            "path.content_id": {"dictionary": "ids", "probability": 0.5},
            "path.review_id": {"dictionary": "ids", "probability": 0.5},
            "query.signal_type": {"dictionary": "types", "probability": 0.5},
            "query.signal": {"dictionary": "signals", "probability": 0.5},
            "body.signal_type": {"dictionary": "types", "probability": 0.5},
            "body.value": {"dictionary": "signals", "probability": 0.5},
            "query.wait_s": 0,  # the exchange feed long-polls for up to this long
        },
    }


def _run(app: FastAPI, config: dict[str, Any]) -> Run:
    """One Schemathesis run over `app`'s OpenAPI document, as its CLI would run it."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=schemathesis.Config.from_dict(config)
    )
    run = Run()
    seen: set[tuple[str, str, str]] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    info = check.failure_info
                    if info is None:
                        continue
                    failure = info.failure
                    key = (str(event.label), check.name, failure.title)
                    if key not in seen:
                        seen.add(key)
                        run.problems.append(
                            f"{event.label}: {check.name}: {failure.title}\n"
                            f"{failure.message}\n{info.code_sample}"
                        )
            for interaction in event.recorder.interactions.values():
                request, response = interaction.request, interaction.response
                if response is not None:
                    headers = {name: values[0] for name, values in request.headers.items()}
                    run.exchanges.append(
                        Exchange(
                            request.method,
                            request.uri,
                            headers,
                            request.body,
                            response.status_code,
                            response.content or b"",
                        )
                    )
        elif isinstance(event, events.NonFatalError):
            # An exception the app let out: a server error (or a harness error), with its cause.
            run.problems.append(
                f"{event.label}: {event.info.title}\n"
                f"{''.join(traceback.format_exception(event.value))}\n{event.info}"
            )
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            run.problems += [f"after the run: {f.title}\n{f.message}" for f in event.failures]
    return run


# Schemathesis


def test_no_server_errors_and_answers_keep_to_the_document(fuzzed: Fuzzed) -> None:
    run = _run(
        fuzzed.app,
        _config(fuzzed, f"Bearer {fuzzed.key}", ADMIN_EXAMPLES, ADMIN_CHECKS),
    )

    assert not run.problems, "\n\n".join(run.problems)
    statuses = {exchange.status for exchange in run.exchanges}
    assert statuses & {200, 201}, "nothing was ever accepted: the run tested only refusals"
    assert max(statuses) < 500


def test_without_a_valid_key_every_route_refuses(fuzzed: Fuzzed) -> None:
    run = _run(
        fuzzed.app,
        _config(fuzzed, f"Bearer {BAD_KEY}", BAD_KEY_EXAMPLES, ("not_a_server_error",)),
    )

    assert not run.problems, "\n\n".join(run.problems)
    assert any("Authorization" not in e.headers for e in run.exchanges), "no keyless request"
    # FastAPI reads a body before it checks the key, and refuses a method a path does not have
    # before any route runs: those refusals, and only those, come before the key's. So a request
    # refused otherwise than for its key gets the very same answer with a valid key.
    client = fuzzed.client
    for exchange in run.exchanges:
        if exchange.status in (401, 403):
            continue
        headers = exchange.headers | fuzzed.admin
        again = client.request(
            exchange.method, exchange.uri, headers=headers, content=exchange.body
        )
        assert (again.status_code, again.content) == (exchange.status, exchange.answer), (
            f"{exchange.method} {exchange.uri} answered {exchange.status} without a valid key: "
            f"{exchange.answer[:300]!r}"
        )


def test_the_run_reports_a_server_error() -> None:
    """The harness itself: a route that fails is reported, with its exception."""
    broken = FastAPI()

    @broken.get("/boom")
    def boom(n: int = 0) -> dict[str, int]:
        raise RuntimeError(f"broken on purpose ({n})")

    config = {
        "seed": SEED,
        "workers": 1,
        "cache": {"enabled": False},
        "generation": {"max-examples": 2, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
    run = _run(broken, config)

    assert run.problems and "broken on purpose" in "\n".join(run.problems)


# What fuzzing found (each was a 500, or a 4xx that left a bank or the index unusable)

DEEP = "[" * 100_000
FOUND: list[tuple[str, str, dict[str, Any], int]] = [
    # Row ids past 64 bits overflowed SQLite.
    ("DELETE", f"/c/bank/regress/content/{2**64}", {}, 422),
    ("GET", f"/v1/reviews/{2**64}", {}, 422),
    # HMA's enabled_ratio of any JSON type, and bank names no path can address.
    ("POST", "/c/banks", {"json": {"name": "R1", "enabled_ratio": None}}, 400),
    ("POST", "/c/banks", {"json": {"name": "R2", "enabled_ratio": [1]}}, 400),
    ("POST", "/c/banks", {"json": {"name": "R3", "enabled_ratio": 10**400}}, 400),
    ("PUT", "/c/bank/regress", {"content": '{"enabled_ratio": NaN}'}, 400),
    ("POST", "/c/banks", {"json": {"name": "a/b"}}, 400),
    ("POST", "/c/banks", {"json": {"name": "a\x00b"}}, 400),
    # vPDQ nested past the recursion limit, or with NaN and infinite timestamps.
    ("POST", "/v1/lookup", {"json": {"signal_type": "vpdq", "value": DEEP}}, 422),
    ("GET", f"/m/raw_lookup?signal_type=vpdq&signal={FEATURE}nan", {}, 422),
    ("POST", "/c/bank/regress/signal", {"json": {"vpdq": DEEP}}, 400),
    ("POST", "/c/bank/regress/signal", {"json": {"vpdq": f"{FEATURE}inf"}}, 400),
    # A thumbnail with spaces between its hex digits was banked, and broke every scan after.
    ("POST", "/c/bank/regress/signal", {"json": {"firebreak_thumb": SPACED_HEX}}, 422),
    # Metadata JSON cannot give back: NaN, Infinity, or nesting too deep to serialise.
    ("POST", "/v1/banks", {"content": '{"name": "r4", "metadata": {"x": NaN}}'}, 422),
    ("PATCH", "/v1/banks/regress", {"content": '{"metadata": {"x": Infinity}}'}, 422),
    (
        "POST",
        "/v1/banks",
        {"json": {"name": "r5", "metadata": {"x": json.loads("[" * 40 + "]" * 40)}}},
        422,
    ),
    ("POST", "/v1/banks/regress/items", {"data": {"metadata": DEEP}}, 422),
    ("POST", "/v1/banks/regress/items", {"data": {"metadata": '{"x": 1e999}'}}, 422),
]


@pytest.mark.parametrize(("method", "path", "request_args", "status"), FOUND)
def test_inputs_fuzzing_found_are_refused(
    fuzzed: Fuzzed, method: str, path: str, request_args: dict[str, Any], status: int
) -> None:
    fuzzed.bank_named("regress")
    headers = fuzzed.admin | (
        {"Content-Type": "application/json"} if "content" in request_args else {}
    )
    if "data" in request_args:
        request_args = request_args | {"files": {"file": ("photo.jpg", fuzzed.image.read_bytes())}}

    answer = fuzzed.client.request(method, path, headers=headers, **request_args)

    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
    client = fuzzed.client
    assert client.get("/v1/banks", headers=fuzzed.admin).status_code == 200
    scanned = client.post(
        "/v1/scan", files={"file": ("photo.jpg", fuzzed.image.read_bytes())}, headers=fuzzed.admin
    )
    assert scanned.status_code == 200, scanned.text


def test_hma_video_signals_are_banked_and_found(fuzzed: Fuzzed) -> None:
    bank = fuzzed.bank_named("regress-vpdq")
    signal = json.dumps([f"{'a' * 64},80,0.000", f"{'b' * 64},70,1.000"])
    client = fuzzed.client

    added = client.post(f"/c/bank/{bank}/signal", json={"vpdq": signal}, headers=fuzzed.admin)
    found = client.get(
        "/m/raw_lookup", params={"signal_type": "vpdq", "signal": signal}, headers=fuzzed.admin
    )

    assert added.status_code == 200, added.text
    assert added.json()["signals"] == {"vpdq": signal}
    assert added.json()["id"] in found.json()["matches"]


# HMA's routes take free-form JSON objects, whose keys Schemathesis never guesses.

_HASHES = st.sampled_from(
    ["f" * 64, "F" * 64 + "\n", "[" * 3000, f"{FEATURE}0", f"{FEATURE}nan", json.dumps([])]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | _HASHES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_HMA_FIELDS = {
    "name": st.from_regex(r"[A-Z][A-Z0-9_]{0,7}", fullmatch=True) | _JSON,
    **{
        key: _JSON
        for key in ("enabled", "enabled_ratio", "pdq", "vpdq", "video_md5", "firebreak_thumb")
    },
}
_HMA_BODIES = st.fixed_dictionaries({}, optional=_HMA_FIELDS) | _JSON


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(body=_HMA_BODIES)
def test_hma_json_bodies_of_any_shape_get_no_server_error(fuzzed: Fuzzed, body: Any) -> None:
    bank = fuzzed.bank_named("hma-bodies")
    text = json.dumps(body)  # NaN and Infinity as Python writes them
    headers = fuzzed.admin | {"Content-Type": "application/json"}
    client = fuzzed.client

    for method, path in (
        ("POST", "/c/banks"),
        ("PUT", f"/c/bank/{bank}"),
        ("POST", f"/c/bank/{bank}/signal"),
    ):
        answer = client.request(method, path, content=text, headers=headers)

        assert answer.status_code < 500, f"{method} {path} {text[:200]}: {answer.text}"
        if answer.status_code >= 400:
            assert answer.json()["detail"]
    assert client.get("/c/banks", headers=fuzzed.admin).status_code == 200


# Junk uploads


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"\x00" * 64,
        b"\xff\xd8\xff\xe0" + b"\x00" * 200,  # a JPEG's start, nothing after
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\xea`\x00\x00\xea`\x08\x02\x00\x00\x00",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",  # an MP4's first box only
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"GIF89a" + bytes(range(256)),
    ],
    ids=["empty", "zeros", "jpeg-head", "png-60000x60000", "mp4-ftyp", "svg", "gif-noise"],
)
def test_junk_uploads_are_refused_on_every_upload_route(fuzzed: Fuzzed, junk: bytes) -> None:
    bank = fuzzed.bank_named("junk")
    routes = (
        ("/v1/hash", "file"),
        ("/v1/scan", "file"),
        (f"/v1/banks/{bank}/items", "file"),
        ("/h/hash", "photo"),
        ("/m/lookup", "video"),
        (f"/c/bank/{bank}/content", "photo"),
    )
    client = fuzzed.client
    for route, field_name in routes:
        answer = client.post(route, files={field_name: ("upload.jpg", junk)}, headers=fuzzed.admin)

        assert 400 <= answer.status_code < 500, f"{route}: {answer.status_code} {answer.text}"
        assert answer.json()["detail"], route
    fb: Firebreak = fuzzed.app.state.fb
    assert not any((fb.settings.home / "uploads").iterdir())  # nothing left behind
