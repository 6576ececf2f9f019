"""Staff login on the board: sessions, lockout after failed attempts, password change."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from hotline.db import utcnow
from hotline.errors import InvalidInput
from hotline.models import StaffSession, StaffUser
from hotline.services.auth import hash_password, verify_password

# A login touches `last_seen_at` at most this often (a page view should not always write).
_TOUCH_EVERY = timedelta(minutes=5)
# Verified when the user name is unknown, so that the answer takes as long as for a real user.
_DUMMY_HASH = hash_password("not-a-real-password-0")


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    session_hours: int = 12
    max_failed: int = 5
    lockout_minutes: int = 15


class LoginFailed(Exception):
    """Wrong user name or password, or the account is locked or disabled.

    `reason` is for the audit trail; the person trying to log in gets one message for all
    reasons except the lockout, so user names cannot be probed."""

    def __init__(self, reason: str, *, locked_until: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locked_until = locked_until


@dataclass(frozen=True, slots=True)
class BoardLogin:
    user: StaffUser
    token: str  # the cookie value; only its hash is stored
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    session: Session,
    username: str,
    password: str,
    *,
    policy: LoginPolicy,
    now: datetime | None = None,
) -> BoardLogin:
    """Check the password, count failures (locking the account after `max_failed`) and open
    a session. Raises LoginFailed; the failure count is written even then."""
    now = now or utcnow()
    user = session.exec(
        select(StaffUser).where(StaffUser.username == username.strip()).with_for_update()
    ).first()
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise LoginFailed("unknown_user")
    if user.locked_until is not None and user.locked_until > now:
        raise LoginFailed("locked", locked_until=user.locked_until)
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= policy.max_failed:
            user.locked_until = now + timedelta(minutes=policy.lockout_minutes)
            user.failed_logins = 0
        session.add(user)
        if user.locked_until is not None and user.locked_until > now:
            raise LoginFailed("locked", locked_until=user.locked_until)
        raise LoginFailed("wrong_password")
    if not user.active:
        raise LoginFailed("inactive")
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session.add(
        StaffSession(
            id=_hash(token),
            user_id=user.id or 0,
            csrf=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=policy.session_hours),
        )
    )
    session.flush()
    return BoardLogin(user=user, token=token, csrf=csrf)


@dataclass(frozen=True, slots=True)
class BoardSession:
    user: StaffUser
    session_id: str
    csrf: str
    stale: bool  # last_seen_at should be refreshed


def resolve(session: Session, token: str, *, now: datetime | None = None) -> BoardSession | None:
    """The logged-in user behind a session cookie, or None (unknown, expired, user disabled)."""
    if not token:
        return None
    now = now or utcnow()
    row = session.get(StaffSession, _hash(token))
    if row is None or row.expires_at <= now:
        return None
    user = session.get(StaffUser, row.user_id)
    if user is None or not user.active:
        return None
    return BoardSession(
        user=user,
        session_id=row.id,
        csrf=row.csrf,
        stale=now - row.last_seen_at > _TOUCH_EVERY,
    )


def touch(session: Session, session_id: str, *, now: datetime | None = None) -> None:
    row = session.get(StaffSession, session_id)
    if row is not None:
        row.last_seen_at = now or utcnow()
        session.add(row)


def logout(session: Session, token: str) -> None:
    session.exec(delete(StaffSession).where(col(StaffSession.id) == _hash(token)))  # type: ignore[call-overload]


def end_sessions(session: Session, user_id: int, *, keep: str | None = None) -> None:
    """Log a user out everywhere (password change, account disabled), optionally but one."""
    stmt = delete(StaffSession).where(col(StaffSession.user_id) == user_id)
    if keep is not None:
        stmt = stmt.where(col(StaffSession.id) != keep)
    session.exec(stmt)  # type: ignore[call-overload]


def purge_expired(session: Session, *, now: datetime | None = None) -> None:
    stmt = delete(StaffSession).where(col(StaffSession.expires_at) <= (now or utcnow()))
    session.exec(stmt)  # type: ignore[call-overload]


MIN_PASSWORD = 10


def change_password(
    session: Session, user_id: int, *, current: str, new: str, repeat: str, keep_session: str
) -> None:
    """Change one's own password; every other session of the user ends."""
    user = session.get(StaffUser, user_id)
    if user is None or not verify_password(user.password_hash, current):
        raise InvalidInput("Das aktuelle Passwort stimmt nicht.", code="wrong_password")
    if new != repeat:
        raise InvalidInput(
            "Die beiden neuen Passwörter stimmen nicht überein.", code="password_mismatch"
        )
    if len(new) < MIN_PASSWORD:
        raise InvalidInput(
            f"Das neue Passwort braucht mindestens {MIN_PASSWORD} Zeichen.", code="weak_password"
        )
    if new == current:
        raise InvalidInput(
            "Das neue Passwort muss sich vom alten unterscheiden.", code="password_unchanged"
        )
    user.password_hash = hash_password(new)
    session.add(user)
    end_sessions(session, user_id, keep=keep_session)
