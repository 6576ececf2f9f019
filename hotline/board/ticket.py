"""The ticket page of the staff board: the whole thread, the routing reason, KB help and actions.

Every action is a plain POST form (with the ticket version the user saw) that redirects back
with a flash message; htmx posts the same forms and swaps the ticket (`#ticket`) when the
answer is an error, so a conflict or a mistake never loses what the user typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from hotline.board._core import PREFIX, Viewer, ViewerDep, get_db, is_htmx, redirect, render
from hotline.board.i18n import translator
from hotline.board.markdown import render_markdown
from hotline.errors import Conflict, HotlineError, InvalidInput, NotFound, VersionConflict
from hotline.models import MessageKind, Ticket, TicketStatus
from hotline.services import ticket_view
from hotline.services import tickets as svc
from hotline.services.asking import MatcherCache
from hotline.services.learning import can_edit_entry

router = APIRouter()

MAX_TEXT = 20_000
MAX_REASON = 1_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_REFERENCE = re.compile(r"^[A-Za-z0-9-]{1,20}$")

Translate = Callable[..., str]


def labels(_: Translate) -> dict[str, dict[str, str]]:
    """German (or English) words for the stored values the page shows."""
    return {
        "status": {
            "new": _("neu"),
            "open": _("in Bearbeitung"),
            "waiting": _("wartet auf Rückmeldung"),
            "resolved": _("gelöst"),
            "closed": _("geschlossen"),
            "reopened": _("wieder geöffnet"),
        },
        "priority": {
            "low": _("niedrig"),
            "normal": _("normal"),
            "high": _("hoch"),
            "urgent": _("dringend"),
        },
        "channel": {
            "web": _("Web-Chat"),
            "telegram": _("Telegram"),
            "api": _("API"),
            "email": _("E-Mail"),
            "phone": _("Telefon"),
            "board": _("Mitarbeiterbereich"),
        },
        "audience": {
            "external": _("extern (Bürger/innen, Unternehmen)"),
            "internal": _("intern (Verwaltung)"),
        },
        "notified": {"city_email": _("E-Mail"), "city_webhook": _("Webhook")},
        "via": {
            "rule": _("Regel"),
            "fallback": _("Rückfallregel"),
            "default": _("Standardstadt"),
        },
        "due": {
            "none": _("keine Frist"),
            "done": _("erledigt"),
            "done_late": _("verspätet erledigt"),
            "breached": _("überschritten"),
            "soon": _("bald fällig"),
            "ok": _("im Plan"),
        },
        "trace": {
            "excluded": _("vorab ausgeschlossen"),
            "no_match": _("passt nicht"),
            "skipped": _("übersprungen"),
            "matched": _("passt"),
            "fallback": _("Rückfallregel"),
            "default": _("Standardstadt"),
        },
    }


def error_text(_: Translate, exc: HotlineError) -> str:
    """A German sentence for the service's error codes (their details are English)."""
    texts = {
        "invalid_transition": _("Dieser Statuswechsel ist nicht erlaubt."),
        "ticket_closed": _("Das Ticket ist geschlossen; es kann nicht mehr geändert werden."),
        "unknown_assignee": _("Diese Person gibt es nicht oder sie ist nicht mehr aktiv."),
        "assignee_wrong_city": _(
            "Diese Person arbeitet nicht für die zuständige Stadt. Leiten Sie das Ticket zuerst an deren Stadt weiter."
        ),
        "missing_reason": _("Bitte geben Sie einen Grund für die Weiterleitung an."),
        "unknown_city": _("Diese Stadt gibt es nicht."),
        "same_city": _("Das Ticket liegt bereits bei dieser Stadt."),
        "inactive_city": _("Diese Stadt ist in der Hotline nicht aktiv."),
        "merge_into_self": _("Ein Ticket kann nicht mit sich selbst zusammengeführt werden."),
        "merge_target_closed": _(
            "Das Zielticket ist geschlossen oder wurde selbst schon zusammengeführt."
        ),
        "merge_target_unknown": _(
            "Dieses Ticket gibt es nicht oder es liegt nicht in Ihrem Zuständigkeitsbereich."
        ),
        "missing_version": _(
            "Das Formular ist unvollständig. Bitte laden Sie die Seite neu und versuchen Sie es erneut."
        ),
        "not_a_reply": _("Nur eine Antwort dieses Tickets kann als Entwurf gespeichert werden."),
    }
    return texts.get(exc.code) or _(exc.detail)


