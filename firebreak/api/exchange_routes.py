"""Sharing with partner instances (`/v1/feed`): the signed feed of shared banks, the publisher's
key, and partners' opinions on shared items. Partner keys are scoped to the banks shared with
them (`firebreak keys create NAME --role partner --bank BANK`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from firebreak.api.auth import Caller, require
from firebreak.sharing import Publisher

router = APIRouter(prefix="/v1/feed", tags=["sharing"])


class OpinionIn(BaseModel):
    item: str = Field(min_length=1, max_length=200, description="The item id in the feed.")
    opinion: Literal["false_positive", "confirmed"]
    note: str = Field(default="", max_length=5000)


def _publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


def _in_scope(caller: Caller, bank: str) -> None:
    if caller.banks is not None and bank not in caller.banks:
        raise HTTPException(403, f"this key may not pull bank {bank}")


@router.get("/key", summary="The publisher's Ed25519 public key, which signs every batch")
def key(request: Request, _: Annotated[Caller, Depends(require("exchange"))]) -> dict[str, str]:
    publisher = _publisher(request)
    return {"public_key": publisher.public_key, "fingerprint": publisher.fingerprint}


@router.get("/{bank}", summary="A signed batch of a shared bank's changes after a cursor")
def feed(
    bank: str,
    request: Request,
    caller: Annotated[Caller, Depends(require("exchange"))],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    wait_s: Annotated[float, Query(ge=0.0, le=30.0)] = 0.0,
) -> dict[str, str]:
    """With `wait_s`, waits (long-polls) up to that long for the first change after `after`."""
    _in_scope(caller, bank)
    return _publisher(request).batch(bank, after, limit, wait_s, request.app.state.stopping)


@router.post("/{bank}/opinions", summary="A partner's opinion on a shared item")
def opinion(
    bank: str,
    body: OpinionIn,
    request: Request,
    caller: Annotated[Caller, Depends(require("exchange"))],
) -> dict[str, object]:
    _in_scope(caller, bank)
    fb = _publisher(request).fb
    with request.app.state.lock:
        return fb.store.feed.record_opinion(
            bank,
            body.item,
            caller.name,
            body.opinion,
            body.note,
            fb.settings.exchange_false_positives_to_disable,
        )
