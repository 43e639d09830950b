"""HMA-compatible routes (`/h`, `/m`, `/c`), with the request and response shapes of Meta's
Hasher-Matcher-Actioner, so a platform (or ROOST Coop) that calls HMA can switch unchanged.

    /h/hash             GET ?url= | POST multipart (field `photo` or `video`) → {type: hash}
    /m/raw_lookup       GET ?signal_type=&signal=[&include_distance=] → {"matches": [...]}
    /m/lookup           GET ?signal_type=&signal= → [bank] | ?url= / POST file → {type: [bank]}
    /c/banks            GET → [{"name", "matching_enabled_ratio"}] | POST {"name", "enabled"}
    /c/bank/{name}      GET | PUT {"enabled"} | DELETE
    /c/bank/{name}/content   POST ?url= or multipart → {"id", "signals"}
    /c/bank/{name}/content/{id}   DELETE → {"deleted": n}
    /c/bank/{name}/signal    POST {type: hash} → {"id", "signals"}

Content ids are Firebreak item ids. Matching follows the banks' rules: disabled banks match
nothing and an allow-list match suppresses block-list banks.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam

from firebreak.api.auth import Caller, firebreak_of, require_hma
from firebreak.api.uploads import fetched_url, saved_upload
from firebreak.errors import BankExists
from firebreak.service import Firebreak, HashHit
from firebreak.signals.registry import signal_type_for_exchange_name
from firebreak.store import SignalValue

router = APIRouter(tags=["HMA-compatible"])
Fb = Annotated[Firebreak, Depends(firebreak_of)]
_CONTENT_FIELDS = ("photo", "video")
_BANK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,199}")  # as the /v1 API names banks
# Content ids are the store's 64-bit row ids.
ContentId = Annotated[int, PathParam(ge=0, le=2**63 - 1)]


def _bank_json(fb: Firebreak, name: str) -> dict[str, object]:
    bank = fb.store.get_bank(name)
    return {"name": bank.name, "matching_enabled_ratio": 1.0 if bank.enabled else 0.0}


async def _one_upload(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(400, "Missing multipart/form-data file upload")
    form = await request.form()
    files = [(k, v) for k, v in form.multi_items() if hasattr(v, "filename")]
    if not files:
        raise HTTPException(400, "Missing multipart/form-data file upload")
    if len(files) > 1:
        raise HTTPException(400, "Only one file allowed per request")
    field, upload = files[0]
    if field not in _CONTENT_FIELDS:
        raise HTTPException(400, f"no such content_type: '{field}'")
    return upload


def _banks_for(fb: Firebreak, hits: list[HashHit]) -> list[str]:
    """Bank names of the hits, as HMA's lookup returns them, under the banks' rules."""
    rules = fb.store.bank_rules()
    live = [h for h in hits if h.item.bank in rules and rules[h.item.bank].enabled]
    if any(rules[h.item.bank].kind == "allow" for h in live):
        live = [h for h in live if rules[h.item.bank].kind == "allow"]
    return sorted({h.item.bank for h in live})


def _lookup(fb: Firebreak, signal_type: str, signal: str) -> list[HashHit]:
    if signal_type_for_exchange_name(signal_type) is None:
        raise HTTPException(400, f"No such SignalType '{signal_type}'")
    return fb.lookup_hash(signal_type, signal)


# Hashing


@router.get("/h/hash", summary="Hash the media at a URL")
def hma_hash_url(
    request: Request,
    fb: Fb,
    _: Annotated[Caller, Depends(require_hma("match"))],
    url: Annotated[str | None, Query()] = None,
) -> dict[str, str]:
    if not url:
        raise HTTPException(400, "url is required")  # uploads take the POST route
    with fetched_url(url, fb.settings) as path:
        return fb.hma_hashes(path)


@router.post("/h/hash", summary="Hash an uploaded file (multipart field photo or video)")
async def hma_hash_upload(
    request: Request, fb: Fb, _: Annotated[Caller, Depends(require_hma("match"))]
) -> dict[str, str]:
    upload = await _one_upload(request)
    with saved_upload(upload, fb.settings) as path:
        return fb.hma_hashes(path)


# Matching


@router.get("/m/raw_lookup", summary="Content ids whose hashes match a hash")
def hma_raw_lookup(
    request: Request,
    fb: Fb,
    _: Annotated[Caller, Depends(require_hma("match"))],
    signal_type: Annotated[str, Query()],
    signal: Annotated[str, Query()],
    include_distance: Annotated[bool, Query()] = False,
) -> dict[str, object]:
    with request.app.state.lock:
        hits = _lookup(fb, signal_type, signal)
    if include_distance:
        return {"matches": [{"content_id": h.item.id, "distance": str(h.distance)} for h in hits]}
    return {"matches": [h.item.id for h in hits]}


@router.get("/m/lookup", summary="Banks matching a hash, or the media at a URL")
def hma_lookup(
    request: Request,
    fb: Fb,
    _: Annotated[Caller, Depends(require_hma("match"))],
    signal_type: Annotated[str | None, Query()] = None,
    signal: Annotated[str | None, Query()] = None,
    url: Annotated[str | None, Query()] = None,
) -> Any:
    if url:
        with fetched_url(url, fb.settings) as path:
            hashes = fb.hma_hashes(path)
        with request.app.state.lock:
            return {st: _banks_for(fb, _lookup(fb, st, value)) for st, value in hashes.items()}
    if not signal_type or not signal:
        raise HTTPException(400, "signal_type and signal, or url, are required")
    with request.app.state.lock:
        return _banks_for(fb, _lookup(fb, signal_type, signal))


@router.post("/m/lookup", summary="Banks matching an uploaded file's hashes")
async def hma_lookup_upload(
    request: Request, fb: Fb, _: Annotated[Caller, Depends(require_hma("match"))]
) -> dict[str, list[str]]:
    upload = await _one_upload(request)
    with saved_upload(upload, fb.settings) as path:
        hashes = fb.hma_hashes(path)
    with request.app.state.lock:
        return {st: _banks_for(fb, _lookup(fb, st, value)) for st, value in hashes.items()}


# Curation


@router.get("/c/banks", summary="List banks")
def hma_banks(
    fb: Fb, _: Annotated[Caller, Depends(require_hma("banks:read"))]
) -> list[dict[str, object]]:
    return [
        {"name": b.name, "matching_enabled_ratio": 1.0 if b.enabled else 0.0}
        for b in fb.list_banks()
    ]


@router.post("/c/banks", status_code=201, summary="Create a bank")
def hma_create_bank(
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require_hma("banks:admin"))],
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, object]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HTTPException(400, "name is required")
    if not _BANK_NAME.fullmatch(name):
        raise HTTPException(400, "a bank name is letters, digits and . _ - or space, to 200")
    enabled = bool(body.get("enabled", True)) and _ratio(body.get("enabled_ratio", 1.0)) > 0
    with request.app.state.lock:
        try:
            fb.create_bank(name, "block", caller.actor)
        except BankExists:
            raise HTTPException(403, "Bank already exists") from None
        if not enabled:
            fb.store.configure_bank(name, caller.actor, enabled=False)
        return _bank_json(fb, name)


def _ratio(value: object) -> float:
    """HMA's `enabled_ratio`: a number from 0 to 1."""
    try:
        ratio = float(value) if isinstance(value, int | float | str) else math.nan
    except (ValueError, OverflowError):
        ratio = math.nan
    if not math.isfinite(ratio):
        raise HTTPException(400, "enabled_ratio must be a number")
    return ratio


