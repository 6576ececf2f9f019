"""Board pages of the administration: users, cities, API tokens and the service catalogue.

City admins manage their own city, the coordinator the whole network; agents get 403 from
`AdminDep`, and hotline.services.admin checks every read and change again. One-time secrets
(generated passwords, API tokens) are rendered into the answer of the POST that made them and
are never stored or shown again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from hotline.board._core import (
    PREFIX,
    AdminDep,
    CoordinatorDep,
    Viewer,
    get_db,
    redirect,
    render,
)
from hotline.board.i18n import translator
from hotline.errors import Forbidden, HotlineError, InvalidInput
from hotline.models import City, Role, StaffUser, TokenScope
from hotline.services import admin as svc
from hotline.services.catalog import city_keys

router = APIRouter()
BASE = f"{PREFIX}/admin"
PER_PAGE = 50
Text = Annotated[str, Form(max_length=2000)]
LongText = Annotated[str, Form(max_length=10000)]
_BERLIN = ZoneInfo("Europe/Berlin")


def _local(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return "—"
    return value.astimezone(_BERLIN).strftime("%d.%m.%Y %H:%M" if with_time else "%d.%m.%Y")


def message(_: Callable[..., str], exc: HotlineError) -> str:
    """The error in the viewer's language (service messages carry their template and values)."""
    template = exc.extra.get("msg")
    if isinstance(template, str):
        return _(template, **exc.extra.get("values", {}))
    return _(exc.detail)


def _form_errors(_: Callable[..., str], exc: HotlineError) -> dict[str, str]:
    name = exc.extra.get("field") if isinstance(exc, InvalidInput) else None
    return {str(name) if name else "form": message(_, exc)}


