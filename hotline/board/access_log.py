"""Board page: the staff access log — who opened which ticket and when (coordinators only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from hotline.board._core import PREFIX, CoordinatorDep, get_db, render
from hotline.errors import InvalidInput
from hotline.services import privacy as svc
from hotline.services.tickets import decode_cursor

router = APIRouter()

BERLIN = ZoneInfo("Europe/Berlin")
DEFAULT_LIMIT = 50


@dataclass
class Filters:
    """The page's query string, cleaned: a value that does not parse is dropped, not an error."""

    user: str
    ticket: str
    since: date | None
    until: date | None
    limit: int

    def url(self, **override: Any) -> str:
        values: dict[str, Any] = {
            "user": self.user,
            "ticket": self.ticket,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "limit": "" if self.limit == DEFAULT_LIMIT else str(self.limit),
        }
        values.update(override)
        query = urlencode([(k, str(v)) for k, v in values.items() if v])
        return f"{PREFIX}/access-log?{query}" if query else f"{PREFIX}/access-log"

    @property
    def active(self) -> bool:
        return bool(self.user or self.ticket or self.since or self.until)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _berlin(value: datetime) -> str:
    return value.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M:%S")


TextQ = Annotated[str | None, Query(max_length=120)]


@router.get("/access-log", response_class=HTMLResponse)
def access_log(
    request: Request,
    viewer: CoordinatorDep,
    user: TextQ = None,
    ticket: TextQ = None,
    since: TextQ = None,
    until: TextQ = None,
    limit: TextQ = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> HTMLResponse:
    """Every opening of a ticket page by staff, newest first, filtered by person, ticket and
    date (inclusive, local time), in keyset pages."""
    size = int(limit) if limit and limit.isdigit() else DEFAULT_LIMIT
    f = Filters(
        user=(user or "").strip(),
        ticket=(ticket or "").strip().upper(),
        since=_date(since),
        until=_date(until),
        limit=size if size in svc.ACCESS_PAGE_SIZES else DEFAULT_LIMIT,
    )
    error = None
    if cursor:
        try:
            decode_cursor(cursor)
        except InvalidInput:  # a damaged link: start again at the first page
            error = "Der Link zur Seite ist ungültig; die erste Seite wird angezeigt."
            cursor = None
    with get_db(request).read() as session:
        page = svc.access_log(
            session,
            viewer.actor,
            user=f.user or None,
            ticket=f.ticket or None,
            since=f.since,
            until=f.until,
            limit=f.limit,
            cursor=cursor,
        )
    return render(
        request,
        viewer,
        "access_log.html",
        {
            "f": f,
            "page": page,
            "error": error,
            "first_page": not cursor,
            "next_url": f.url(cursor=page.next_cursor) if page.next_cursor else None,
            "when": _berlin,
            "page_sizes": svc.ACCESS_PAGE_SIZES,
        },
    )
