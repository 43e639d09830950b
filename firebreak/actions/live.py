"""The actions a live alert can set off, as the settings configure them.

Each is named; the escalation policy (`live_policy`) says which names run at which level:

- cut: the stream is cut off at its server (nginx-rtmp's control endpoint, or a webhook).
- delay: the platform is asked to put the stream on a broadcast delay of `live_delay_s`, so that
  what a reviewer confirms never reaches viewers (a signed webhook: `{"action": "delay", ...}`).
- webhook: the alert itself is POSTed, signed, to `alert_webhook_url`.
- notify: reviewers are told that an incident waits in the review queue (`review_webhook_url`).
"""

from __future__ import annotations

from collections.abc import Callable

from firebreak.actions.cut import cutter_from_settings
from firebreak.actions.webhook import post_signed
from firebreak.live.session import LiveEvent
from firebreak.settings import Settings


def live_alert_actions(
    settings: Settings, incident: str | None = None
) -> dict[str, Callable[[LiveEvent], None]]:
    """The configured actions by name; `incident` names the stream's incident in notices."""
    actions: dict[str, Callable[[LiveEvent], None]] = {}
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    cutter = cutter_from_settings(settings)
    if cutter is not None:
        actions["cut"] = lambda event: cutter.cut(event.stream, _reason(event))
    delay_url = settings.live_delay_webhook_url
    if delay_url:
        delay_s = settings.live_delay_s
        actions["delay"] = lambda event: post_signed(
            delay_url,
            {
                "action": "delay",
                "stream": event.stream,
                "delay_s": delay_s,
                "reason": _reason(event),
                "incident": incident,
            },
            secret,
        )
    url = settings.alert_webhook_url
    if url:
        actions["webhook"] = lambda event: post_signed(
            url, event.to_json() | {"incident": incident}, secret
        )
    review_url = settings.review_webhook_url
    if review_url:
        actions["notify"] = lambda event: post_signed(
            review_url,
            {
                "action": "review",
                "incident": incident,
                "stream": event.stream,
                "level": event.level,
                "source": event.source,
                "score": event.score,
                "stream_time": round(event.stream_time, 3),
                "reason": _reason(event),
            },
            secret,
        )
    return actions


def _reason(event: LiveEvent) -> str:
    score = "?" if event.score is None else f"{event.score:.2f}"
    if event.source == "match":
        return f"matched {event.bank}/{event.item} (score {score})"
    return f"{event.source} risk {score} ({event.level})"
