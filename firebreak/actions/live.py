"""The actions a live alert sets off, as the settings ask: an alert webhook, a stream cut."""

from __future__ import annotations

from collections.abc import Callable

from firebreak.actions.cut import cutter_from_settings
from firebreak.actions.webhook import post_signed
from firebreak.live.session import LiveEvent
from firebreak.settings import Settings


def live_alert_actions(settings: Settings) -> dict[str, Callable[[LiveEvent], None]]:
    """Named actions to run on every live alert, in order: cut first, then tell."""
    actions: dict[str, Callable[[LiveEvent], None]] = {}
    cutter = cutter_from_settings(settings)
    if cutter is not None:
        actions["cut"] = lambda event: cutter.cut(
            event.stream, f"matched {event.bank}/{event.item} (score {event.score})"
        )
    url = settings.alert_webhook_url
    if url:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        actions["webhook"] = lambda event: post_signed(url, event.to_json(), secret)
    return actions