@router.get("/c/bank/{bank_name}", summary="A bank")
def hma_bank(
    bank_name: str, fb: Fb, _: Annotated[Caller, Depends(require_hma("banks:read"))]
) -> dict[str, object]:
    return _bank_json(fb, bank_name)


@router.put("/c/bank/{bank_name}", summary="Enable or disable a bank")
def hma_update_bank(
    bank_name: str,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require_hma("banks:admin"))],
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, object]:
    enabled: bool | None = None
    if "enabled" in body:
        enabled = bool(body["enabled"])
    if "enabled_ratio" in body:
        enabled = _ratio(body["enabled_ratio"]) > 0
    if "name" in body and body["name"] != bank_name:
        raise HTTPException(400, "renaming banks is not supported")
    with request.app.state.lock:
        fb.store.configure_bank(bank_name, caller.actor, enabled=enabled)
        return _bank_json(fb, bank_name)


@router.delete("/c/bank/{bank_name}", summary="Delete a bank")
def hma_delete_bank(
    bank_name: str,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require_hma("banks:admin"))],
) -> dict[str, str]:
    with request.app.state.lock:
        fb.delete_bank(bank_name, caller.actor)
    return {"message": "Done"}


@router.post("/c/bank/{bank_name}/content", summary="Bank media from a URL or an upload")
async def hma_add_content(
    bank_name: str,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require_hma("banks:write"))],
    url: Annotated[str | None, Query()] = None,
) -> dict[str, object]:
    fb.store.get_bank(bank_name)
    if url:
        with fetched_url(url, fb.settings) as path, request.app.state.lock:
            outcome = fb.bank_file(bank_name, path, actor=caller.actor, source_file=url)
    else:
        upload = await _one_upload(request)
        with saved_upload(upload, fb.settings) as path, request.app.state.lock:
            outcome = fb.bank_file(
                bank_name,
                path,
                actor=caller.actor,
                source_file=f"upload:{upload.filename or path.name}",
            )
    return {"id": outcome.item.id, "signals": _hma_signals(fb, outcome.item.id)}


