"""Webhooks: a JSON body signed with HMAC-SHA256, posted with retries and back-off.

The receiver checks `X-Firebreak-Signature: sha256=<hex>` against the body with the shared secret
before it acts; `X-Firebreak-Timestamp` lets it refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from firebreak.errors import ActionFailed, DecisionRefused

SIGNATURE_HEADER = "X-Firebreak-Signature"
TIMESTAMP_HEADER = "X-Firebreak-Timestamp"


def sign_body(secret: str, timestamp: str, body: bytes) -> str:
    """The signature of `body` sent at `timestamp`: HMAC-SHA256 over `timestamp.body`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def post_signed(
    url: str,
    payload: Mapping[str, object],
    secret: str | None,
    *,
    attempts: int = 3,
    backoff_s: float = 0.5,
    timeout_s: float = 5.0,
) -> None:
    """POST `payload` as JSON to `url`, signed when there is a secret; retries on failure
    (network errors and 5xx), raises ActionFailed when every attempt failed or on a 4xx."""
    body = json.dumps(payload, sort_keys=True).encode()
    last_error = ""
    for attempt in range(attempts):
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if secret:
            headers[SIGNATURE_HEADER] = sign_body(secret, timestamp, body)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s):
                return
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
            if exc.code < 500:
                break  # the receiver refused it: sending it again changes nothing
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(getattr(exc, "reason", exc))
        if attempt + 1 < attempts:
            time.sleep(backoff_s * 2**attempt)
    raise ActionFailed(url, f"webhook failed: {last_error}")


def tell_platform(
    url: str | None, secret: str | None, key_material: str, payload: Mapping[str, object]
) -> None:
    """POST a scan's decision to the platform's `scan_webhook_url`, signed, with an
    `idempotency_key` made from `key_material`: the same decision on the same content has the
    same key, so receivers drop repeats."""
    if not url:
        raise DecisionRefused("webhook", "the rule says webhook but no scan_webhook_url is set")
    key = hashlib.sha256(key_material.encode()).hexdigest()
    post_signed(url, {"idempotency_key": key, **payload}, secret)