def _page(
    request: Request,
    viewer: Viewer,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    base = {
        "section": context.pop("section", ""),
        "when": _local,
        "role_label": _role_label(viewer),
        "errors": context.pop("errors", {}),
    }
    base.update(context)
    return render(request, viewer, template, base, status_code=status_code)


def _role_label(viewer: Viewer) -> Callable[[str], str]:
    _ = translator(viewer.lang)
    labels = {
        Role.agent: _("Sachbearbeitung"),
        Role.city_admin: _("Städte-Admin"),
        Role.coordinator: _("Koordination"),
    }
    return lambda role: labels.get(Role(role), role)


def _managed_cities(viewer: Viewer) -> list[City]:
    """The cities the viewer may assign users and tokens to, by name."""
    cities = sorted(viewer.cities.values(), key=lambda c: c.name)
    if viewer.is_coordinator:
        return cities
    return [c for c in cities if c.id == viewer.user.city_id]


def _roles(viewer: Viewer) -> list[Role]:
    if viewer.is_coordinator:
        return [Role.agent, Role.city_admin, Role.coordinator]
    return [Role.agent, Role.city_admin]


# --- overview ------------------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
def overview(request: Request, viewer: AdminDep) -> HTMLResponse:
    with get_db(request).read() as session:
        figures = svc.overview(session, viewer.actor)
    return _page(request, viewer, "admin.html", {"section": "overview", "figures": figures})


# --- users ---------------------------------------------------------------------------------------


@router.get("/admin/users", response_class=HTMLResponse)
def users(
    request: Request,
    viewer: AdminDep,
    city: Annotated[str, Query(max_length=64)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    city_id: int | None = None
    if viewer.is_coordinator and city:
        if city == "-":
            city_id = 0
        else:
            found = next((c for c in viewer.cities.values() if c.key == city), None)
            city_id = found.id if found else -1
    with get_db(request).read() as session:
        rows = svc.list_users(session, viewer.actor, city_id=city_id, q=q)
    return _page(
        request,
        viewer,
        "admin_users.html",
        {
            "section": "users",
            "users": rows,
            "city_filter": city,
            "q": q,
            "cities": _managed_cities(viewer),
            "is_locked": svc.is_locked,
        },
    )


def _user_form(
    request: Request,
    viewer: Viewer,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return _page(
        request,
        viewer,
        "admin_user_new.html",
        {
            "section": "users",
            "values": values,
            "errors": errors or {},
            "roles": _roles(viewer),
            "cities": _managed_cities(viewer),
        },
        status_code=status_code,
    )


@router.get("/admin/users/new", response_class=HTMLResponse)
def user_new(request: Request, viewer: AdminDep) -> HTMLResponse:
    city = viewer.city.key if viewer.city else ""
    values = {"username": "", "display_name": "", "email": "", "role": "agent", "city": city}
    return _user_form(request, viewer, values)


@router.post("/admin/users", response_class=HTMLResponse)
def user_create(
    request: Request,
    viewer: AdminDep,
    username: Text = "",
    display_name: Text = "",
    email: Text = "",
    role: Text = "agent",
    city: Text = "",
    password: Text = "",
) -> Response:
    _ = translator(viewer.lang)
    values = {
        "username": username,
        "display_name": display_name,
        "email": email,
        "role": role,
        "city": city,
    }
    try:
        with get_db(request).write() as session:
            created = svc.create_user(
                session,
                viewer.actor,
                username=username,
                display_name=display_name,
                email=email,
                role=role,
                city_key=city or None,
                password=password or None,
            )
    except (InvalidInput, Forbidden) as exc:
        return _user_form(
            request, viewer, values, errors=_form_errors(_, exc), status_code=exc.status_code
        )
    user = created.user
    flash = _("Der Benutzer {name} wurde angelegt.", name=user.username)
    if created.generated_password is None:
        return redirect(request, f"{BASE}/users/{user.id}", flash=flash)
    return _secret_page(
        request,
        viewer,
        title=_("Benutzer angelegt"),
        intro=flash,
        label=_("Startpasswort für {name}", name=user.username),
        secret=created.generated_password,
        back=(f"{BASE}/users/{user.id}", _("Weiter zum Benutzer")),
        section="users",
    )


def _user_page(
    request: Request,
    viewer: Viewer,
    user: StaffUser,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    keys = {c.id: c.key for c in viewer.cities.values()}
    if values is None:
        values = {
            "display_name": user.display_name,
            "email": user.email or "",
            "role": Role(user.role).value,
            "city": keys.get(user.city_id, "") if user.city_id else "",
            "active": user.active,
        }
    return _page(
        request,
        viewer,
        "admin_user.html",
        {
            "section": "users",
            "user": user,
            "values": values,
            "errors": errors or {},
            "roles": _roles(viewer),
            "cities": _managed_cities(viewer),
            "locked": svc.is_locked(user),
            "is_self": user.id == viewer.user.id,
        },
        status_code=status_code,
    )


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def user_detail(request: Request, viewer: AdminDep, user_id: int) -> HTMLResponse:
    with get_db(request).read() as session:
        user = svc.get_user(session, viewer.actor, user_id)
    return _user_page(request, viewer, user)


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def user_update(
    request: Request,
    viewer: AdminDep,
    user_id: int,
    display_name: Text = "",
    email: Text = "",
    role: Text = "",
    city: Text = "",
    active: Text = "",
) -> Response:
    _ = translator(viewer.lang)
    db = get_db(request)
    values = {
        "display_name": display_name,
        "email": email,
        "role": role,
        "city": city,
        "active": bool(active),
    }
    try:
        with db.write() as session:
            user = svc.update_user(
                session,
                viewer.actor,
                user_id,
                display_name=display_name,
                email=email,
                role=role,
                active=bool(active),
                city_key=city or None,
            )
    except (InvalidInput, Forbidden) as exc:
        with db.read() as session:
            current = svc.get_user(session, viewer.actor, user_id)  # 403/404 stay as they are
        return _user_page(
            request,
            viewer,
            current,
            values=values,
            errors=_form_errors(_, exc),
            status_code=exc.status_code,
        )
    return redirect(
        request,
        f"{BASE}/users/{user_id}",
        flash=_("Die Änderungen an {name} wurden gespeichert.", name=user.username),
    )


def _user_action(
    request: Request, viewer: Viewer, user_id: int, action: Callable[[Any], str]
) -> Response:
    """Run a one-button action; refusals come back as a flash on the user's page."""
    _ = translator(viewer.lang)
    try:
        with get_db(request).write() as session:
            flash = action(session)
    except (InvalidInput, Forbidden) as exc:
        if isinstance(exc, Forbidden) and exc.code in ("other_city_user", "admin_only"):
            raise
        flash = message(_, exc)
    return redirect(request, f"{BASE}/users/{user_id}", flash=flash)


@router.post("/admin/users/{user_id}/deactivate")
def user_deactivate(request: Request, viewer: AdminDep, user_id: int) -> Response:
    _ = translator(viewer.lang)

    def act(session: Any) -> str:
        user = svc.set_user_active(session, viewer.actor, user_id, active=False)
        return _("{name} wurde deaktiviert und überall abgemeldet.", name=user.username)

    return _user_action(request, viewer, user_id, act)


@router.post("/admin/users/{user_id}/activate")
def user_activate(request: Request, viewer: AdminDep, user_id: int) -> Response:
    _ = translator(viewer.lang)

    def act(session: Any) -> str:
        user = svc.set_user_active(session, viewer.actor, user_id, active=True)
        return _("{name} wurde wieder aktiviert.", name=user.username)

    return _user_action(request, viewer, user_id, act)


@router.post("/admin/users/{user_id}/unlock")
def user_unlock(request: Request, viewer: AdminDep, user_id: int) -> Response:
    _ = translator(viewer.lang)

    def act(session: Any) -> str:
        user = svc.unlock_user(session, viewer.actor, user_id)
        return _("Die Sperre von {name} wurde aufgehoben.", name=user.username)

    return _user_action(request, viewer, user_id, act)


@router.post("/admin/users/{user_id}/password", response_class=HTMLResponse)
def user_password(
    request: Request, viewer: AdminDep, user_id: int, password: Text = ""
) -> Response:
    _ = translator(viewer.lang)
    db = get_db(request)
    try:
        with db.write() as session:
            user = svc.get_user(session, viewer.actor, user_id)
            generated = svc.reset_password(session, viewer.actor, user_id, password=password)
    except (InvalidInput, Forbidden) as exc:
        if isinstance(exc, Forbidden) and exc.code in ("other_city_user", "admin_only"):
            raise
        with db.read() as session:
            current = svc.get_user(session, viewer.actor, user_id)
        return _user_page(
            request,
            viewer,
            current,
            errors={"password": message(_, exc)},
            status_code=exc.status_code,
        )
    done = _(
        "Das Passwort von {name} wurde neu gesetzt; alle Anmeldungen wurden beendet.",
        name=user.username,
    )
    if generated is None:
        return redirect(request, f"{BASE}/users/{user_id}", flash=done)
    return _secret_page(
        request,
        viewer,
        title=_("Neues Passwort"),
        intro=done,
        label=_("Neues Passwort für {name}", name=user.username),
        secret=generated,
        back=(f"{BASE}/users/{user_id}", _("Zurück zum Benutzer")),
        section="users",
    )


def _secret_page(
    request: Request,
    viewer: Viewer,
    *,
    title: str,
    intro: str,
    label: str,
    secret: str,
    back: tuple[str, str],
    section: str,
) -> HTMLResponse:
    return _page(
        request,
        viewer,
        "admin_secret.html",
        {
            "section": section,
            "title": title,
            "intro": intro,
            "label": label,
            "secret": secret,
            "back": back,
        },
    )


# --- cities --------------------------------------------------------------------------------------


@router.get("/admin/cities", response_class=HTMLResponse)
def cities(request: Request, viewer: AdminDep) -> HTMLResponse:
    with get_db(request).read() as session:
        rows = svc.list_cities(session, viewer.actor)
    return _page(
        request,
        viewer,
        "admin_cities.html",
        {"section": "cities", "rows": rows, "hours": svc.format_service_hours},
    )


def _city_form(
    request: Request,
    viewer: Viewer,
    form: svc.CityForm,
    *,
    city: City | None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return _page(
        request,
        viewer,
        "admin_city.html",
        {
            "section": "cities",
            "form": form,
            "city": city,
            "errors": errors or {},
            "states": svc.STATES,
            "can_edit_all": viewer.is_coordinator,
        },
        status_code=status_code,
    )


@router.get("/admin/cities/new", response_class=HTMLResponse)
def city_new(request: Request, viewer: CoordinatorDep) -> HTMLResponse:
    return _city_form(request, viewer, svc.CityForm(state="BY"), city=None)


def _posted_city_form(
    # Named apart from the update route's path parameter `key`; posted as "key" on create.
    new_key: Annotated[str, Form(alias="key", max_length=2000)] = "",
    name: Text = "",
    ags: Text = "",
    state: Text = "",
    timezone: Text = "Europe/Berlin",
    active: Text = "",
    postcodes: LongText = "",
    service_hours: LongText = "",
    sla_first_response_hours: Text = "",
    sla_resolution_hours: Text = "",
    escalation_email: Text = "",
    escalation_webhook_url: Text = "",
    retention_days: Text = "",
    log_retention_days: Text = "",
) -> svc.CityForm:
    """The city form's fields as posted (create and update share them)."""
    return svc.CityForm(
        key=new_key,
        name=name,
        ags=ags,
        state=state,
        timezone=timezone,
        active=bool(active),
        postcodes=postcodes,
        service_hours=service_hours,
        sla_first_response_hours=sla_first_response_hours,
        sla_resolution_hours=sla_resolution_hours,
        escalation_email=escalation_email,
        escalation_webhook_url=escalation_webhook_url,
        retention_days=retention_days,
        log_retention_days=log_retention_days,
    )


PostedCityForm = Annotated[svc.CityForm, Depends(_posted_city_form)]


@router.post("/admin/cities", response_class=HTMLResponse)
def city_create(request: Request, viewer: CoordinatorDep, form: PostedCityForm) -> Response:
    _ = translator(viewer.lang)
    try:
        with get_db(request).write() as session:
            city = svc.create_city(session, viewer.actor, form)
    except InvalidInput as exc:
        return _city_form(
            request, viewer, form, city=None, errors=_form_errors(_, exc), status_code=422
        )
    return redirect(
        request,
        f"{BASE}/cities/{city.key}",
        flash=_("Die Stadt {name} wurde angelegt.", name=city.name),
    )


@router.get("/admin/cities/{key}", response_class=HTMLResponse)
def city_detail(request: Request, viewer: AdminDep, key: str) -> HTMLResponse:
    with get_db(request).read() as session:
        city = svc.get_city(session, viewer.actor, key)
    return _city_form(request, viewer, svc.CityForm.of(city), city=city)


@router.post("/admin/cities/{key}", response_class=HTMLResponse)
def city_update(
    request: Request, viewer: CoordinatorDep, key: str, form: PostedCityForm
) -> Response:
    _ = translator(viewer.lang)
    db = get_db(request)
    form.key = key  # the key is not editable: the path names the city
    try:
        with db.write() as session:
            city = svc.update_city(session, viewer.actor, key, form)
    except InvalidInput as exc:
        with db.read() as session:
            current = svc.get_city(session, viewer.actor, key)
        return _city_form(
            request, viewer, form, city=current, errors=_form_errors(_, exc), status_code=422
        )
    return redirect(
        request,
        f"{BASE}/cities/{city.key}",
        flash=_("Die Angaben zu {name} wurden gespeichert.", name=city.name),
    )


@router.post("/admin/cities/{key}/hours", response_class=HTMLResponse)
def city_hours(
    request: Request, viewer: AdminDep, key: str, service_hours: LongText = ""
) -> Response:
    _ = translator(viewer.lang)
    db = get_db(request)
    try:
        with db.write() as session:
            city = svc.set_service_hours(session, viewer.actor, key, service_hours)
    except InvalidInput as exc:
        with db.read() as session:
            current = svc.get_city(session, viewer.actor, key)
        form = svc.CityForm.of(current)
        form.service_hours = service_hours
        return _city_form(
            request, viewer, form, city=current, errors=_form_errors(_, exc), status_code=422
        )
    return redirect(
        request,
        f"{BASE}/cities/{city.key}",
        flash=_("Die Servicezeiten von {name} wurden gespeichert.", name=city.name),
    )


@router.post("/admin/cities/{key}/escalation", response_class=HTMLResponse)
def city_escalation(
    request: Request,
    viewer: AdminDep,
    key: str,
    escalation_email: Text = "",
    escalation_webhook_url: Text = "",
) -> Response:
    _ = translator(viewer.lang)
    db = get_db(request)
    try:
        with db.write() as session:
            city = svc.set_escalation_targets(
                session,
                viewer.actor,
                key,
                email=escalation_email,
                webhook_url=escalation_webhook_url,
            )
    except InvalidInput as exc:
        with db.read() as session:
            current = svc.get_city(session, viewer.actor, key)
        form = svc.CityForm.of(current)
        form.escalation_email = escalation_email
        form.escalation_webhook_url = escalation_webhook_url
        return _city_form(
            request, viewer, form, city=current, errors=_form_errors(_, exc), status_code=422
        )
    return redirect(
        request,
        f"{BASE}/cities/{city.key}",
        flash=_("Die Eskalationsziele von {name} wurden gespeichert.", name=city.name),
    )


# --- API tokens ----------------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    viewer: Viewer,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with get_db(request).read() as session:
        rows = svc.list_tokens(session, viewer.actor)
    default_city = viewer.city.key if viewer.city else ""
    return _page(
        request,
        viewer,
        "admin_tokens.html",
        {
            "section": "tokens",
            "rows": rows,
            "values": values or {"name": "", "scope": "city", "city": default_city},
            "errors": errors or {},
            "cities": _managed_cities(viewer),
        },
        status_code=status_code,
    )


@router.get("/admin/tokens", response_class=HTMLResponse)
def tokens(request: Request, viewer: AdminDep) -> HTMLResponse:
    return _tokens_page(request, viewer)


@router.post("/admin/tokens", response_class=HTMLResponse)
def token_create(
    request: Request,
    viewer: AdminDep,
    name: Text = "",
    scope: Text = "city",
    city: Text = "",
) -> Response:
    _ = translator(viewer.lang)
    values = {"name": name, "scope": scope, "city": city}
    try:
        with get_db(request).write() as session:
            issued = svc.issue_token(
                session, viewer.actor, name=name, scope=scope, city_key=city or None
            )
    except (InvalidInput, Forbidden) as exc:
        return _tokens_page(
            request, viewer, values=values, errors=_form_errors(_, exc), status_code=exc.status_code
        )
    token = issued.token
    where = (
        _("für das ganze Netzwerk")
        if token.scope == TokenScope.network
        else _("für {city}", city=viewer.city_name(token.city_id))
    )
    return _secret_page(
        request,
        viewer,
        title=_("API-Token ausgestellt"),
        intro=_("Das Token „{name}“ wurde {where} ausgestellt.", name=token.name, where=where),
        label=_("Token „{name}“", name=token.name),
        secret=issued.secret,
        back=(f"{BASE}/tokens", _("Zurück zu den API-Tokens")),
        section="tokens",
    )


@router.post("/admin/tokens/{token_id}/revoke")
def token_revoke(request: Request, viewer: AdminDep, token_id: int) -> Response:
    _ = translator(viewer.lang)
    with get_db(request).write() as session:
        token = svc.revoke_token(session, viewer.actor, token_id)
    return redirect(
        request,
        f"{BASE}/tokens",
        flash=_("Das Token „{name}“ wurde widerrufen.", name=token.name),
    )


# --- services ------------------------------------------------------------------------------------


@router.get("/admin/services", response_class=HTMLResponse)
def services(
    request: Request,
    viewer: AdminDep,
    q: Annotated[str, Query(max_length=200)] = "",
    owner: Annotated[str, Query(max_length=64)] = "",
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> HTMLResponse:
    with get_db(request).read() as session:
        result = svc.list_services(
            session, viewer.actor, q=q, owner=owner, page=page, per_page=PER_PAGE
        )
        keys = city_keys(session)

    def page_url(number: int) -> str:
        params = {k: v for k, v in (("q", q), ("owner", owner)) if v}
        params["page"] = str(number)
        return f"{BASE}/services?{urlencode(params)}"

    return _page(
        request,
        viewer,
        "admin_services.html",
        {
            "section": "services",
            "result": result,
            "q": q,
            "owner": owner,
            "keys": keys,
            "cities": sorted(viewer.cities.values(), key=lambda c: c.name),
            "page_url": page_url,
            "first": (result.page - 1) * PER_PAGE + 1,
            "last": (result.page - 1) * PER_PAGE + len(result.items),
        },
    )


def _service_form(
    request: Request,
    viewer: Viewer,
    form: svc.ServiceForm,
    *,
    service_id: int | None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return _page(
        request,
        viewer,
        "admin_service.html",
        {
            "section": "services",
            "form": form,
            "service_id": service_id,
            "errors": errors or {},
            "cities": sorted(viewer.cities.values(), key=lambda c: c.name),
            "can_edit": viewer.is_coordinator,
        },
        status_code=status_code,
    )


@router.get("/admin/services/new", response_class=HTMLResponse)
def service_new(request: Request, viewer: CoordinatorDep) -> HTMLResponse:
    return _service_form(request, viewer, svc.ServiceForm(), service_id=None)


@router.post("/admin/services", response_class=HTMLResponse)
def service_create(
    request: Request,
    viewer: CoordinatorDep,
    key: Text = "",
    name: Text = "",
    leika_key: Text = "",
    ozg_id: Text = "",
    topic: Text = "",
    owner: Text = "",
) -> Response:
    _ = translator(viewer.lang)
    form = svc.ServiceForm(
        key=key, name=name, leika_key=leika_key, ozg_id=ozg_id, topic=topic, owner=owner
    )
    try:
        with get_db(request).write() as session:
            service = svc.create_service(session, viewer.actor, form)
    except InvalidInput as exc:
        return _service_form(
            request, viewer, form, service_id=None, errors=_form_errors(_, exc), status_code=422
        )
    return redirect(
        request,
        f"{BASE}/services/{service.id}",
        flash=_("Die Leistung {name} wurde angelegt.", name=service.name),
    )


@router.get("/admin/services/{service_id}", response_class=HTMLResponse)
def service_detail(request: Request, viewer: AdminDep, service_id: int) -> HTMLResponse:
    with get_db(request).read() as session:
        service = svc.get_service(session, viewer.actor, service_id)
        keys = city_keys(session)
    form = svc.ServiceForm.of(service, keys.get(service.owner_city_id or 0))
    return _service_form(request, viewer, form, service_id=service.id)


@router.post("/admin/services/{service_id}", response_class=HTMLResponse)
def service_update(
    request: Request,
    viewer: CoordinatorDep,
    service_id: int,
    name: Text = "",
    leika_key: Text = "",
    ozg_id: Text = "",
    topic: Text = "",
    owner: Text = "",
) -> Response:
    _ = translator(viewer.lang)
    db = get_db(request)
    with db.read() as session:
        key = svc.get_service(session, viewer.actor, service_id).key
    form = svc.ServiceForm(
        key=key, name=name, leika_key=leika_key, ozg_id=ozg_id, topic=topic, owner=owner
    )
    try:
        with db.write() as session:
            service = svc.update_service(session, viewer.actor, service_id, form)
    except InvalidInput as exc:
        return _service_form(
            request,
            viewer,
            form,
            service_id=service_id,
            errors=_form_errors(_, exc),
            status_code=422,
        )
    return redirect(
        request,
        f"{BASE}/services/{service_id}",
        flash=_(
            "Die Leistung {name} wurde gespeichert. Das Routing verwendet die Änderung sofort.",
            name=service.name,
        ),
    )
