"""What every board page shares: the logged-in viewer, roles, CSRF, language, rendering.

Pages are server-rendered Jinja2 templates (autoescaped) enhanced with htmx. Every page
module defines an `APIRouter` and uses `ViewerDep` (any logged-in staff user) or one of the
role dependencies; the service layer checks the rights again on every read and change.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from hotline.board.i18n import translator
from hotline.db import Database
from hotline.errors import Forbidden, HotlineError
from hotline.models import City, Role, StaffUser
from hotline.services import staff
from hotline.services.actors import Actor
from hotline.services.auth import staff_actor
from hotline.settings import Settings

PREFIX = "/board"
SESSION_COOKIE = "hl_board"
LANG_COOKIE = "hl_lang"
FLASH_COOKIE = "hl_flash"
LANGUAGES = ("de", "en")

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


class LoginRequired(Exception):
    """No valid session: the page redirects to the login form (htmx: HX-Redirect)."""


@dataclass
class Viewer:
    """The staff user looking at a page, with the actor the services check rights for."""

    user: StaffUser
    actor: Actor
    csrf: str
    session_id: str
    lang: str
    city: City | None = None
    cities: dict[int, City] = field(default_factory=dict)

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def is_coordinator(self) -> bool:
        return self.user.role == Role.coordinator

    @property
    def is_admin(self) -> bool:
        """City admin of their city, or coordinator (admin of the whole network)."""
        return self.user.role in (Role.city_admin, Role.coordinator)

    def city_name(self, city_id: int | None) -> str:
        city = self.cities.get(city_id) if city_id is not None else None
        return city.name if city else "—"


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def request_lang(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "de")
    return lang if lang in LANGUAGES else "de"


def _load_viewer(db: Database, token: str, lang: str) -> Viewer | None:
    from sqlmodel import select

    with db.read() as session:
        found = staff.resolve(session, token)
        if found is None:
            return None
        cities = {c.id: c for c in session.exec(select(City)).all() if c.id is not None}
    if found.stale:
        with db.write() as session:
            staff.touch(session, found.session_id)
    user = found.user
    return Viewer(
        user=user,
        actor=staff_actor(user),
        csrf=found.csrf,
        session_id=found.session_id,
        lang=lang,
        city=cities.get(user.city_id) if user.city_id is not None else None,
        cities=cities,
    )


async def current_viewer(request: Request) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE, "")
    viewer = None
    if token:
        viewer = await run_in_threadpool(
            _load_viewer, get_db(request), token, request_lang(request)
        )
    if viewer is None:
        raise LoginRequired()
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def _require(viewer: Viewer, *roles: Role) -> Viewer:
    if viewer.role not in roles:
        raise Forbidden("Diese Seite ist Ihrer Rolle nicht freigegeben.", code="role_forbidden")
    return viewer


async def admin_viewer(viewer: ViewerDep) -> Viewer:
    return _require(viewer, Role.city_admin, Role.coordinator)


async def coordinator_viewer(viewer: ViewerDep) -> Viewer:
    return _require(viewer, Role.coordinator)


AdminDep = Annotated[Viewer, Depends(admin_viewer)]
CoordinatorDep = Annotated[Viewer, Depends(coordinator_viewer)]

# --- CSRF ------------------------------------------------------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms posted without a session (the login) carry their own double-submit token.
CSRF_EXEMPT = frozenset({f"{PREFIX}/login"})


async def csrf_guard(request: Request) -> None:
    """Every state-changing board request carries the session's CSRF token, as the form
    field `csrf` or (htmx) the header `X-CSRF-Token`. Runs before the page's own code."""
    if request.method in SAFE_METHODS or request.url.path in CSRF_EXEMPT:
        return
    viewer = await current_viewer(request)
    sent = request.headers.get("x-csrf-token")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf")
            sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise Forbidden(
            "Das Formular ist abgelaufen oder ungültig. Bitte laden Sie die Seite neu und "
            "senden Sie es erneut.",
            code="csrf_failed",
        )


# --- rendering ---------------------------------------------------------------------------------


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def set_flash(response: Response, text: str) -> None:
    """A one-time message shown on the next page (Post/Redirect/Get)."""
    value = base64.urlsafe_b64encode(text.encode()[:1000]).decode()
    response.set_cookie(FLASH_COOKIE, value, max_age=60, path=PREFIX, httponly=True, samesite="lax")


def _take_flash(request: Request) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        return base64.urlsafe_b64decode(raw.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def render(
    request: Request,
    viewer: Viewer | None,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    lang: str | None = None,
) -> HTMLResponse:
    """Render a board template with the shared context: viewer, `_` (translation), csrf,
    the language, the flash message and the current path."""
    lang = lang or (viewer.lang if viewer else request_lang(request))
    flash = _take_flash(request)
    ctx: dict[str, Any] = {
        "viewer": viewer,
        "_": translator(lang),
        "lang": lang,
        "csrf": viewer.csrf if viewer else "",
        "flash": flash,
        "path": request.url.path,
        "full_path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "htmx": is_htmx(request),
    }
    ctx.update(context or {})
    response = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status_code)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(request: Request, url: str, *, flash: str | None = None) -> Response:
    """303 to `url` after a successful form post (htmx gets 204 with HX-Redirect)."""
    response: Response
    if is_htmx(request):
        response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if flash:
        set_flash(response, flash)
    return response


def safe_next(target: str | None) -> str:
    """Only paths on the board itself: no open redirect."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


def login_redirect(request: Request) -> Response:
    target = f"{PREFIX}/login?next={quote(request.url.path)}"
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    """A friendly page (or, for htmx, a fragment) instead of JSON for board requests."""
    viewer = getattr(request.state, "viewer", None)
    template = "_error.html" if is_htmx(request) else "error.html"
    response = render(
        request, viewer, template, {"status": status, "detail": detail}, status_code=status
    )
    if is_htmx(request):
        # htmx does not swap error responses by default; point it at the message area.
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def is_board(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


def board_error(request: Request, exc: HotlineError) -> HTMLResponse:
    return error_page(request, exc.status_code, exc.detail)
