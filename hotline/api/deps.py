"""Dependencies handed to the route functions: settings, database, the authenticated actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hotline.db import Database
from hotline.errors import Unauthorized
from hotline.services.actors import Actor
from hotline.services.asking import MatcherCache
from hotline.services.auth import authenticate_token
from hotline.services.rules import RouterCache
from hotline.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API token from `hotline token create`.")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_router_cache(request: Request) -> RouterCache:
    return request.app.state.router_cache  # type: ignore[no-any-return]


def get_matcher_cache(request: Request) -> MatcherCache:
    return request.app.state.matcher_cache  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
MatcherCacheDep = Annotated[MatcherCache, Depends(get_matcher_cache)]
RouterCacheDep = Annotated[RouterCache, Depends(get_router_cache)]
DatabaseDep = Annotated[Database, Depends(get_db)]


def current_actor(
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "An API token is required: send 'Authorization: Bearer <token>'.", code="missing_token"
        )
    with db.read() as session:
        return authenticate_token(session, credentials.credentials)


ActorDep = Annotated[Actor, Depends(current_actor)]
