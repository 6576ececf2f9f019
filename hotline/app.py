"""The web application factory: API, docs and (later) the board and web chat."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from bot.backend import HttpBackend
from hotline.api.errors import install_error_handlers
from hotline.api.middleware import BodySizeLimit, SecurityHeaders
from hotline.api.ratelimit import close_limiters
from hotline.api.routes import catalog, citizen, health, privacy, routing, tickets
from hotline.api.routes import kb as kb_routes
from hotline.board import build_router as build_board_router
from hotline.db import Database
from hotline.metrics import Metrics, RequestMetrics
from hotline.metrics import build_router as build_metrics_router
from hotline.services.asking import MatcherCache
from hotline.services.rules import RouterCache
from hotline.settings import Settings, get_settings
from hotline.web import chat
from hotline.worker import run_worker

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """Build the app; the database engine is made here (or handed in) and closed on shutdown."""
    settings = settings or get_settings()
    database = db or Database.from_settings(settings)
    # Each app has its own registry (tests build many apps); see hotline/metrics.py.
    metrics = Metrics()
    if settings.metrics_enabled:
        metrics.watch_database(database, cache_seconds=settings.metrics_cache_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = []
        if settings.worker_in_process:
            worker = run_worker(database, settings, stop, metrics=metrics)
            tasks.append(asyncio.create_task(worker, name="outbox"))
        if polling_in_process(settings):
            from bot.app import run_polling

            polling = run_polling(settings, backend=in_process_backend(app), handle_signals=False)
            tasks.append(asyncio.create_task(polling, name="telegram-polling"))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                if task.get_name() == "telegram-polling":
                    task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            await close_limiters(app.state)
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
    app.state.metrics = metrics
    app.state.router_cache = RouterCache()
    app.state.matcher_cache = MatcherCache()
    # The web chat calls this app's API in-process with this token; it never leaves memory.
    app.state.internal_token = secrets.token_urlsafe(32)
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(tickets.router)
    api.include_router(catalog.router)
    api.include_router(routing.router)
    api.include_router(kb_routes.router)
    api.include_router(citizen.router)
    api.include_router(privacy.router)
    app.include_router(api)
    app.include_router(health.router)
    if settings.metrics_enabled:
        app.include_router(build_metrics_router())
    app.include_router(chat.router)
    app.include_router(build_board_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.telegram_bot_token is not None and settings.telegram_webhook_secret is not None:
        from bot.app import make_webhook_router

        app.include_router(make_webhook_router(settings, backend=in_process_backend(app)))
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        upload_bytes=settings.chat_max_document_bytes,
        upload_suffix="/attachments",
    )
    if settings.metrics_enabled:
        app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: times everything
    return app


def polling_in_process(settings: Settings) -> bool:
    """`hotline serve` runs the bot itself (long polling) when it has a token and no webhook."""
    return (
        settings.bot_in_process
        and settings.telegram_bot_token is not None
        and settings.telegram_webhook_secret is None
    )


def in_process_backend(app: FastAPI) -> HttpBackend:
    """The API of this process for the bot and the web chat: over ASGI, with a token that
    exists only in memory, so the channels use exactly the checks an outside client gets."""
    backend: HttpBackend | None = getattr(app.state, "in_process_backend", None)
    if backend is None:
        backend = HttpBackend(
            "http://hotline.internal",
            app.state.internal_token,
            timeout=30,
            transport=httpx.ASGITransport(app=app),
        )
        app.state.in_process_backend = backend
    return backend


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory hotline.app:app_factory`."""
    return create_app()