@dataclass
class FormState:
    """What the user typed and what went wrong, for re-rendering the page without loss."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # form name → message
    conflict: bool = False
    merge_confirm: Ticket | None = None


# --- the page ----------------------------------------------------------------------------------


def _berlin(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo("Europe/Berlin")).strftime("%d.%m.%Y %H:%M")


def _page_context(
    request: Request,
    viewer: Viewer,
    reference: str,
    state: FormState,
    *,
    insert: str | None = None,
) -> dict[str, Any]:
    """Load the ticket for the viewer (404 for others), log the access and build the context."""
    db = get_db(request)
    cache: MatcherCache = request.app.state.matcher_cache
    _ = translator(viewer.lang)
    with db.read() as session:
        try:
            page = ticket_view.load_page(session, viewer.actor, reference)
        except NotFound as exc:
            raise NotFound(
                _(
                    "Das Ticket {ref} gibt es nicht oder es liegt nicht in Ihrem Zuständigkeitsbereich.",
                    ref=reference[:20],
                ),
                code="ticket_not_found",
            ) from exc
        suggestions = ticket_view.kb_suggestions(session, viewer.actor, cache, page.ticket)
        if insert and "reply" not in state.values:
            answer = ticket_view.insertable_answer(session, viewer.actor, page.ticket, insert)
            if answer is not None:
                state.values["reply"] = answer
    with db.write() as session:
        ticket_view.record_access(session, viewer.actor, page.ticket)
    return {
        "page": page,
        "t": page.ticket,
        "suggestions": [
            {
                "key": s.key,
                "title": s.title,
                "answer": s.answer,
                "html": render_markdown(s.answer),
                "score": s.score,
            }
            for s in suggestions
        ],
        "labels": labels(_),
        "form": state.values,
        "errors": state.errors,
        "conflict": state.conflict,
        "merge_confirm": state.merge_confirm,
        "when": _berlin,
        "base": f"{PREFIX}/tickets/{page.ticket.reference}",
    }


def _render_page(
    request: Request,
    viewer: Viewer,
    reference: str,
    state: FormState,
    *,
    status_code: int = 200,
    insert: str | None = None,
) -> HTMLResponse:
    context = _page_context(request, viewer, reference, state, insert=insert)
    template = "_ticket_main.html" if is_htmx(request) else "ticket.html"
    return render(request, viewer, template, context, status_code=status_code)


def _reference(reference: str) -> str:
    if not _REFERENCE.match(reference):
        raise NotFound("Diese Seite gibt es nicht.", code="ticket_not_found")
    return reference.upper()


@router.get("/tickets/{reference}", response_class=HTMLResponse)
def ticket_page(
    request: Request, viewer: ViewerDep, reference: str, insert: str | None = None
) -> HTMLResponse:
    ref = _reference(reference)
    return _render_page(request, viewer, ref, FormState(), insert=(insert or "")[:120] or None)


# --- actions -----------------------------------------------------------------------------------


def _text(value: str, limit: int = MAX_TEXT) -> str | None:
    """A cleaned text, or None when it is empty, too long or contains control characters."""
    value = value.replace("\r\n", "\n")
    if not value.strip() or len(value) > limit or _CONTROL.search(value):
        return None
    return value.strip()


def _version(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def _act(
    request: Request,
    viewer: Viewer,
    reference: str,
    form_name: str,
    state: FormState,
    change: Callable[[Session], tuple[str, str | None]],
) -> Response:
    """Run one change in a write transaction; on success redirect (with the flash message) to
    the returned URL (None: back to the ticket), on a known problem re-render the page with
    the message next to the form and everything typed still in place."""
    _ = translator(viewer.lang)
    db = get_db(request)
    try:
        with db.write() as session:
            flash, target = change(session)
    except VersionConflict:
        state.conflict = True
        state.errors[form_name] = _(
            "Nicht gespeichert: Das Ticket wurde inzwischen geändert (siehe oben)."
        )
        return _render_page(request, viewer, reference, state, status_code=409)
    except (InvalidInput, Conflict) as exc:
        state.errors[form_name] = error_text(_, exc)
        status = 422 if isinstance(exc, InvalidInput) else 409
        return _render_page(request, viewer, reference, state, status_code=status)
    return redirect(request, target or f"{PREFIX}/tickets/{reference}", flash=flash)


def _invalid(
    request: Request, viewer: Viewer, reference: str, form_name: str, state: FormState, text: str
) -> HTMLResponse:
    state.errors[form_name] = text
    return _render_page(request, viewer, reference, state, status_code=422)


Field = Annotated[str, Form(max_length=MAX_TEXT + 1000)]
Short = Annotated[str, Form(max_length=200)]


def _message(
    request: Request, viewer: Viewer, reference: str, kind: MessageKind, body: str, version: str
) -> Response:
    _ = translator(viewer.lang)
    name = "reply" if kind == MessageKind.reply else "note"
    state = FormState(values={name: body})
    text = _text(body)
    if text is None:
        return _invalid(
            request,
            viewer,
            reference,
            name,
            state,
            _("Bitte schreiben Sie einen Text (höchstens 20.000 Zeichen)."),
        )

    def change(session: Session) -> tuple[str, str | None]:
        ticket, _message = svc.add_staff_message(
            session, viewer.actor, reference, kind=kind, body=text, version=_version(version)
        )
        if kind == MessageKind.note:
            return _("Die interne Notiz wurde gespeichert."), None
        if ticket_view.delivery_channel(session, ticket) is None:
            return _(
                "Die Antwort wurde gespeichert. Es gibt keinen Kontakt, an den sie gehen kann."
            ), None
        return _("Die Antwort wurde gespeichert und wird zugestellt."), None

    return _act(request, viewer, reference, name, state, change)


@router.post("/tickets/{reference}/reply", response_class=HTMLResponse)
def reply(
    request: Request, viewer: ViewerDep, reference: str, body: Field = "", version: Short = ""
) -> Response:
    ref = _reference(reference)
    return _message(request, viewer, ref, MessageKind.reply, body, version)


@router.post("/tickets/{reference}/note", response_class=HTMLResponse)
def note(
    request: Request, viewer: ViewerDep, reference: str, body: Field = "", version: Short = ""
) -> Response:
    ref = _reference(reference)
    return _message(request, viewer, ref, MessageKind.note, body, version)


@router.post("/tickets/{reference}/assign", response_class=HTMLResponse)
def assign(
    request: Request, viewer: ViewerDep, reference: str, assignee: Short = "", version: Short = ""
) -> Response:
    ref = _reference(reference)
    _ = translator(viewer.lang)
    who = assignee.strip() or None

    def change(session: Session) -> tuple[str, str | None]:
        svc.assign_ticket(session, viewer.actor, ref, assignee=who, version=_version(version))
        if who is None:
            return _("Die Zuweisung wurde aufgehoben."), None
        if who == viewer.user.username:
            return _("Sie bearbeiten das Ticket jetzt."), None
        return _("Das Ticket wurde zugewiesen."), None

    return _act(request, viewer, ref, "assign", FormState(values={"assignee": assignee}), change)


@router.post("/tickets/{reference}/status", response_class=HTMLResponse)
def change_status(
    request: Request, viewer: ViewerDep, reference: str, to: Short = "", version: Short = ""
) -> Response:
    ref = _reference(reference)
    _ = translator(viewer.lang)
    state = FormState(values={"to": to})
    if to not in TicketStatus.__members__:
        return _invalid(
            request, viewer, ref, "status", state, _("Bitte wählen Sie einen neuen Status.")
        )
    target = TicketStatus(to)

    def change(session: Session) -> tuple[str, str | None]:
        number = _version(version)
        if number is None:
            raise InvalidInput("missing version", code="missing_version")
        svc.change_status(session, viewer.actor, ref, to=target, version=number)
        return _("Der Status ist jetzt „{status}“.", status=labels(_)["status"][to]), None

    return _act(request, viewer, ref, "status", state, change)


@router.post("/tickets/{reference}/transfer", response_class=HTMLResponse)
def transfer(
    request: Request,
    viewer: ViewerDep,
    reference: str,
    to_city: Short = "",
    reason: Annotated[str, Form(max_length=MAX_REASON + 1000)] = "",
    version: Short = "",
) -> Response:
    ref = _reference(reference)
    _ = translator(viewer.lang)
    state = FormState(values={"to_city": to_city, "reason": reason})
    if not to_city.strip():
        return _invalid(
            request, viewer, ref, "transfer", state, _("Bitte wählen Sie die Stadt, die übernimmt.")
        )
    why = _text(reason, MAX_REASON)
    if why is None:
        return _invalid(
            request,
            viewer,
            ref,
            "transfer",
            state,
            _("Bitte geben Sie einen Grund für die Weiterleitung an (höchstens 1.000 Zeichen)."),
        )

    def change(session: Session) -> tuple[str, str | None]:
        number = _version(version)
        if number is None:
            raise InvalidInput("missing version", code="missing_version")
        ticket = svc.transfer_ticket(
            session, viewer.actor, ref, to_city=to_city.strip(), reason=why, version=number
        )
        city = viewer.cities.get(ticket.responsible_city_id)
        flash = _(
            "Das Ticket {ref} wurde an {city} weitergeleitet.",
            ref=ticket.reference,
            city=city.name if city else to_city,
        )
        # An agent no longer sees a ticket of another city: back to their inbox.
        stays = viewer.actor.can_see_city(ticket.responsible_city_id)
        return flash, None if stays else f"{PREFIX}/inbox"

    return _act(request, viewer, ref, "transfer", state, change)


@router.post("/tickets/{reference}/merge", response_class=HTMLResponse)
def merge(
    request: Request,
    viewer: ViewerDep,
    reference: str,
    into: Short = "",
    confirmed: Short = "",
    version: Short = "",
) -> Response:
    ref = _reference(reference)
    _ = translator(viewer.lang)
    target_ref = into.strip().upper()
    state = FormState(values={"into": into})
    if not target_ref or not _REFERENCE.match(target_ref):
        return _invalid(
            request,
            viewer,
            ref,
            "merge",
            state,
            _("Bitte geben Sie die Nummer des Tickets an, z. B. HL-2026-000034."),
        )

    def target_of(session: Session) -> Ticket:
        try:
            return svc.get_ticket(session, viewer.actor, target_ref)
        except NotFound as exc:
            raise InvalidInput("unknown target", code="merge_target_unknown") from exc

    if confirmed != "yes":
        # First step: show which ticket absorbs this one and ask to confirm.
        db = get_db(request)
        try:
            with db.read() as session:
                source = svc.get_ticket(session, viewer.actor, ref)
                target = target_of(session)
                if target.id == source.id:
                    raise InvalidInput("self", code="merge_into_self")
                if target.merged_into_id is not None or target.status == TicketStatus.closed:
                    raise InvalidInput("closed", code="merge_target_closed")
        except InvalidInput as exc:
            return _invalid(request, viewer, ref, "merge", state, error_text(_, exc))
        state.merge_confirm = target
        return _render_page(request, viewer, ref, state)

    def change(session: Session) -> tuple[str, str | None]:
        number = _version(version)
        if number is None:
            raise InvalidInput("missing version", code="missing_version")
        target_of(session)
        source, target = svc.merge_ticket(
            session, viewer.actor, ref, into=target_ref, version=number
        )
        flash = _(
            "{source} wurde in dieses Ticket zusammengeführt und geschlossen.",
            source=source.reference,
        )
        return flash, f"{PREFIX}/tickets/{target.reference}"

    return _act(request, viewer, ref, "merge", state, change)


@router.post("/tickets/{reference}/kb-draft", response_class=HTMLResponse)
def kb_draft(
    request: Request, viewer: ViewerDep, reference: str, message_id: Short = ""
) -> Response:
    ref = _reference(reference)
    _ = translator(viewer.lang)
    ident = _version(message_id)

    def change(session: Session) -> tuple[str, str | None]:
        entry = ticket_view.save_reply_as_kb_draft(
            session, viewer.actor, ref, message_id=ident or 0
        )
        if can_edit_entry(viewer.actor, entry.city_id):
            flash = _(
                "Der Entwurf „{key}“ wurde angelegt. Prüfen und veröffentlichen Sie ihn in der Wissensdatenbank.",
                key=entry.key,
            )
        else:
            flash = _(
                "Der Entwurf „{key}“ wurde zur Prüfung angelegt; die Städte-Admins veröffentlichen ihn.",
                key=entry.key,
            )
        return flash, None

    return _act(request, viewer, ref, "kb_draft", FormState(), change)
