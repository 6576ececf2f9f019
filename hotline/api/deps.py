"""Dependencies handed to the route functions: settings, database, the authenticated actor."""

from __future__ import annotations

import hmac
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


# The web chat is served by this process and talks to the API in-process (ASGI, no network)
# with a random token that exists only in this process's memory.
WEBCHAT_ACTOR = Actor(label="kanal:webchat", city_id=None, network=True)


def current_actor(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "An API token is required: send 'Authorization: Bearer <token>'.", code="missing_token"
        )
    internal = getattr(request.app.state, "internal_token", None)
    if internal and hmac.compare_digest(credentials.credentials.encode(), internal.encode()):
        return WEBCHAT_ACTOR
    with db.read() as session:
        return authenticate_token(session, credentials.credentials)


ActorDep = Annotated[Actor, Depends(current_actor)]
