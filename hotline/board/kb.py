"""Board pages of the knowledge base: list and search, entry, editor, variants, gaps, try-it."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from hotline.board._core import (
    PREFIX,
    AdminDep,
    Viewer,
    ViewerDep,
    get_db,
    is_htmx,
    redirect,
    render,
)
from hotline.board.i18n import translator
from hotline.board.markdown import render_markdown
from hotline.errors import Conflict, Forbidden, InvalidInput, NotFound, VersionConflict
from hotline.models import Audience, City, KBEntry, Service
from hotline.services import kb as kb_service
from hotline.services import learning
from hotline.services.asking import MatcherCache
from hotline.services.kb import SHARED, EntryDraft, EntryFilter

router = APIRouter()

KB = f"{PREFIX}/kb"
PAGE_SIZE = 25
BERLIN = ZoneInfo("Europe/Berlin")
AUDIENCE_LABELS = {
    "external": "Bürger und Unternehmen (extern)",
    "internal": "Mitarbeitende (intern)",
}
STATUS_LABELS = {"published": "Veröffentlicht", "draft": "Entwurf"}
DECISION_LABELS = {
    "answer": "Antwort",
    "suggest": "Vorschläge („Meinten Sie …?“)",
    "handover": "Übergabe an einen Menschen",
}
# Why the bot would not answer directly (kb.MatchResult.reason).
HOLD_BACK_REASONS = {
    "low_score": (
        "Die Treffergüte ist zu niedrig für eine direkte Antwort: Die Frage passt nur teilweise "
        "zum Eintrag."
    ),
    "low_confidence": (
        "Die geschätzte Sicherheit liegt unter der Schwelle für eine direkte Antwort: Fragen "
        "mit solchen Werten waren in den geprüften Fragesätzen zu oft falsch zugeordnet."
    ),
    "close_second": "Ein anderer Eintrag liegt zu knapp dahinter; der Bot fragt lieber nach.",
    "other_body": (
        "Die Frage nennt eine andere Stelle (etwa Bank, Finanzamt oder Krankenkasse), von der "
        "der Eintrag nicht handelt: Sie betrifft wohl deren Angebot, nicht das der Stadt."
    ),
    "unknown_words": (
        "Ein großer Teil der Frage besteht aus Wörtern, die in keinem Eintrag vorkommen: "
        "Sie betrifft wohl etwas anderes."
    ),
    "single_word": (
        "Die Frage hat nur ein einziges inhaltliches Wort, und es steht nicht im Titel des "
        "Eintrags."
    ),
}
CONFLICT_NOTE = (
    "Jemand anderes hat diesen Eintrag inzwischen geändert (jetzt Version {version}). Ihre "
    "Eingaben sind unten erhalten. Vergleichen Sie mit der aktuellen Fassung und speichern Sie "
    "erneut, um sie zu ersetzen."
)
PREVIEW_NOTE = "Die Vorschau ist aktualisiert. Der Eintrag ist noch nicht gespeichert."
SOURCE_LABELS = {"choice": "Bürger hat gewählt", "staff": "Von Mitarbeitenden verknüpft"}
# Service-layer messages arrive in English where the API shares them; the board says it in German.
_SERVICE_TEXTS = {
    "candidate_not_found": "Diesen Vorschlag gibt es nicht (mehr).",
    "candidate_decided": "Über diesen Vorschlag wurde schon entschieden.",
    "not_kb_editor": "Diesen Eintrag dürfen Sie nicht bearbeiten: Einträge einer Stadt "
    "bearbeitet der Städte-Admin dieser Stadt, gemeinsame Einträge die Koordination.",
    "empty_question": "Bitte geben Sie eine Frage ein.",
    "unknown_city": "Diese Stadt gibt es nicht.",
}


def _cache(request: Request) -> MatcherCache:
    return request.app.state.matcher_cache  # type: ignore[no-any-return]


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:  # SQLite hands back naive UTC
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M")


def _german(exc: Exception) -> str:
    code = getattr(exc, "code", "")
    return _SERVICE_TEXTS.get(code, getattr(exc, "detail", str(exc)))


def _services(session: Session) -> list[Service]:
    return list(session.exec(select(Service).order_by(col(Service.name))).all())


def _base_ctx(viewer: Viewer) -> dict[str, Any]:
    return {
        "when": _when,
        "audience_labels": AUDIENCE_LABELS,
        "status_labels": STATUS_LABELS,
        "decision_labels": DECISION_LABELS,
        "hold_back_reasons": HOLD_BACK_REASONS,
        "source_labels": SOURCE_LABELS,
        "city_name": viewer.city_name,
    }


def _visible_cities(viewer: Viewer) -> list[City]:
    """The cities a viewer may filter and ask by: all for the coordination, else their own."""
    cities = sorted(viewer.cities.values(), key=lambda c: c.name)
    if viewer.is_coordinator:
        return cities
    return [c for c in cities if c.id == viewer.user.city_id]


@dataclass
class Row:
    """One line of the list: the entry with what the table shows beside it."""

    entry: KBEntry
    service: str
    city: str
    score: float | None = None


# --- list and search ---------------------------------------------------------------------------


@router.get("/kb", response_class=HTMLResponse)
def kb_list(
    request: Request,
    viewer: ViewerDep,
    q: Annotated[str, Query(max_length=500)] = "",
    mode: Annotated[str, Query(max_length=10)] = "text",
    city: Annotated[str, Query(max_length=64)] = "",
    service: Annotated[str, Query(max_length=120)] = "",
    audience: Annotated[str, Query(max_length=16)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    _ = translator(viewer.lang)
    mode = "question" if mode == "question" else "text"
    db = get_db(request)
    fuzzy = mode == "question" and q.strip() != ""
    flt = EntryFilter(
        text="" if fuzzy else q,
        city=city or None,
        service=service or None,
        audience=audience or None,
        status=status or None,
    )
    error: str | None = None
    with db.read() as session:
        services = _services(session)
        names = {s.id: s.name for s in services}
        try:
            rows = kb_service.list_entries(session, viewer.actor, flt)
        except InvalidInput as exc:
            error, rows = _german(exc), []
        scores: dict[str, float] = {}
        if fuzzy and rows:
            match_city = city if city and city != SHARED and viewer.is_coordinator else None
            hits = learning.find_by_question(
                session, viewer.actor, _cache(request), question=q, city=match_city, limit=50
            )
            by_key = {row.key: row for row in rows}
            scores = {key: score for key, score in hits if key in by_key}
            rows = [by_key[key] for key in scores]
    counts = Counter(str(r.status) for r in rows)
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = min(page, pages)
    shown = [
        Row(
            entry=r,
            service=names.get(r.service_id, "—") if r.service_id else "—",
            city=viewer.city_name(r.city_id) if r.city_id else _("Alle Städte"),
            score=scores.get(r.key),
        )
        for r in rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    ]
    params = {
        k: v
        for k, v in {
            "q": q,
            "mode": mode if q else "",
            "city": city,
            "service": service,
            "audience": audience,
            "status": status,
        }.items()
        if v
    }

    def page_url(n: int) -> str:
        return f"{KB}?{urlencode({**params, 'page': n})}"

    ctx = {
        **_base_ctx(viewer),
        "q": q,
        "mode": mode,
        "fuzzy": fuzzy,
        "f": {"city": city, "service": service, "audience": audience, "status": status},
        "rows": shown,
        "total": len(rows),
        "counts": counts,
        "page": page,
        "pages": pages,
        "page_url": page_url,
        "services": services,
        "cities": _visible_cities(viewer),
        "shared": SHARED,
        "error": error,
        "try_cities": _visible_cities(viewer),
    }
    restore = request.headers.get("hx-history-restore-request") == "true"
    if is_htmx(request) and not restore:
        return render(request, viewer, "_kb_results.html", ctx)
    return render(request, viewer, "kb_list.html", ctx, status_code=422 if error else 200)


# --- try a question ---------------------------------------------------------------------------------


@router.get("/kb/try", response_class=HTMLResponse)
def kb_try(
    request: Request,
    viewer: ViewerDep,
    q: Annotated[str, Query(max_length=2000)] = "",
    city: Annotated[str, Query(max_length=64)] = "",
    audience: Annotated[str, Query(max_length=16)] = "external",
) -> HTMLResponse:
    audience = audience if audience in AUDIENCE_LABELS else "external"
    if not q and not city and viewer.city is not None:
        city = viewer.city.key
    trial: learning.Trial | None = None
    error: str | None = None
    status_code = 200
    if q.strip():
        with get_db(request).read() as session:
            try:
                trial = learning.try_question(
                    session,
                    viewer.actor,
                    _cache(request),
                    question=q,
                    city=city or None,
                    audience=Audience(audience),
                )
            except (InvalidInput, Forbidden) as exc:
                error, status_code = _german(exc), exc.status_code
    ctx = {
        **_base_ctx(viewer),
        "tq": q,
        "tcity": city,
        "taudience": audience,
        "trial": trial,
        "try_error": error,
        "try_cities": _visible_cities(viewer),
        "answer_html": render_markdown(trial.entry.answer) if trial and trial.entry else None,
        "can_create": viewer.is_admin,
        "city_names": {c.key: c.name for c in viewer.cities.values()},
    }
    if is_htmx(request) and request.headers.get("hx-history-restore-request") != "true":
        # A refused question is shown in the result area, not as an error page.
        return render(request, viewer, "_kb_try_result.html", ctx)
    return render(request, viewer, "kb_try.html", ctx, status_code=status_code)


# --- Markdown preview ---------------------------------------------------------------------------


@router.post("/kb/preview", response_class=HTMLResponse)
def kb_preview(
    request: Request,
    viewer: ViewerDep,
    answer: Annotated[str, Form(max_length=50_000)] = "",
) -> HTMLResponse:
    return render(request, viewer, "_kb_preview.html", {"preview": render_markdown(answer)})


# --- candidate variants -------------------------------------------------------------------------


@router.get("/kb/candidates", response_class=HTMLResponse)
def kb_candidates(request: Request, viewer: AdminDep) -> HTMLResponse:
    with get_db(request).read() as session:
        candidates = learning.editable_candidates(session, viewer.actor)
    city_names = {c.key: c.name for c in viewer.cities.values()}
    return render(
        request,
        viewer,
        "kb_candidates.html",
        {**_base_ctx(viewer), "candidates": candidates, "city_names": city_names},
    )


def _decided(request: Request, viewer: Viewer, text: str, *, candidate_id: int) -> Response:
    if is_htmx(request):
        return render(
            request,
            viewer,
            "_kb_candidate_done.html",
            {"message": text, "candidate_id": candidate_id},
        )
    return redirect(request, f"{KB}/candidates", flash=text)


@router.post("/kb/candidates/{candidate_id}/accept")
def kb_candidate_accept(
    request: Request,
    viewer: AdminDep,
    candidate_id: int,
    question: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    _ = translator(viewer.lang)
    try:
        with get_db(request).write() as session:
            entry = learning.accept_candidate(
                session, viewer.actor, candidate_id, question=question or None
            )
            title = entry.title
    except (NotFound, Conflict, Forbidden, InvalidInput) as exc:
        exc.detail = _german(exc)
        raise
    text = _("Die Frage ist jetzt eine Variante von „{title}“.", title=title)
    return _decided(request, viewer, text, candidate_id=candidate_id)


@router.post("/kb/candidates/{candidate_id}/reject")
def kb_candidate_reject(request: Request, viewer: AdminDep, candidate_id: int) -> Response:
    _ = translator(viewer.lang)
    try:
        with get_db(request).write() as session:
            candidate = learning.reject_candidate(session, viewer.actor, candidate_id)
            question = candidate.question
    except (NotFound, Conflict, Forbidden) as exc:
        exc.detail = _german(exc)
        raise
    text = _("Der Vorschlag „{question}“ wurde verworfen.", question=question)
    return _decided(request, viewer, text, candidate_id=candidate_id)


# --- gaps ------------------------------------------------------------------------------------------


@router.get("/kb/gaps", response_class=HTMLResponse)
def kb_gaps(
    request: Request,
    viewer: ViewerDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    city: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    if not viewer.is_coordinator:
        city = ""
    cache = _cache(request)
    with get_db(request).read() as session:
        analyzer = cache.run(session, lambda m: m.analyzer)
        try:
            groups = learning.gaps(session, viewer.actor, analyzer, days=days, city=city or None)
        except InvalidInput as exc:
            exc.detail = _german(exc)
            raise
    city_names = {c.key: c.name for c in viewer.cities.values()}
    own = viewer.city.key if viewer.city else ""

    def new_url(question: str, cities: dict[str, int]) -> str:
        target = city or (max(cities, key=lambda k: cities[k]) if cities else own)
        params = {"question": question}
        if target and target != "-":
            params["city"] = target
        return f"{KB}/new?{urlencode(params)}"

    return render(
        request,
        viewer,
        "kb_gaps.html",
        {
            **_base_ctx(viewer),
            "groups": groups,
            "days": days,
            "gcity": city,
            "cities": _visible_cities(viewer),
            "city_names": city_names,
            "new_url": new_url,
            "can_create": viewer.is_admin,
        },
    )


# --- create, edit, delete -----------------------------------------------------------------------


@dataclass
class CityChoice:
    value: str  # city key, "" = shared by all cities
    label: str


def _city_choices(session: Session, viewer: Viewer) -> list[CityChoice]:
    _ = translator(viewer.lang)
    ids = kb_service.editable_city_ids(session, viewer.actor)
    choices = []
    for city_id in ids:
        if city_id is None:
            choices.append(CityChoice("", _("Alle Städte (gemeinsamer Eintrag)")))
        elif (city := viewer.cities.get(city_id)) is not None:
            choices.append(CityChoice(city.key, city.name))
    return choices


def _form(
    request: Request,
    viewer: Viewer,
    *,
    draft: EntryDraft,
    new: bool,
    version: int = 0,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    conflict: EntryDraft | None = None,
    entry: KBEntry | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with get_db(request).read() as session:
        services = _services(session)
        choices = _city_choices(session, viewer)
    # An entry of a city the viewer cannot pick keeps its value visible (the save refuses it).
    if draft.city is not None and all(c.value != draft.city for c in choices):
        city = next((c for c in viewer.cities.values() if c.key == draft.city), None)
        choices.append(CityChoice(draft.city, city.name if city else draft.city))
    return render(
        request,
        viewer,
        "kb_form.html",
        {
            **_base_ctx(viewer),
            "draft": draft,
            "new": new,
            "version": version,
            "errors": errors or {},
            "message": message,
            "conflict": conflict,
            "conflict_html": render_markdown(conflict.answer) if conflict else None,
            "preview": render_markdown(draft.answer),
            "services": services,
            "city_choices": choices,
            "entry": entry,
            "action": f"{KB}/new" if new else f"{KB}/{draft.key}/edit",
        },
        status_code=status_code,
    )


def _draft(
    *,
    key: str,
    title: str,
    service: str,
    city: str,
    audience: str,
    status: str,
    questions: str,
    answer: str,
) -> EntryDraft:
    return EntryDraft(
        key=key.strip(),
        title=title,
        service=service,
        city=city or None,
        audience=audience,
        status=status,
        questions=[line.strip() for line in questions.splitlines() if line.strip()],
        answer=answer,
    )


Text = Annotated[str, Form(max_length=300)]
LongText = Annotated[str, Form(max_length=50_000)]


@router.get("/kb/new", response_class=HTMLResponse)
def kb_new(
    request: Request,
    viewer: AdminDep,
    question: Annotated[str, Query(max_length=500)] = "",
    title: Annotated[str, Query(max_length=300)] = "",
    city: Annotated[str, Query(max_length=64)] = "",
    service: Annotated[str, Query(max_length=120)] = "",
) -> HTMLResponse:
    with get_db(request).read() as session:
        choices = _city_choices(session, viewer)
    values = [c.value for c in choices]
    if city not in values:
        own = viewer.city.key if viewer.city else ""
        city = own if own in values else (values[0] if values else "")
    draft = EntryDraft(
        key="",
        title=title or question.strip().rstrip("?"),
        service=service,
        city=city or None,
        audience="external",
        status="draft",
        questions=[question.strip()] if question.strip() else [],
        answer="",
    )
    return _form(request, viewer, draft=draft, new=True)


@router.post("/kb/new", response_class=HTMLResponse)
def kb_create(
    request: Request,
    viewer: AdminDep,
    key: Annotated[str, Form(max_length=200)] = "",
    title: Text = "",
    service: Text = "",
    city: Text = "",
    audience: Text = "external",
    status: Text = "draft",
    questions: LongText = "",
    answer: LongText = "",
    action: Annotated[str, Form(max_length=20)] = "save",
) -> Response:
    _ = translator(viewer.lang)
    draft = _draft(
        key=key,
        title=title,
        service=service,
        city=city,
        audience=audience,
        status=status,
        questions=questions,
        answer=answer,
    )
    if action == "preview":
        return _form(request, viewer, draft=draft, new=True, message=PREVIEW_NOTE)
    try:
        with get_db(request).write() as session:
            row = kb_service.create_entry(session, viewer.actor, draft)
            created = row.key
    except InvalidInput as exc:
        return _form(
            request,
            viewer,
            draft=draft,
            new=True,
            errors=exc.extra.get("errors") or {exc.extra.get("field") or "key": exc.detail},
            message=exc.detail,
            status_code=422,
        )
    return redirect(request, f"{KB}/{created}", flash=_("Der Eintrag wurde angelegt."))


@router.get("/kb/{key}", response_class=HTMLResponse)
def kb_entry(request: Request, viewer: ViewerDep, key: str) -> HTMLResponse:
    with get_db(request).read() as session:
        row = kb_service.staff_entry(session, viewer.actor, key)
        service = session.get(Service, row.service_id) if row.service_id else None
        candidates = [
            c
            for c in learning.list_candidates(
                session, viewer.actor, status=learning.CandidateStatus.pending
            )
            if c.entry == row.key
        ]
    can_edit = learning.can_edit_entry(viewer.actor, row.city_id)
    return render(
        request,
        viewer,
        "kb_entry.html",
        {
            **_base_ctx(viewer),
            "entry": row,
            "service": service,
            "answer_html": render_markdown(row.answer),
            "can_edit": can_edit,
            "pending": candidates,
        },
    )


def _editable(request: Request, viewer: Viewer, key: str) -> tuple[KBEntry, EntryDraft]:
    with get_db(request).read() as session:
        row = kb_service.staff_entry(session, viewer.actor, key)
        if not learning.can_edit_entry(viewer.actor, row.city_id):
            raise Forbidden(_SERVICE_TEXTS["not_kb_editor"], code="not_kb_editor")
        return row, EntryDraft.of(session, row)


@router.get("/kb/{key}/edit", response_class=HTMLResponse)
def kb_edit(request: Request, viewer: ViewerDep, key: str) -> HTMLResponse:
    row, draft = _editable(request, viewer, key)
    return _form(request, viewer, draft=draft, new=False, version=row.version, entry=row)


@router.post("/kb/{key}/edit", response_class=HTMLResponse)
def kb_save(
    request: Request,
    viewer: ViewerDep,
    key: str,
    version: Annotated[int, Form(ge=0)] = 0,
    title: Text = "",
    service: Text = "",
    city: Text = "",
    audience: Text = "external",
    status: Text = "draft",
    questions: LongText = "",
    answer: LongText = "",
    action: Annotated[str, Form(max_length=20)] = "save",
) -> Response:
    _ = translator(viewer.lang)
    row, _stored = _editable(request, viewer, key)
    draft = _draft(
        key=key,
        title=title,
        service=service,
        city=city,
        audience=audience,
        status=status,
        questions=questions,
        answer=answer,
    )
    if action == "preview":
        return _form(
            request,
            viewer,
            draft=draft,
            new=False,
            version=version,
            entry=row,
            message=PREVIEW_NOTE,
        )
    try:
        with get_db(request).write() as session:
            kb_service.update_entry(session, viewer.actor, key, draft, version=version)
    except VersionConflict:
        # Keep what was typed; the form now carries the current version, so saving again
        # deliberately replaces the other change.
        current, stored = _editable(request, viewer, key)
        return _form(
            request,
            viewer,
            draft=draft,
            new=False,
            version=current.version,
            entry=current,
            conflict=stored,
            message=_(CONFLICT_NOTE, version=current.version),
            status_code=409,
        )
    except InvalidInput as exc:
        return _form(
            request,
            viewer,
            draft=draft,
            new=False,
            version=version,
            entry=row,
            errors=exc.extra.get("errors") or {exc.extra.get("field") or "title": exc.detail},
            message=exc.detail,
            status_code=422,
        )
    return redirect(request, f"{KB}/{key}", flash=_("Der Eintrag wurde gespeichert."))


@router.post("/kb/{key}/delete")
def kb_delete(
    request: Request,
    viewer: AdminDep,
    key: str,
    version: Annotated[int | None, Form()] = None,
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    _ = translator(viewer.lang)
    if confirm != "yes":
        return redirect(
            request,
            f"{KB}/{key}",
            flash=_("Nicht gelöscht: Bitte bestätigen Sie das Löschen mit dem Häkchen."),
        )
    with get_db(request).write() as session:
        row = kb_service.staff_entry(session, viewer.actor, key)
        title = row.title
        kb_service.delete_entry(session, viewer.actor, key, version=version)
    return redirect(request, KB, flash=_("Der Eintrag „{title}“ wurde gelöscht.", title=title))
