"""Board pages: the internal question — staff of any city ask about a digital service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from hotline.board._core import PREFIX, Viewer, ViewerDep, get_db, get_settings, redirect, render
from hotline.board.i18n import translator
from hotline.errors import InvalidInput, NotFound
from hotline.models import Priority
from hotline.schemas import RequesterIn, TicketCreate
from hotline.services import inbox as svc
from hotline.services.catalog import find_service
from hotline.services.rules import RouterCache
from hotline.services.tickets import SLAPolicy

router = APIRouter()

PRIORITY_LABELS = {
    "low": "Niedrig",
    "normal": "Normal",
    "high": "Hoch",
    "urgent": "Dringend",
}
FIELD_ERRORS = {
    "subject": "Bitte geben Sie einen Betreff an (höchstens 300 Zeichen).",
    "body": "Bitte beschreiben Sie Ihre Frage (höchstens 20.000 Zeichen).",
    "service": "Bitte wählen Sie einen Dienst aus der Liste.",
    "priority": "Bitte wählen Sie eine Priorität aus der Liste.",
}


def _page(
    request: Request,
    viewer: Viewer,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    asked: svc.AskedTicket | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with get_db(request).read() as session:
        services = svc.services_for_filter(session)
    return render(
        request,
        viewer,
        "internal.html",
        {
            "services": services,
            "priorities": PRIORITY_LABELS,
            "values": values or {"priority": "normal"},
            "errors": errors or {},
            "asked": asked,
        },
        status_code=status_code,
    )


@router.get("/internal", response_class=HTMLResponse)
def internal_form(
    request: Request,
    viewer: ViewerDep,
    sent: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    asked = None
    if sent:
        try:
            with get_db(request).read() as session:
                asked = svc.asked_ticket(session, viewer.actor, sent)
        except NotFound:
            asked = None
    return _page(request, viewer, asked=asked)


def _validate(
    session: Any, values: dict[str, str], viewer: Viewer
) -> tuple[TicketCreate | None, dict[str, str]]:
    errors: dict[str, str] = {}
    service = values["service"]
    if service and find_service(session, service) is None:
        errors["service"] = FIELD_ERRORS["service"]
    if values["priority"] not in PRIORITY_LABELS:
        errors["priority"] = FIELD_ERRORS["priority"]
    requester = RequesterIn(name=viewer.user.display_name[:200])
    try:
        data = TicketCreate(
            subject=values["subject"],
            body=values["body"],
            service=service or None,
            priority=Priority(values["priority"])
            if values["priority"] in PRIORITY_LABELS
            else Priority.normal,
            requester=requester,
        )
    except ValidationError as exc:
        for problem in exc.errors():
            name = str(problem["loc"][0]) if problem["loc"] else "body"
            errors.setdefault(name, FIELD_ERRORS.get(name, FIELD_ERRORS["body"]))
        return None, errors
    return (None if errors else data), errors


@router.post("/internal", response_class=HTMLResponse)
def internal_submit(
    request: Request,
    viewer: ViewerDep,
    subject: Annotated[str, Form(max_length=2000)] = "",
    body: Annotated[str, Form(max_length=40_000)] = "",
    service: Annotated[str, Form(max_length=200)] = "",
    priority: Annotated[str, Form(max_length=20)] = "normal",
) -> Response:
    values = {
        "subject": subject,
        "body": body,
        "service": service.strip(),
        "priority": priority,
    }
    _ = translator(viewer.lang)
    settings = get_settings(request)
    cache: RouterCache = request.app.state.router_cache
    db = get_db(request)
    with db.read() as session:
        data, errors = _validate(session, values, viewer)
    if data is None:
        translated = {k: _(v) for k, v in errors.items()}
        return _page(request, viewer, values=values, errors=translated, status_code=422)
    try:
        with db.write() as session:
            ticket = svc.submit_internal_question(
                session,
                viewer.actor,
                data,
                default_city=settings.default_city,
                sla=SLAPolicy(settings.sla_first_response_hours, settings.sla_resolution_hours),
                router_cache=cache,
            )
            reference = ticket.reference
    except InvalidInput as exc:
        return _page(
            request, viewer, values=values, errors={"form": _(exc.detail)}, status_code=422
        )
    return redirect(
        request,
        f"{PREFIX}/internal?sent={reference}",
        flash=_("Ihre Frage wurde als {ref} aufgenommen.", ref=reference),
    )
