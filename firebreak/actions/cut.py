"""Cutting a live stream off: nginx-rtmp's control endpoint built in, any server by webhook."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from firebreak.actions.webhook import post_signed
from firebreak.errors import ActionFailed
from firebreak.settings import Settings


class StreamCutter(Protocol):
    def cut(self, stream: str, reason: str) -> None:
        """End `stream` at its server; raises ActionFailed when the server would not."""


@dataclass(frozen=True)
class NginxRtmpCutter:
    """Drops the publisher through nginx-rtmp's `rtmp_control` endpoint (`/control` here)."""

    control_url: str
    timeout_s: float = 5.0

    def cut(self, stream: str, reason: str) -> None:
        app, name = rtmp_app_and_name(stream)
        query = urllib.parse.urlencode({"app": app, "name": name})
        url = f"{self.control_url.rstrip('/')}/drop/publisher?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                dropped = response.read().decode().strip()
        except (urllib.error.URLError, OSError) as exc:
            raise ActionFailed(stream, f"nginx-rtmp control failed: {exc}") from None
        if dropped in ("", "0"):
            raise ActionFailed(stream, "nginx-rtmp dropped no publisher")


@dataclass(frozen=True)
class WebhookCutter:
    """Asks the streaming platform to cut the stream: a signed POST of
    `{"action": "cut", "stream": URL, "reason": ...}`."""

    url: str
    secret: str | None = None

    def cut(self, stream: str, reason: str) -> None:
        post_signed(self.url, {"action": "cut", "stream": stream, "reason": reason}, self.secret)


def rtmp_app_and_name(stream: str) -> tuple[str, str]:
    """`rtmp://host/app/name` → (app, name)."""
    path = urllib.parse.urlparse(stream).path.strip("/")
    app, _, name = path.partition("/")
    if not app or not name:
        raise ActionFailed(stream, "not an rtmp://host/app/name URL")
    return app, name


def cutter_from_settings(settings: Settings) -> StreamCutter | None:
    """The stream cutter the settings name, or None when streams are not to be cut."""
    if settings.live_cut == "nginx-rtmp":
        if not settings.nginx_rtmp_control_url:
            raise ActionFailed("settings", "live_cut is nginx-rtmp but no control URL is set")
        return NginxRtmpCutter(settings.nginx_rtmp_control_url)
    if settings.live_cut == "webhook":
        if not settings.live_cut_webhook_url:
            raise ActionFailed("settings", "live_cut is webhook but no webhook URL is set")
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        return WebhookCutter(settings.live_cut_webhook_url, secret)
    return None
