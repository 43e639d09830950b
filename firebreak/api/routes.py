"""Firebreak's own HTTP API (`/v1`): banks, hashing, lookup, scanning, incidents, audit.

Each route is a thin shell over the service functions the CLI uses; the store and index are
used under one lock (the index is updated in place when banks change).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import AfterValidator, BaseModel, Field

from firebreak.api.auth import Caller, firebreak_of, require
from firebreak.api.uploads import saved_upload
from firebreak.incidents import IncidentDesk
from firebreak.index import hex_codes
from firebreak.posts import PostDesk, scanner_for
from firebreak.reviews import ReviewDesk
from firebreak.scale.peers import MAX_CODES as MAX_PEER_CODES
from firebreak.service import Firebreak
from firebreak.signals import file_digests
from firebreak.store import INCIDENT_STATUSES
from firebreak.store.repository import UNSET
from firebreak.store.reviews import REVIEW_STATUSES
from firebreak.text.onscreen import ScreenReader
from firebreak.text.scan import MAX_POST_CHARS

router = APIRouter(prefix="/v1")

Fb = Annotated[Firebreak, Depends(firebreak_of)]
# Row ids are 64-bit; a larger number is refused (422) rather than overflowing the database.
RowId = Annotated[int, PathParam(ge=0, le=2**63 - 1)]
# A kept media file, typed by its name.
_MEDIA_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The media file.",
        "content": {"image/*": {}, "video/*": {}, "application/octet-stream": {}},
    }
}
_METADATA_DEPTH = 32


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata that JSON can carry back: nested at most `_METADATA_DEPTH` deep, and no NaN or
    infinite numbers (JSON has no form for them)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("metadata numbers must be finite (JSON has no NaN or Infinity)")
        if isinstance(item, dict | list):
            if depth >= _METADATA_DEPTH:
                raise ValueError(f"metadata is nested deeper than {_METADATA_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_json_safe)]


class BankIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    kind: Literal["block", "allow"] = "block"
    metadata: Metadata = Field(default_factory=dict)


class BankChange(BaseModel):
    kind: Literal["block", "allow"] | None = None
    enabled: bool | None = None
    match_score: float | None = Field(default=None, ge=0.0, le=1.0)
    review_score: float | None = Field(default=None, ge=0.0, le=1.0)
    metadata: Metadata | None = None


class LookupIn(BaseModel):
    signal_type: str = Field(min_length=1, max_length=64, examples=["pdq", "vpdq", "video_md5"])
    value: str = Field(min_length=1, max_length=2_000_000)


class ReviewDecisionIn(BaseModel):
    decision: Literal["confirm", "reject", "escalate"]
    note: str = Field(default="", max_length=5000)
    bank: str | None = Field(
        default=None, min_length=1, max_length=200, description="confirm: the block bank."
    )
    allow_bank: str | None = Field(
        default=None, min_length=1, max_length=200, description="reject: allow-list it here."
    )


class DecisionIn(BaseModel):
    decision: Literal["confirm", "reject", "escalate"]
    note: str = Field(default="", max_length=5000)
    bank: str = Field(default="incidents", min_length=1, max_length=200)


def _metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPException(422, f"metadata is not JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(422, "metadata is nested too deeply") from None
    if not isinstance(value, dict):
        raise HTTPException(422, "metadata must be a JSON object")
    try:
        return _json_safe(value)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/whoami", summary="The calling key's name and role")
def whoami(caller: Annotated[Caller, Depends(require("match"))]) -> dict[str, str]:
    return {"name": caller.name, "role": caller.role}


# Banks


@router.get("/banks", summary="List banks")
def list_banks(
    fb: Fb, _: Annotated[Caller, Depends(require("banks:read"))]
) -> list[dict[str, object]]:
    return [bank.to_json() for bank in fb.list_banks()]


@router.post("/banks", status_code=201, summary="Create a bank (block or allow list)")
def create_bank(
    body: BankIn,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("banks:admin"))],
) -> dict[str, object]:
    with request.app.state.lock:
        return fb.create_bank(body.name, body.kind, caller.actor, body.metadata).to_json()


@router.get("/banks/{bank}", summary="A bank and its settings")
def get_bank(
    bank: str, fb: Fb, _: Annotated[Caller, Depends(require("banks:read"))]
) -> dict[str, object]:
    return fb.store.get_bank(bank).to_json()


@router.patch("/banks/{bank}", summary="Configure a bank: kind, enabled, thresholds, metadata")
def configure_bank(
    bank: str,
    body: BankChange,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("banks:admin"))],
) -> dict[str, object]:
    given = body.model_fields_set
    with request.app.state.lock:
        return fb.store.configure_bank(
            bank,
            caller.actor,
            kind=body.kind,
            enabled=body.enabled,
            match_score=body.match_score if "match_score" in given else UNSET,
            review_score=body.review_score if "review_score" in given else UNSET,
            metadata=body.metadata,
        ).to_json()


@router.delete("/banks/{bank}", summary="Delete a bank and its items")
def delete_bank(
    bank: str, request: Request, fb: Fb, caller: Annotated[Caller, Depends(require("banks:admin"))]
) -> dict[str, str]:
    with request.app.state.lock:
        fb.delete_bank(bank, caller.actor)
    return {"deleted": bank}


@router.get("/banks/{bank}/items", summary="The items of a bank")
def list_items(
    bank: str,
    fb: Fb,
    _: Annotated[Caller, Depends(require("banks:read"))],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, object]]:
    return [item.to_json() for item in fb.store.items(bank)[offset : offset + limit]]


@router.post("/banks/{bank}/items", status_code=201, summary="Hash an upload and bank it")
def add_item(
    bank: str,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("banks:write"))],
    file: Annotated[UploadFile, File(description="The media to bank.")],
    name: Annotated[str | None, Form(max_length=500)] = None,
    metadata: Annotated[str | None, Form(description="A JSON object kept with the item.")] = None,
) -> dict[str, object]:
    extra = _metadata(metadata)
    fb.store.get_bank(bank)  # 404 before the upload is hashed
    with saved_upload(file, fb.settings) as path, request.app.state.lock:
        # Reviewers see banked items beside what matched them: the media is kept, once banked.
        sha256 = file_digests(path).sha256
        kept = fb.media_path(path, sha256)
        outcome = fb.bank_file(
            bank, path, name or path.name, actor=caller.actor, metadata=extra, source_file=str(kept)
        )
        fb.keep_media(path, sha256)
    return outcome.item.to_json() | {"created": outcome.created}


@router.get("/banks/{bank}/items/{item}", summary="An item, its metadata and its hashes")
def get_item(
    bank: str, item: str, fb: Fb, _: Annotated[Caller, Depends(require("banks:read"))]
) -> dict[str, object]:
    found = fb.store.item(bank, item)
    hashes = [
        {"type": v.signal_type, "value": v.value, "quality": v.quality, "timestamp": v.timestamp}
        for v in fb.store.item_signals(found.id)
        if v.signal_type in ("md5", "sha256", "pdq", "video")
    ]
    return found.to_json() | {"hashes": hashes}


@router.delete("/banks/{bank}/items/{item}", summary="Remove an item from a bank")
def remove_item(
    bank: str,
    item: str,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("banks:write"))],
) -> dict[str, str]:
    with request.app.state.lock:
        fb.remove_item(bank, item, caller.actor)
    return {"deleted": item}


# Hashing, lookup, scanning


@router.post("/hash", summary="Hash an upload: industry-format strings per signal")
def hash_upload(
    fb: Fb,
    _: Annotated[Caller, Depends(require("match"))],
    file: Annotated[UploadFile, File(description="An image or a video.")],
) -> dict[str, object]:
    with saved_upload(file, fb.settings) as path:
        signals = fb.hash_for_bank(path)
    strings: dict[str, object] = {"md5": signals.digests.md5, "sha256": signals.digests.sha256}
    if signals.is_video:
        strings["vpdq"] = [f"{f.hex},{f.quality},{f.timestamp:.3f}" for f in signals.frames]
    else:
        strings["pdq"] = f"{signals.frames[0].hex},{signals.frames[0].quality}"
    return {"file": file.filename, "media_kind": signals.info.kind.value, "signals": strings}


@router.post("/lookup", summary="Look one hash up in the banks")
def lookup(
    body: LookupIn, request: Request, fb: Fb, _: Annotated[Caller, Depends(require("match"))]
) -> dict[str, object]:
    with request.app.state.lock:
        hits = fb.lookup_hash(body.signal_type, body.value)
        rules = fb.store.bank_rules()
    return {
        "matches": [
            {
                "bank": h.item.bank,
                "bank_kind": rules[h.item.bank].kind,
                "item": h.item.name,
                "distance": h.distance,
            }
            for h in hits
            if h.item.bank in rules and rules[h.item.bank].enabled
        ]
    }


@router.post("/scan", summary="Hash, match, decide and act on an upload in one call")
def scan(
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("match"))],
    file: Annotated[UploadFile, File(description="An image or a video.")],
) -> dict[str, object]:
    """The decision (block, hold, allow) follows the action rules; a held upload waits in the
    review queue (`review_id`)."""
    subject = file.filename or "upload"
    with saved_upload(file, fb.settings) as path, request.app.state.lock:
        outcome = ReviewDesk(fb).scan(path, subject, caller.actor)
    return outcome.to_json() | {"file": subject}


# The frame index, for peer nodes


class FrameSearchIn(BaseModel):
    codes: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]] = Field(
        max_length=MAX_PEER_CODES
    )
    max_distance: int = Field(ge=0, le=64)


@router.post("/index/frames/search", summary="Search this node's shard of the frame index")
def search_frame_shard(
    body: FrameSearchIn,
    request: Request,
    fb: Fb,
    _: Annotated[Caller, Depends(require("match"))],
) -> dict[str, object]:
    """Hits `[query_row, signal_id, distance]` of 256-bit codes within `max_distance`, in this
    node's own index only (never fanned out again): how a node sharding the index over peers
    (`FIREBREAK_INDEX_SHARD`, `FIREBREAK_INDEX_PEERS`) asks for the shards it does not hold."""
    with request.app.state.lock:
        index = fb.indexes["frames"]
        hits = index.search_radius(hex_codes(body.codes), body.max_distance)
        count = len(index)
    return {"hits": [[h.query_row, h.id, h.distance] for h in hits], "count": count}


# Posts and on-screen text


class PostIn(BaseModel):
    id: str | int | None = Field(default=None, description="The platform's id of the post.")
    text: str = Field(max_length=MAX_POST_CHARS)


class PostsIn(BaseModel):
    posts: list[PostIn] = Field(min_length=1, max_length=1000)
    classify_all: bool = Field(
        default=False, description="Let the classifier read posts that name no organisation."
    )


@router.post("/text/scan", summary="Scan posts for designated organisations and act on them")
def scan_posts(
    body: PostsIn,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("match"))],
) -> dict[str, object]:
    """One verdict a post, in order: the organisations named (spans in the original text), the
    stance when a classifier is trained, the verdict, the registry version, and what the action
    rules (bank `text`, label the organisation) did with it: block, hold for review, allow."""
    # No service lock: posts touch no index, and the store and the classifier are thread-safe.
    desk = PostDesk(fb, scanner_for(fb, body.classify_all))
    outcomes = desk.scan([(p.id, p.text) for p in body.posts], caller.actor)
    return {"verdicts": [o.to_json() for o in outcomes]}


@router.post("/text/media", summary="Read an upload's on-screen text for designated organisations")
def scan_media_text(
    fb: Fb,
    _: Annotated[Caller, Depends(require("match"))],
    file: Annotated[UploadFile, File(description="An image or a video.")],
) -> dict[str, object]:
    """Aliases read on screen, each with its frame time and box (x, y, width, height)."""
    with saved_upload(file, fb.settings) as path:
        scanner = scanner_for(fb)
        reader = ScreenReader(scanner.matcher)
        hits = reader.read_media(path, fb.settings)
    return {
        "file": file.filename or "upload",
        "hits": [h.to_json() for h in hits],
        "frames_read": reader.frames_read,
        "list_version": scanner.version,
    }


# The review queue of uploads


def _statuses(asked: list[str] | None, known: tuple[str, ...]) -> tuple[str, ...]:
    """The statuses a queue listing asks for: those still waiting unless named."""
    statuses = tuple(asked or ("open", "escalated"))
    unknown = set(statuses) - set(known)
    if unknown:
        raise HTTPException(422, f"unknown status: {', '.join(sorted(unknown))}")
    return statuses


@router.get("/reviews", summary="Uploads held for review, highest score first")
def list_reviews(
    fb: Fb,
    _: Annotated[Caller, Depends(require("review"))],
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, object]]:
    statuses = _statuses(status, REVIEW_STATUSES)
    return [r.to_json() for r in fb.store.reviews.queue(statuses, limit)]


@router.get("/reviews/{review_id}", summary="A held upload with its matches")
def get_review(
    review_id: RowId, fb: Fb, _: Annotated[Caller, Depends(require("review"))]
) -> dict[str, object]:
    return fb.store.reviews.get(review_id).to_json()


@router.get(
    "/reviews/{review_id}/media",
    summary="A held upload's media",
    response_class=FileResponse,
    responses=_MEDIA_FILE,
)
def review_media(
    review_id: RowId, fb: Fb, _: Annotated[Caller, Depends(require("review"))]
) -> FileResponse:
    review = fb.store.reviews.get(review_id)
    if not review.media or not Path(review.media).is_file():
        raise HTTPException(404, "the media of this review item is no longer kept")
    return FileResponse(review.media, headers={"Cache-Control": "no-store"})


@router.post("/reviews/{review_id}/decision", summary="Confirm (bank it), reject or escalate")
def decide_review(
    review_id: RowId,
    body: ReviewDecisionIn,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("review"))],
) -> dict[str, object]:
    desk = ReviewDesk(fb)
    with request.app.state.lock:
        if body.decision == "confirm":
            review = desk.confirm(review_id, caller.actor, body.bank, body.note)
        elif body.decision == "reject":
            review = desk.reject(review_id, caller.actor, body.note, body.allow_bank)
        else:
            review = desk.escalate(review_id, caller.actor, body.note)
    return review.to_json()


@router.get(
    "/banks/{bank}/items/{item}/media",
    summary="A banked item's media, where kept",
    response_class=FileResponse,
    responses=_MEDIA_FILE,
)
def item_media(
    bank: str, item: str, fb: Fb, _: Annotated[Caller, Depends(require("review"))]
) -> FileResponse:
    found = fb.store.item(bank, item)
    if not found.source_file or not Path(found.source_file).is_file():
        raise HTTPException(404, "the media of this item is not kept (only its hashes are)")
    return FileResponse(found.source_file, headers={"Cache-Control": "no-store"})


# Incidents (the live review queue) and the audit log


@router.get("/incidents", summary="The review queue: incidents by risk")
def list_incidents(
    fb: Fb,
    _: Annotated[Caller, Depends(require("review"))],
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, object]]:
    statuses = _statuses(status, INCIDENT_STATUSES)
    return [i.to_json() for i in fb.store.incidents.queue(statuses, limit)]


@router.get("/incidents/{name}", summary="An incident with its alerts")
def get_incident(
    name: str, fb: Fb, _: Annotated[Caller, Depends(require("review"))]
) -> dict[str, object]:
    return fb.store.incidents.get(name).to_json()


@router.post("/incidents/{name}/decision", summary="Confirm (bank it), reject or escalate")
def decide_incident(
    name: str,
    body: DecisionIn,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require("review"))],
) -> dict[str, object]:
    desk = IncidentDesk(fb)
    with request.app.state.lock:
        if body.decision == "confirm":
            incident = desk.confirm(name, body.bank, caller.actor, body.note)
        elif body.decision == "reject":
            incident = desk.reject(name, caller.actor, body.note)
        else:
            incident = desk.escalate(name, caller.actor, body.note)
    return incident.to_json()


@router.get("/audit", summary="The audit log, newest first")
def audit(
    fb: Fb,
    _: Annotated[Caller, Depends(require("audit:read"))],
    subject: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, object]]:
    return [e.to_json() for e in fb.store.audit.entries(subject, limit)]
