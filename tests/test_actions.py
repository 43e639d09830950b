"""Signed webhooks: the receiver can check who sent them; failures are retried, refusals not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from firebreak.actions.cut import NginxRtmpCutter, rtmp_app_and_name
from firebreak.actions.live import live_alert_actions
from firebreak.actions.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    post_signed,
    sign_body,
)
from firebreak.errors import ActionFailed
from firebreak.live.session import LiveEvent
from firebreak.settings import Settings


class Receiver:
    """A loopback HTTP server that answers with the statuses it is given, in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    receiver = Receiver(list(getattr(request, "param", [])))
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()


def test_webhook_body_is_signed_with_the_shared_secret(receiver: Receiver) -> None:
    post_signed(receiver.url, {"event": "alert", "item": "x.mp4"}, "s3cret")

    headers, body = receiver.requests[0]
    assert json.loads(body) == {"event": "alert", "item": "x.mp4"}
    assert headers[SIGNATURE_HEADER] == sign_body("s3cret", headers[TIMESTAMP_HEADER], body)
    assert headers[SIGNATURE_HEADER] != sign_body("other", headers[TIMESTAMP_HEADER], body)


@pytest.mark.parametrize("receiver", [[503, 500]], indirect=True)
def test_webhook_is_retried_after_server_errors(receiver: Receiver) -> None:
    post_signed(receiver.url, {"n": 1}, None, attempts=3, backoff_s=0.01)

    assert len(receiver.requests) == 3


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_webhook_refused_by_the_receiver_is_not_retried(receiver: Receiver) -> None:
    with pytest.raises(ActionFailed, match="HTTP 400"):
        post_signed(receiver.url, {"n": 1}, None, attempts=3, backoff_s=0.01)

    assert len(receiver.requests) == 1


def test_unreachable_webhook_fails_after_its_attempts() -> None:
    with pytest.raises(ActionFailed):
        post_signed("http://127.0.0.1:9/hook", {"n": 1}, None, attempts=2, backoff_s=0.01)


def test_rtmp_url_names_the_app_and_stream() -> None:
    assert rtmp_app_and_name("rtmp://example.org:1935/live/key-1") == ("live", "key-1")
    with pytest.raises(ActionFailed):
        rtmp_app_and_name("rtmp://example.org/live")


def test_cutting_through_an_unreachable_control_endpoint_fails_clearly() -> None:
    cutter = NginxRtmpCutter("http://127.0.0.1:9/control", timeout_s=1.0)

    with pytest.raises(ActionFailed, match="nginx-rtmp control failed"):
        cutter.cut("rtmp://127.0.0.1/live/x", "test")


def test_live_actions_ask_for_a_delay_and_tell_reviewers_signed(receiver: Receiver) -> None:
    settings = Settings(
        live_delay_webhook_url=receiver.url + "/delay",
        review_webhook_url=receiver.url + "/review",
        live_delay_s=45.0,
        webhook_secret=SecretStr("s3cret"),
    )
    event = LiveEvent("alert", "rtmp://h/live/s", 31.5, 0.0, "impulse", score=0.62, level="review")

    actions = live_alert_actions(settings, incident="s-20261130T050000Z")
    actions["delay"](event)
    actions["notify"](event)

    assert sorted(actions) == ["delay", "notify"]  # no cutter or alert webhook configured
    (delay_headers, delay), (_, notice) = receiver.requests
    assert json.loads(delay) == {
        "action": "delay",
        "stream": "rtmp://h/live/s",
        "delay_s": 45.0,
        "reason": "impulse risk 0.62 (review)",
        "incident": "s-20261130T050000Z",
    }
    assert delay_headers[SIGNATURE_HEADER] == sign_body(
        "s3cret", delay_headers[TIMESTAMP_HEADER], delay
    )
    assert json.loads(notice)["action"] == "review"
    assert json.loads(notice)["incident"] == "s-20261130T050000Z"
