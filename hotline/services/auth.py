"""API tokens and staff passwords: creation, hashing and verification."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from hotline.errors import InvalidInput, Unauthorized
from hotline.models import ApiToken, City, Role, StaffUser, TokenScope
from hotline.services.actors import Actor
from hotline.services.catalog import get_city

TOKEN_PREFIX = "hl_"
_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def create_token(
    session: Session, *, name: str, city_key: str | None = None, network: bool = False
) -> IssuedToken:
    """Issue a token scoped to one city or to the whole network (exactly one of the two)."""
    name = name.strip()
    if not name:
        raise InvalidInput("A token needs a name, e.g. 'Website München'.", code="missing_name")
    if network == (city_key is not None):
        raise InvalidInput(
            "Give either a city (--city KEY) or --network for the token's scope.",
            code="token_scope",
        )
    city: City | None = get_city(session, city_key) if city_key else None
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:10],
        scope=TokenScope.network if network else TokenScope.city,
        city_id=city.id if city else None,
    )
    session.add(token)
    session.flush()
    return IssuedToken(token=token, secret=secret)


def authenticate_token(session: Session, secret: str) -> Actor:
    """The actor behind a bearer token; 401 when it is unknown or revoked."""
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).first()
    if token is None or token.revoked:
        raise Unauthorized("The API token is unknown or revoked.", code="invalid_token")
    network = token.scope == TokenScope.network
    return Actor(
        label=f"token:{token.name}",
        city_id=None if network else token.city_id,
        network=network,
        token_id=token.id,
    )


def staff_actor(user: StaffUser) -> Actor:
    network = user.role == Role.coordinator
    return Actor(
        label=f"staff:{user.username}",
        city_id=user.city_id,
        network=network,
        staff_id=user.id,
        role=user.role,
    )


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    city_key: str | None,
    display_name: str | None = None,
    email: str | None = None,
) -> StaffUser:
    username = username.strip()
    if not username or len(username) > 80:
        raise InvalidInput("The user name must have 1 to 80 characters.", code="invalid_username")
    if len(password) < 10:
        raise InvalidInput("The password must have at least 10 characters.", code="weak_password")
    if role != Role.coordinator and not city_key:
        raise InvalidInput(f"A user with role {role.value} needs a city.", code="missing_city")
    if session.exec(select(StaffUser).where(StaffUser.username == username)).first():
        raise InvalidInput(f"The user name {username!r} is taken.", code="username_taken")
    city = get_city(session, city_key) if city_key else None
    user = StaffUser(
        username=username,
        display_name=display_name or username,
        email=email,
        city_id=city.id if city else None,
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    return user
