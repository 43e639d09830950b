"""Live streams managed through the API (`/v1/live`): start watching a stream, list and inspect
the streams being watched, stop one. Alerts open incidents (`/v1/incidents`) as on the CLI."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from firebreak.api.auth import Caller, require
from firebreak.streams import StreamManager, WatchOptions

router = APIRouter(prefix="/v1/live", tags=["live streams"])
_SCHEMES = ("rtmp", "rtmps", "srt", "http", "https")


class WatchIn(BaseModel):
    source: str = Field(min_length=1, max_length=2000, examples=["rtmp://ingest.internal/live/KEY"])
    record: bool = True
    incident_bank: str | None = Field(default=None, min_length=1, max_length=200)


def _manager(request: Request) -> StreamManager:
    manager: StreamManager = request.app.state.streams
    return manager


Manager = Annotated[StreamManager, Depends(_manager)]


@router.post("", status_code=201, summary="Start watching a stream (RTMP, SRT, HLS)")
def start(
    body: WatchIn, manager: Manager, caller: Annotated[Caller, Depends(require("live"))]
) -> dict[str, Any]:
    # Only streams: a path on this machine is never read through the API.
    if urllib.parse.urlparse(body.source).scheme not in _SCHEMES:
        raise HTTPException(422, f"the source must be a {', '.join(_SCHEMES)} URL")
    if body.incident_bank and not body.record:
        raise HTTPException(422, "an incident bank needs the stream recorded")
    options = WatchOptions(realtime=True, record=body.record, incident_bank=body.incident_bank)
    return manager.start(body.source, options, caller.actor)


@router.get("", summary="The streams being watched")
def list_streams(
    manager: Manager, _: Annotated[Caller, Depends(require("live"))]
) -> list[dict[str, Any]]:
    return manager.list()


@router.get("/{stream_id}", summary="A watched stream: its state, alerts and latest events")
def get_stream(
    stream_id: str, manager: Manager, _: Annotated[Caller, Depends(require("live"))]
) -> dict[str, Any]:
    return manager.get(stream_id)


@router.delete("/{stream_id}", summary="Stop watching a stream")
def stop_stream(
    stream_id: str, manager: Manager, caller: Annotated[Caller, Depends(require("live"))]
) -> dict[str, Any]:
    return manager.stop(stream_id, caller.actor)
