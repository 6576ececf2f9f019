"""Board pages: the inbox — the viewer's city's queue with filters, search, sorting and paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hotline.board._core import PREFIX, Viewer, ViewerDep, get_db, render
from hotline.board.i18n import translator
from hotline.db import utcnow
from hotline.domain import Audience, Channel
from hotline.models import TicketStatus
from hotline.services import inbox as svc

router = APIRouter()

STATUS_LABELS = {
    "new": "Neu",
    "open": "In Bearbeitung",
    "waiting": "Wartet auf Rückmeldung",
    "reopened": "Wieder geöffnet",
    "resolved": "Gelöst",
    "closed": "Geschlossen",
}
CHANNEL_LABELS = {
    "web": "Web-Chat",
    "telegram": "Telegram",
    "api": "API",
    "email": "E-Mail",
    "phone": "Telefon",
    "board": "Board (intern)",
}
AUDIENCE_LABELS = {"external": "Bürger/Unternehmen", "internal": "Intern (Verwaltung)"}
SORT_LABELS = {
    "newest": "Neueste zuerst",
    "oldest": "Älteste zuerst",
    "due": "Erstantwort fällig – früheste zuerst",
}


@dataclass
class Filters:
    """The query string of the inbox, cleaned: unknown values are dropped, not errors."""

    status: list[str]
    service: str
    audience: str
    channel: str
    assigned: str
    breached: bool
    city: str
    q: str
    sort: str
    limit: int

    def params(self, **override: Any) -> list[tuple[str, str]]:
        """The query parameters for a link (without the cursor), with some values replaced."""
        values: dict[str, Any] = {
            "status": self.status,
            "service": self.service,
            "audience": self.audience,
            "channel": self.channel,
            "assigned": self.assigned,
            "breached": "1" if self.breached else "",
            "city": self.city,
            "q": self.q,
            "sort": "" if self.sort == "newest" else self.sort,
            "limit": "" if self.limit == 50 else str(self.limit),
        }
        values.update(override)
        out: list[tuple[str, str]] = []
        for key, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                if item:
                    out.append((key, str(item)))
        return out

    def url(self, path: str = f"{PREFIX}/inbox", **override: Any) -> str:
        query = urlencode(self.params(**override))
        return f"{path}?{query}" if query else path

    @property
    def active(self) -> bool:
        return bool(
            self.status
            or self.service
            or self.audience
            or self.channel
            or self.assigned
            or self.breached
            or self.city
            or self.q
        )


def _filters(
    viewer: Viewer,
    status: list[str] | None,
    service: str | None,
    audience: str | None,
    channel: str | None,
    assigned: str | None,
    breached: str | None,
    city: str | None,
    q: str | None,
    sort: str | None,
    limit: str | None,
) -> Filters:
    known_cities = {c.key for c in viewer.cities.values()}
    return Filters(
        status=[s for s in dict.fromkeys(status or []) if s in STATUS_LABELS],
        service=(service or "").strip()[:120],
        audience=audience if audience in AUDIENCE_LABELS else "",
        channel=channel if channel in CHANNEL_LABELS else "",
        assigned=assigned if assigned in ("mine", "unassigned") else "",
        breached=breached in ("1", "true", "on"),
        # Only a coordinator chooses the city; for everyone else the service layer keeps the
        # viewer's own city whatever the URL says, and the page does not pretend otherwise.
        city=city if viewer.is_coordinator and city in known_cities else "",
        q=(q or "").strip()[:200],
        sort=sort if sort in SORT_LABELS else "newest",
        limit=int(limit) if limit and limit.isdigit() and int(limit) in svc.PAGE_SIZES else 50,
    )


def _query(f: Filters, cursor: str | None = None) -> svc.InboxQuery:
    return svc.InboxQuery(
        status=[TicketStatus(s) for s in f.status],
        service=f.service or None,
        audience=Audience(f.audience) if f.audience else None,
        channel=Channel(f.channel) if f.channel else None,
        assigned=svc.Assigned(f.assigned) if f.assigned else None,
        breached=f.breached,
        city=f.city or None,
        text=f.q or None,
        sort=svc.Sort(f.sort),
        limit=f.limit,
        cursor=cursor or None,
    )


StatusQ = Annotated[list[str] | None, Query(max_length=20)]
TextQ = Annotated[str | None, Query(max_length=200)]
KeyQ = Annotated[str | None, Query(max_length=120)]


def age_text(_: Any, created: datetime, now: datetime) -> str:
    minutes = max(0, int((now - created).total_seconds() // 60))
    if minutes < 60:
        return _("{n} min", n=minutes)
    hours = minutes // 60
    if hours < 48:
        return _("{n} h", n=hours)
    return _("{n} Tage", n=hours // 24)


def due_text(_: Any, due: datetime | None, now: datetime) -> str:
    if due is None:
        return ""
    minutes = int((due - now).total_seconds() // 60)
    span = abs(minutes)
    if span < 60:
        amount = _("{n} min", n=span)
    elif span < 48 * 60:
        amount = _("{n} h", n=span // 60)
    else:
        amount = _("{n} Tage", n=span // (24 * 60))
    return _("seit {t}", t=amount) if minutes < 0 else _("in {t}", t=amount)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, viewer: ViewerDep) -> Response:
    return RedirectResponse(f"{PREFIX}/inbox", status_code=303)


@router.get("/inbox", response_class=HTMLResponse)
def inbox(
    request: Request,
    viewer: ViewerDep,
    status: StatusQ = None,
    service: KeyQ = None,
    audience: KeyQ = None,
    channel: KeyQ = None,
    assigned: KeyQ = None,
    breached: KeyQ = None,
    city: KeyQ = None,
    q: TextQ = None,
    sort: KeyQ = None,
    limit: KeyQ = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> HTMLResponse:
    f = _filters(
        viewer, status, service, audience, channel, assigned, breached, city, q, sort, limit
    )
    now = utcnow()
    with get_db(request).read() as session:
        page = svc.inbox_page(session, viewer.actor, _query(f, cursor), now=now)
        services = svc.services_for_filter(session)
    _ = translator(viewer.lang)
    next_url = f.url(cursor=page.next_cursor) if page.next_cursor else None
    return render(
        request,
        viewer,
        "inbox.html",
        {
            "f": f,
            "page": page,
            "services": services,
            "now": now,
            "first_page": not cursor,
            "next_url": next_url,
            "poll_url": f.url(f"{PREFIX}/inbox/new", since=str(page.latest_id), known="0"),
            "status_labels": STATUS_LABELS,
            "channel_labels": CHANNEL_LABELS,
            "audience_labels": AUDIENCE_LABELS,
            "sort_labels": SORT_LABELS,
            "page_sizes": svc.PAGE_SIZES,
            "age": lambda created: age_text(_, created, now),
            "due": lambda due: due_text(_, due, now),
            "scope_name": viewer.city_name(page.city_id) if page.city_id else _("alle Städte"),
        },
    )


@router.get("/inbox/new", response_class=HTMLResponse)
def inbox_new(
    request: Request,
    viewer: ViewerDep,
    since: Annotated[int, Query(ge=0)] = 0,
    known: Annotated[int, Query(ge=0)] = 0,
    status: StatusQ = None,
    service: KeyQ = None,
    audience: KeyQ = None,
    channel: KeyQ = None,
    assigned: KeyQ = None,
    breached: KeyQ = None,
    city: KeyQ = None,
    q: TextQ = None,
    sort: KeyQ = None,
    limit: KeyQ = None,
) -> Response:
    """Polled by the inbox: how many tickets arrived since the page was loaded. Answers 204
    (htmx leaves the page alone) while the number is unchanged, so nothing is re-announced."""
    f = _filters(
        viewer, status, service, audience, channel, assigned, breached, city, q, sort, limit
    )
    with get_db(request).read() as session:
        count = svc.count_newer(session, viewer.actor, _query(f), since)
    if count == known and request.headers.get("hx-request") == "true":
        return Response(status_code=204)
    return render(
        request,
        viewer,
        "_inbox_new.html",
        {
            "count": count,
            "inbox_url": f.url(),
            "poll_url": f.url(f"{PREFIX}/inbox/new", since=str(since), known=str(count)),
        },
    )
