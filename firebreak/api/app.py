"""The FastAPI application: Firebreak's API (`/v1`), HMA's routes (`/h`, `/m`, `/c`), and the
OpenAPI document (`/openapi.json`, docs at `/docs`).

One app holds one Firebreak (store + index) for its life. Errors Firebreak raises on purpose
become one 4xx each, with the reason; anything else is a 500 that leaves the service up.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from firebreak import __version__
from firebreak.actions.rules import check_rules
from firebreak.api import exchange_routes, hma, live_routes, routes, ui
from firebreak.api.auth import trusted_networks
from firebreak.errors import (
    BankExists,
    BankNotFound,
    DecisionRefused,
    FirebreakError,
    HashListInvalid,
    IncidentNotFound,
    ItemNotFound,
    MediaRejected,
    UnknownSignalType,
)
from firebreak.scale.peers import peers_from_settings
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.sharing import Publisher
from firebreak.store.feed import FeedRefused
from firebreak.store.keys import KeyRefused
from firebreak.store.reviews import ReviewNotFound
from firebreak.streams import StreamManager, StreamNotWatched

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BankNotFound, 404),
    (ItemNotFound, 404),
    (IncidentNotFound, 404),
    (ReviewNotFound, 404),
    (StreamNotWatched, 404),
    (FeedRefused, 404),
    (BankExists, 409),
    (DecisionRefused, 409),
    (MediaRejected, 422),
    (HashListInvalid, 422),
    (UnknownSignalType, 422),
    (KeyRefused, 400),
)


class Refusal(BaseModel):
    """A refused request: the reason, or for a malformed request the fields at fault."""

    detail: str | list[dict[str, Any]]


# Every route may refuse with 422, Firebreak's reason (a string) or FastAPI's field errors.
_REFUSALS: dict[int | str, dict[str, Any]] = {
    422: {"model": Refusal, "description": "The request is malformed or its content unusable."}
}


def create_app(settings: Settings) -> FastAPI:
    """The app over the store `settings` name (migrated to the newest schema on start)."""
    networks = trusted_networks(settings.hma_trusted_networks)
    check_rules(settings.action_rules)
    fb = Firebreak(settings, peers_from_settings(settings))
    lock = threading.RLock()
    streams = StreamManager(fb, lock, settings.live_max_streams)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            app.state.stopping.set()
            streams.close()
            fb.close()

    app = FastAPI(
        title="Firebreak",
        version=__version__,
        description="Recognise known terrorist and violent-extremist video and its manipulated "
        "copies. Every route needs `Authorization: Bearer KEY` (keys from `firebreak keys "
        "create`); the HMA-compatible routes also accept keyless clients from "
        "FIREBREAK_HMA_TRUSTED_NETWORKS.",
        lifespan=lifespan,
        responses=_REFUSALS,
    )
    app.state.fb = fb
    app.state.lock = lock
    app.state.streams = streams
    app.state.publisher = Publisher(fb)
    app.state.stopping = threading.Event()
    app.state.hma_networks = networks

    @app.exception_handler(FirebreakError)
    async def firebreak_error(_: Request, exc: FirebreakError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        # A refused file's reason, never the server's path to its temporary copy.
        detail = exc.reason if isinstance(exc, MediaRejected) else str(exc)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(ValueError)
    async def value_error(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.include_router(routes.router)
    app.include_router(hma.router)
    app.include_router(ui.router)
    app.include_router(live_routes.router)
    app.include_router(exchange_routes.router)
    return app
