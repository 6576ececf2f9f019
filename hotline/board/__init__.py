"""The staff web board at /board: one router per page family, all behind login and CSRF."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from hotline.board import access_log, admin, auth, dashboard, inbox, internal, kb, routing, ticket
from hotline.board._core import PREFIX, csrf_guard


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(csrf_guard)])
    for module in (auth, inbox, ticket, internal, routing, kb, dashboard, admin, access_log):
        router.include_router(module.router)
    return router
