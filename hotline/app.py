"""The web application factory: API, docs and (later) the board and web chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from hotline.api.errors import install_error_handlers
from hotline.api.middleware import BodySizeLimit
from hotline.api.routes import catalog, citizen, health, routing, tickets
from hotline.api.routes import kb as kb_routes
from hotline.db import Database
from hotline.services.asking import MatcherCache
from hotline.services.rules import RouterCache
from hotline.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """Build the app; the database engine is made here (or handed in) and closed on shutdown."""
    settings = settings or get_settings()
    database = db or Database.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if db is None:
            database.dispose()

    app = FastAPI(
        title="Hotline API",
        version="1.0",
        description=(
            "Gemeinsame E-Government-Hotline der kooperierenden Städte — shared support hotline "
            "of cooperating cities. Authenticate with `Authorization: Bearer <token>` "
            "(`hotline token create`). Errors are JSON `{code, detail}`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.router_cache = RouterCache()
    app.state.matcher_cache = MatcherCache()
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(tickets.router)
    api.include_router(catalog.router)
    api.include_router(routing.router)
    api.include_router(kb_routes.router)
    api.include_router(citizen.router)
    app.include_router(api)
    app.include_router(health.router)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        upload_bytes=settings.chat_max_document_bytes,
        upload_suffix="/attachments",
    )
    return app


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory hotline.app:app_factory`."""
    return create_app()