@router.delete("/c/bank/{bank_name}/content/{content_id}", summary="Remove banked content")
def hma_remove_content(
    bank_name: str,
    content_id: ContentId,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require_hma("banks:write"))],
) -> dict[str, int]:
    with request.app.state.lock:
        fb.store.get_bank(bank_name)
        try:
            item = fb.store.item_by_id(content_id)
        except LookupError:
            return {"deleted": 0}
        if item.bank != bank_name:
            return {"deleted": 0}
        fb.remove_item(bank_name, item.name, caller.actor)
    return {"deleted": 1}


@router.post("/c/bank/{bank_name}/signal", summary="Bank hashes directly")
def hma_add_signal(
    bank_name: str,
    request: Request,
    fb: Fb,
    caller: Annotated[Caller, Depends(require_hma("banks:write"))],
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, object]:
    if not body:
        raise HTTPException(400, "No signals given")
    values: list[SignalValue] = []
    for name, value in body.items():
        kind = signal_type_for_exchange_name(name)
        if kind is None:
            raise HTTPException(400, f"No such signal type {name}")
        if not isinstance(value, str):
            raise HTTPException(400, f"Invalid {name} signal: not a string")
        values.extend(_signal_values(kind.name, value))
    fb.store.get_bank(bank_name)
    with request.app.state.lock:
        item_name = f"signal-{values[0].value[:16]}"
        outcome = fb.add_hashes(bank_name, item_name, values, caller.actor)
    return {"id": outcome.item.id, "signals": _hma_signals(fb, outcome.item.id)}


def _signal_values(type_name: str, value: str) -> list[SignalValue]:
    from firebreak.signals.video import parse_vpdq

    if type_name == "video":
        try:
            frames = parse_vpdq(value)
        except ValueError as exc:
            raise HTTPException(400, f"Invalid vpdq signal: {exc}") from None
        return [SignalValue("video", f.hex, f.quality, f.timestamp) for f in frames]
    return [SignalValue(type_name, value)]


def _hma_signals(fb: Firebreak, item_id: int) -> dict[str, str]:
    """An item's signals under HMA's type names (vPDQ as its JSON signal string)."""
    from firebreak.signals.base import FrameHash
    from firebreak.signals.registry import signal_type
    from firebreak.signals.video import format_vpdq_json

    values = fb.store.item_signals(item_id)
    out: dict[str, str] = {}
    frames = [
        FrameHash.from_hex(v.value, v.quality or 0, v.timestamp or 0.0)
        for v in values
        if v.signal_type == "video"
    ]
    if frames:
        out["vpdq"] = format_vpdq_json(frames)
    for v in values:
        if v.signal_type in ("md5", "sha256", "pdq"):
            out[signal_type(v.signal_type).exchange_name] = v.value
    return out
