"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from hotline import migrate
from hotline.api.deps import DatabaseDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database unreachable or not migrated"}})
def readyz(db: DatabaseDep) -> JSONResponse:
    """The database answers and its schema is at the newest migration."""
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.current_revision(db.engine)
    except SQLAlchemyError as exc:
        return JSONResponse(
            {"status": "unavailable", "code": "database_unreachable", "detail": type(exc).__name__},
            status_code=503,
        )
    head = migrate.head_revision()
    if current != head:
        return JSONResponse(
            {
                "status": "unavailable",
                "code": "migrations_pending",
                "detail": f"database at {current}, code expects {head}: run `hotline db upgrade`",
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "database": db.dialect, "revision": current})
