"""The FastAPI application: Firebreak's API (`/v1`), HMA's routes (`/h`, `/m`, `/c`), and the
OpenAPI document (`/openapi.json`, docs at `/docs`).

One app holds one Firebreak (store + index) for its life. Errors Firebreak raises on purpose
become one 4xx each, with the reason; anything else is a 500 that leaves the service up.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from firebreak import __version__
from firebreak.api import hma, routes
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
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.store.keys import KeyRefused

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BankNotFound, 404),
    (ItemNotFound, 404),
    (IncidentNotFound, 404),
    (BankExists, 409),
    (DecisionRefused, 409),
    (MediaRejected, 422),
    (HashListInvalid, 422),
    (UnknownSignalType, 422),
    (KeyRefused, 400),
)


def create_app(settings: Settings) -> FastAPI:
    """The app over the store `settings` name (migrated to the newest schema on start)."""
    networks = trusted_networks(settings.hma_trusted_networks)
    fb = Firebreak(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            fb.close()

    app = FastAPI(
        title="Firebreak",
        version=__version__,
        description="Recognise known terrorist and violent-extremist video and its manipulated "
        "copies. Every route needs `Authorization: Bearer KEY` (keys from `firebreak keys "
        "create`); the HMA-compatible routes also accept keyless clients from "
        "FIREBREAK_HMA_TRUSTED_NETWORKS.",
        lifespan=lifespan,
    )
    app.state.fb = fb
    app.state.lock = threading.RLock()
    app.state.hma_networks = networks

    @app.exception_handler(FirebreakError)
    async def firebreak_error(_: Request, exc: FirebreakError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(ValueError)
    async def value_error(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.include_router(routes.router)
    app.include_router(hma.router)
    return app
