"""Login, logout, password change and the language switch of the board."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter, Verdict
from hotline.board._core import (
    LANG_COOKIE,
    LANGUAGES,
    PREFIX,
    SESSION_COOKIE,
    ViewerDep,
    get_db,
    get_settings,
    redirect,
    render,
    request_lang,
    safe_next,
)
from hotline.board.i18n import translator
from hotline.errors import InvalidInput
from hotline.services import staff
from hotline.settings import Settings

router = APIRouter()
LOGIN_CSRF_COOKIE = "hl_login"


def _limiter(request: Request, settings: Settings) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        if settings.redis_url:
            from redis.asyncio import Redis

            limiter = RedisRateLimiter(
                Redis.from_url(settings.redis_url),
                settings.login_rate_per_minute,
                prefix="hotline:login",
            )
        else:
            limiter = MemoryRateLimiter(settings.login_rate_per_minute)
        request.app.state.login_limiter = limiter
    return limiter


def _secure(request: Request, settings: Settings) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return request.url.scheme == "https"


def _login_page(
    request: Request, *, next_url: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        None,
        "login.html",
        {"login_csrf": token, "next": next_url, "error": error},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=f"{PREFIX}/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request, get_settings(request)),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, next_url=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    settings = get_settings(request)
    _ = translator(request_lang(request))
    next_url = safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf or not cookie or not hmac.compare_digest(csrf.encode(), cookie.encode()):
        return _login_page(
            request,
            next_url=next_url,
            error=_("Das Anmeldeformular ist abgelaufen. Bitte versuchen Sie es erneut."),
            status_code=403,
        )
    client = request.client.host if request.client else "unknown"
    if await _limiter(request, settings).hit(f"login:{client}") != Verdict.allow:
        return _login_page(
            request,
            next_url=next_url,
            error=_("Zu viele Anmeldeversuche von dieser Adresse. Bitte warten Sie eine Minute."),
            status_code=429,
        )
    policy = staff.LoginPolicy(
        session_hours=settings.board_session_hours,
        max_failed=settings.login_max_failed,
        lockout_minutes=settings.login_lockout_minutes,
    )
    db = get_db(request)

    def attempt() -> staff.BoardLogin | staff.LoginFailed:
        # The failure count must be committed, so the failure is returned, not raised.
        with db.write() as session:
            try:
                return staff.login(session, username, password, policy=policy)
            except staff.LoginFailed as failed:
                return failed

    result = await run_in_threadpool(attempt)
    if isinstance(result, staff.LoginFailed):
        if result.reason == "locked" and result.locked_until is not None:
            from zoneinfo import ZoneInfo

            until = result.locked_until.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")
            error = _("Zu viele Fehlversuche: Das Konto ist bis {time} Uhr gesperrt.", time=until)
        else:
            error = _("Benutzername oder Passwort ist falsch.")
        return _login_page(request, next_url=next_url, error=error, status_code=401)
    response = redirect(request, next_url)
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        max_age=settings.board_session_hours * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{PREFIX}/login")
    if result.user.language in LANGUAGES and LANG_COOKIE not in request.cookies:
        response.set_cookie(LANG_COOKIE, result.user.language, max_age=365 * 86400, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep) -> Response:
    db = get_db(request)
    token = request.cookies.get(SESSION_COOKIE, "")

    def end() -> None:
        with db.write() as session:
            staff.logout(session, token)

    await run_in_threadpool(end)
    _ = translator(viewer.lang)
    response = redirect(request, f"{PREFIX}/login", flash=_("Sie wurden abgemeldet."))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/password", response_class=HTMLResponse)
async def password_form(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return render(request, viewer, "password.html", {"error": None})


@router.post("/password", response_class=HTMLResponse)
async def password_submit(
    request: Request,
    viewer: ViewerDep,
    current: Annotated[str, Form(max_length=1000)] = "",
    new: Annotated[str, Form(max_length=1000)] = "",
    repeat: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    db = get_db(request)

    def change() -> str | None:
        try:
            with db.write() as session:
                staff.change_password(
                    session,
                    viewer.user.id or 0,
                    current=current,
                    new=new,
                    repeat=repeat,
                    keep_session=viewer.session_id,
                )
        except InvalidInput as exc:
            return exc.detail
        return None

    error = await run_in_threadpool(change)
    _ = translator(viewer.lang)
    if error is not None:
        return render(request, viewer, "password.html", {"error": _(error)}, status_code=422)
    return redirect(
        request,
        f"{PREFIX}/",
        flash=_("Das Passwort wurde geändert. Andere Anmeldungen wurden beendet."),
    )


@router.get("/lang/{lang}")
async def switch_language(request: Request, lang: str, next: str | None = None) -> Response:
    response = redirect(request, safe_next(next))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="lax")
    return response
