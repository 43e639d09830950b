"""Signed feed batches between Firebreak instances.

A publisher answers a partner's pull with an envelope `{"batch": TEXT, "signature": B64}`: TEXT is
the JSON of `{"format", "publisher", "bank", "after", "through", "issued_at", "events"}` and the
signature is Ed25519 over TEXT's UTF-8 bytes. A partner opens the batch only when the signature
verifies against the publisher key it was configured with, the publisher and bank are the ones it
asked, and the batch starts exactly where the partner's cursor stands: an altered batch fails the
signature, a replayed one starts before the cursor, a skipped one after it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firebreak.errors import FirebreakError
from firebreak.exchange.evidence import public_key_fingerprint

FEED_FORMAT = "firebreak-feed/1"
_MAX_BATCH_BYTES = 256 * 1024 * 1024


class BatchRefused(FirebreakError):
    """A batch that is not applied: unsigned, altered, replayed, out of order, or not ours."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"feed batch refused: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Batch:
    publisher: str
    bank: str
    after: int
    through: int
    issued_at: str
    events: tuple[Mapping[str, Any], ...]


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise BatchRefused(f"the publisher key is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BatchRefused("the publisher key is not an Ed25519 key")
    return key


def sign_batch(
    key: Ed25519PrivateKey, bank: str, after: int, events: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """The envelope of the events after cursor `after` of `bank`, signed by the publisher."""
    through = int(events[-1]["cursor"]) if events else after
    text = json.dumps(
        {
            "format": FEED_FORMAT,
            "publisher": public_key_fingerprint(key.public_key()),
            "bank": bank,
            "after": after,
            "through": through,
            "issued_at": datetime.now(UTC).isoformat(),
            "events": list(events),
        },
        sort_keys=True,
    )
    signature = base64.b64encode(key.sign(text.encode())).decode()
    return {"batch": text, "signature": signature}


def open_batch(envelope: object, publisher_key: str, bank: str, cursor: int) -> Batch:
    """The batch in `envelope`, checked against the publisher's key, the bank asked for and the
    partner's cursor; BatchRefused (with the reason) otherwise."""
    if not isinstance(envelope, Mapping):
        raise BatchRefused("not a batch envelope")
    text, signature = envelope.get("batch"), envelope.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str) or not signature:
        raise BatchRefused("unsigned")
    if len(text) > _MAX_BATCH_BYTES:
        raise BatchRefused("too large")
    key = load_public_key(publisher_key)
    try:
        key.verify(base64.b64decode(signature, validate=True), text.encode())
    except (InvalidSignature, binascii.Error, ValueError):
        raise BatchRefused("the signature does not verify with the publisher's key") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        raise BatchRefused("signed, but not JSON") from None
    if not isinstance(body, dict) or body.get("format") != FEED_FORMAT:
        raise BatchRefused(f"not a {FEED_FORMAT} batch")
    if body.get("publisher") != public_key_fingerprint(key):
        raise BatchRefused("signed by the key, but names another publisher")
    if body.get("bank") != bank:
        raise BatchRefused(f"for bank {body.get('bank')!r}, not {bank!r}")
    after, through, events = body.get("after"), body.get("through"), body.get("events")
    if not isinstance(after, int) or not isinstance(through, int) or not isinstance(events, list):
        raise BatchRefused("malformed cursors or events")
    if after < cursor:
        raise BatchRefused(f"replayed: it starts at {after}, already applied up to {cursor}")
    if after > cursor:
        raise BatchRefused(f"out of order: it starts at {after}, expected {cursor}")
    last = after
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("cursor"), int):
            raise BatchRefused("malformed event")
        if event["cursor"] <= last:
            raise BatchRefused("events out of order")
        if event.get("kind") not in ("add", "remove", "opinion"):
            raise BatchRefused(f"unknown event kind {event.get('kind')!r}")
        last = event["cursor"]
    if through != last:
        raise BatchRefused("its last cursor does not match its events")
    return Batch(
        str(body["publisher"]), bank, after, through, str(body.get("issued_at")), tuple(events)
    )
