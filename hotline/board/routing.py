"""Board pages for routing ("Zuständigkeit"): rules, delegations, dry run, coverage, lint,
replay, YAML import and export.

Thin pages over hotline/services/rules.py and the pure engine in hotline/routing/: the service
layer checks every right again (city admins change only their own city's rules, the receiving
city decides on a delegation); the pages add German wording, forms and error messages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from hotline.board._core import (
    PREFIX,
    AdminDep,
    Viewer,
    ViewerDep,
    get_db,
    get_settings,
    redirect,
    render,
)
from hotline.board.i18n import translator
from hotline.errors import (
    Conflict,
    Forbidden,
    HotlineError,
    InvalidInput,
    NotFound,
    VersionConflict,
)
from hotline.models import Role, RoutingRule, RoutingRuleEvent
from hotline.routing import (
    CHANNELS,
    ORIGIN_CITY,
    SERVICE_OWNER,
    CityInfo,
    CoverageRow,
    Facts,
    LintWarning,
    Move,
    Router,
    RuleSet,
    ServiceInfo,
    coverage,
    delegation_target,
    lint,
    replay,
    validate_ruleset,
)
from hotline.services import rules as svc
from hotline.services.catalog import city_keys

router = APIRouter()
BASE = f"{PREFIX}/routing"
Translator = Callable[..., str]
BERLIN = ZoneInfo("Europe/Berlin")
RULE_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_TEXT = 20_000
RESERVED_KEYS = frozenset({"new"})


# --- names and words -------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Readable names for the keys a rule uses (cities, services by key or LeiKa key)."""

    cities: dict[str, CityInfo]
    services: dict[str, ServiceInfo]
    aliases: dict[str, str]

    @classmethod
    def of(cls, cities: list[CityInfo], services: list[ServiceInfo]) -> Names:
        by_key = {s.key: s for s in services}
        aliases = {s.leika: s.key for s in services if s.leika}
        aliases.update({k: k for k in by_key})
        return cls({c.key: c for c in cities}, by_key, aliases)

    def city(self, key: str | None) -> str:
        if key is None:
            return "—"
        city = self.cities.get(key)
        return city.name if city else key

    def service(self, key: str) -> str:
        found = self.aliases.get(key)
        return self.services[found].name if found else key


def audience_label(value: str | None, _: Translator) -> str:
    return {"external": _("extern"), "internal": _("intern")}.get(value or "", _("unbekannt"))


def channel_label(value: str, _: Translator) -> str:
    return {
        "web": _("Web-Chat"),
        "telegram": _("Telegram"),
        "api": _("API"),
        "email": _("E-Mail"),
        "phone": _("Telefon"),
        "board": _("Board"),
    }.get(value, value)


def status_label(value: str, _: Translator) -> str:
    return {"active": _("aktiv"), "proposed": _("vorgeschlagen"), "rejected": _("abgelehnt")}.get(
        value, value
    )


def target_words(route_to: str, names: Names, _: Translator) -> str:
    if route_to == ORIGIN_CITY:
        return _("die Herkunftsstadt der Frage")
    if route_to == SERVICE_OWNER:
        return _("die Betreiberstadt des Dienstes")
    return names.city(route_to)


def condition_words(when: dict[str, Any], names: Names, _: Translator) -> list[str]:
    """The rule's conditions as German phrases; an empty list means: every question."""
    out = []
    if when.get("origin_city"):
        out.append(_("Herkunft: {v}", v=", ".join(names.city(k) for k in when["origin_city"])))
    if when.get("service"):
        out.append(_("Dienst: {v}", v=", ".join(names.service(k) for k in when["service"])))
    if when.get("topic"):
        out.append(_("Thema: {v}", v=", ".join(when["topic"])))
    if when.get("audience"):
        out.append(_("Zielgruppe: {v}", v=audience_label(when["audience"], _)))
    if when.get("channel"):
        out.append(_("Kanal: {v}", v=", ".join(channel_label(c, _) for c in when["channel"])))
    if when.get("text_any"):
        words = ", ".join(f"„{w}“" for w in when["text_any"])
        out.append(_("Text enthält eines von: {v}", v=words))
    return out


def local_time(value: datetime) -> str:
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M")


# Parser and validation messages of hotline/routing are English; German for the German board.
_PROBLEM_DE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"; did you mean '([^']*)'\?"), r"; meinten Sie „\1“?"),
    (re.compile(r"^unknown city '([^']*)'"), r"unbekannte Stadt „\1“"),
    (re.compile(r"^target city does not exist: '([^']*)'"), r"die Zielstadt „\1“ gibt es nicht"),
    (re.compile(r" \(or 'origin_city', 'service_owner'\)"), r" (oder origin_city, service_owner)"),
    (re.compile(r" \(or 'origin_city'\)"), r" (oder origin_city)"),
    (re.compile(r"^unknown service '([^']*)'"), r"unbekannter Dienst „\1“"),
    (re.compile(r" \(a service key or LeiKa key\)"), r" (Dienst- oder LeiKa-Schlüssel)"),
    (re.compile(r"^unknown topic '([^']*)'"), r"unbekanntes Thema „\1“"),
    (re.compile(r"^unknown channel '([^']*)'"), r"unbekannter Kanal „\1“"),
    (re.compile(r"\(known: "), r"(bekannt: "),
    (re.compile(r"^duplicate rule id"), r"doppelte Regel-ID"),
    (re.compile(r"; first used on line (\d+)"), r"; zuerst verwendet in Zeile \1"),
    (re.compile(r"^required field is missing$"), r"Pflichtfeld fehlt"),
    (re.compile(r"^must be a whole number, not (.*)$"), r"muss eine ganze Zahl sein, nicht \1"),
    (re.compile(r"^must be true or false, not (.*)$"), r"muss true oder false sein, nicht \1"),
    (re.compile(r"^must not be empty$"), r"darf nicht leer sein"),
    (
        re.compile(r"^must not be an empty list.*$"),
        r"darf keine leere Liste sein; lassen Sie die Bedingung weg, damit jeder Wert passt",
    ),
    (re.compile(r"^YAML syntax error: "), r"YAML-Syntaxfehler: "),
    (re.compile(r"^the file is empty$"), r"die Datei ist leer"),
    (re.compile(r"^unknown field '([^']*)'"), r"unbekanntes Feld „\1“"),
    (re.compile(r"^unknown section '([^']*)'"), r"unbekannter Abschnitt „\1“"),
    (re.compile(r"\(allowed: "), r"(erlaubt: "),
    (
        re.compile(r"^duplicate key '([^']*)'; the later value would silently win$"),
        r"doppelter Schlüssel „\1“; der spätere Wert würde stillschweigend gelten",
    ),
    (
        re.compile(r"^route_to service_owner, but none of the services.*$"),
        r"Ziel ist die Betreiberstadt, aber keiner der Dienste hat eine; die Regel kann nie "
        r"entscheiden",
    ),
    (
        re.compile(r"^'([^']*)' is inactive; the last resort must be an active city$"),
        r"„\1“ ist nicht aktiv; die Standardstadt muss aktiv sein",
    ),
    (re.compile(r"^'\*' is only allowed at the end of a word"), r"„*“ ist nur am Wortende erlaubt"),
    (re.compile(r"contains no letters or digits$"), r"enthält keine Buchstaben oder Ziffern"),
    (
        re.compile(r"may only contain lower-case letters a-z.*$"),
        r"darf nur Kleinbuchstaben a–z, Ziffern, „-“, „_“ und „.“ enthalten und muss mit einem "
        r"Buchstaben oder einer Ziffer beginnen",
    ),
    (
        re.compile(r"^a rule must be a mapping$"),
        r"eine Regel muss eine Zuordnung (key: value) sein",
    ),
    (re.compile(r"^rules must be a list$"), r"rules muss eine Liste sein"),
]


def problem_message(message: str, lang: str) -> str:
    if lang != "de":
        return message
    for pattern, replacement in _PROBLEM_DE:
        message = pattern.sub(replacement, message)
    return message


@dataclass(frozen=True)
class Problem:
    line: int | None
    rule: str | None
    field: str
    message: str


def problems_of(exc: HotlineError, lang: str) -> list[Problem]:
    raw = exc.extra.get("problems") or []
    return [
        Problem(
            p.get("line"), p.get("rule"), p.get("field") or "", problem_message(p["message"], lang)
        )
        for p in raw
    ]


def german_error(exc: HotlineError, _: Translator, key: str | None = None) -> HotlineError:
    """The service layer's (English) errors as German sentences for the board."""
    if exc.code == "not_rule_admin":
        return Forbidden(
            _("Nur Admins der zuständigen Stadt oder die Koordination dürfen das."),
            code=exc.code,
        )
    if exc.code == "rule_not_found":
        return NotFound(_("Die Regel „{key}“ gibt es nicht (mehr).", key=key or ""), code=exc.code)
    if exc.code == "not_proposed":
        return Conflict(
            _(
                "Über die Regel „{key}“ ist schon entschieden; sie ist nicht mehr vorgeschlagen.",
                key=key or "",
            ),
            code=exc.code,
        )
    if exc.code == "not_a_delegation":
        return InvalidInput(
            _("Die Regel „{key}“ ist keine Delegation an eine andere Stadt.", key=key or ""),
            code=exc.code,
        )
    if isinstance(exc, VersionConflict):
        return VersionConflict(
            _(
                "Die Regel „{key}“ wurde inzwischen geändert. Bitte laden Sie die Seite neu.",
                key=key or "",
            )
        )
    return exc


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleView:
    rank: int
    key: str
    owner: str
    owner_id: int
    priority: int
    status: str
    status_text: str
    conditions: list[str]
    target: str
    route_to: str
    sla_hours: int | None
    description: str | None
    version: int
    delegation_to: str | None
    target_key: str | None
    owner_key: str
    editable: bool
    decidable: bool  # the receiving city's admin (or coordinator) may accept/reject
    updated_at: str


def may_edit(viewer: Viewer, owner_city_id: int | None) -> bool:
    """Mirrors the service layer's rule: coordinators all, city admins their own city."""
    if viewer.is_coordinator:
        return True
    return viewer.role == Role.city_admin and viewer.user.city_id == owner_city_id


def may_decide(viewer: Viewer, target_key: str | None) -> bool:
    if target_key is None:
        return False
    if viewer.is_coordinator:
        return True
    return (
        viewer.role == Role.city_admin and viewer.city is not None and viewer.city.key == target_key
    )


def names_of(session: Session) -> Names:
    cities, services = svc.catalog(session)
    return Names.of(cities, services)


def rule_views(session: Session, viewer: Viewer, _: Translator) -> tuple[list[RuleView], Names]:
    names = names_of(session)
    keys = city_keys(session)
    views = []
    for rank, row in enumerate(svc.ordered_rules(session), start=1):
        views.append(_view(row, rank, keys, names, viewer, _))
    return views, names


def _view(
    row: RoutingRule, rank: int, keys: dict[int, str], names: Names, viewer: Viewer, _: Translator
) -> RuleView:
    rule = svc.rule_from_row(row, keys)
    target = delegation_target(rule)
    return RuleView(
        rank=rank,
        key=row.rule_key,
        owner=names.city(keys[row.owner_city_id]),
        owner_id=row.owner_city_id,
        priority=row.priority,
        status=str(row.status),
        status_text=status_label(str(row.status), _),
        conditions=condition_words(row.conditions or {}, names, _),
        target=target_words(row.route_to, names, _),
        route_to=row.route_to,
        sla_hours=row.sla_hours,
        description=row.description,
        version=row.version,
        delegation_to=names.city(target) if target else None,
        target_key=target,
        owner_key=keys[row.owner_city_id],
        editable=may_edit(viewer, row.owner_city_id),
        decidable=str(row.status) == "proposed" and may_decide(viewer, target),
        updated_at=local_time(row.updated_at),
    )


def _t(viewer: Viewer) -> Translator:
    return translator(viewer.lang)


def _default_city(request: Request) -> str:
    return get_settings(request).default_city


def _current(request: Request, session: Session) -> RuleSet:
    return svc.current_ruleset(session, default_city=_default_city(request))


def _nav(
    request: Request, viewer: Viewer, template: str, ctx: dict[str, Any], **kw: Any
) -> HTMLResponse:
    return render(request, viewer, template, {"base": BASE, **ctx}, **kw)


# --- overview --------------------------------------------------------------------------------


@router.get("/routing", response_class=HTMLResponse)
def overview(request: Request, viewer: ViewerDep, city: str = "") -> HTMLResponse:
    _ = _t(viewer)
    with get_db(request).read() as session:
        views, names = rule_views(session, viewer, _)
        config = svc.routing_config(session, default_city=_default_city(request))
    total = len(views)
    pending = [v for v in views if v.decidable]
    if city:
        if city not in names.cities:
            city = ""
        else:
            views = [v for v in views if v.owner_key == city]
    return _nav(
        request,
        viewer,
        "routing.html",
        {
            "section": "rules",
            "rules": views,
            "total": total,
            "names": names,
            "city": city,
            "cities": sorted(names.cities.values(), key=lambda c: c.name),
            "pending": pending,
            "fallback": target_words(config.fallback, names, _),
            "default_city": names.city(config.default_city),
            "can_create": viewer.is_admin,
        },
    )


# --- one rule: page, history, form -----------------------------------------------------------

_KIND = {
    "created": "angelegt",
    "updated": "geändert",
    "accepted": "angenommen",
    "rejected": "abgelehnt",
    "deleted": "gelöscht",
    "imported": "importiert",
}
_FIELD_DE = {
    "owner": "Eigentümerstadt",
    "priority": "Priorität",
    "status": "Status",
    "when": "Bedingungen",
    "route_to": "Ziel",
    "sla_hours": "Antwortfrist",
    "description": "Beschreibung",
    "id": "Schlüssel",
}


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    kind: str
    actor: str
    at: str
    changes: list[str]
    before: str | None
    after: str | None


def history_entries(events: list[RoutingRuleEvent], _: Translator) -> list[HistoryEntry]:
    out = []
    for e in reversed(events):
        before, after = e.before or {}, e.after or {}
        changed = [
            _(_FIELD_DE[k]) for k in _FIELD_DE if before and after and before.get(k) != after.get(k)
        ]
        out.append(
            HistoryEntry(
                version=e.version,
                kind=_(_KIND.get(e.kind, e.kind)),
                actor=e.actor.removeprefix("staff:").removeprefix("token:"),
                at=local_time(e.created_at),
                changes=changed,
                before=_dump(e.before),
                after=_dump(e.after),
            )
        )
    return out


def _dump(data: dict[str, Any] | None) -> str | None:
    if not data:
        return None
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=90)


@router.get("/routing/rules/new", response_class=HTMLResponse)
def new_rule_form(request: Request, viewer: AdminDep) -> HTMLResponse:
    with get_db(request).read() as session:
        names = names_of(session)
    owner = viewer.city.key if viewer.city else ""
    form = RuleForm(owner=owner)
    return _form_page(request, viewer, form, names, key=None)


@router.post("/routing/rules/new", response_class=HTMLResponse)
async def create_rule(request: Request, viewer: AdminDep) -> Response:
    form = RuleForm.parse(await request.form(), viewer)
    return await run_in_threadpool(_save, request, viewer, form, None)


@router.get("/routing/rules/{key}", response_class=HTMLResponse)
def rule_page(request: Request, viewer: ViewerDep, key: str) -> HTMLResponse:
    _ = _t(viewer)
    with get_db(request).read() as session:
        names = names_of(session)
        keys = city_keys(session)
        try:
            row: RoutingRule | None = svc.get_rule(session, key)
        except NotFound:
            row = None
        try:
            events = svc.rule_history(session, key)
        except NotFound as exc:
            raise german_error(exc, _, key) from exc
        view = None
        if row is not None:
            rank = [r.rule_key for r in svc.ordered_rules(session)].index(key) + 1
            view = _view(row, rank, keys, names, viewer, _)
    return _nav(
        request,
        viewer,
        "routing_rule.html",
        {
            "section": "rules",
            "key": key,
            "rule": view,
            "history": history_entries(events, _),
        },
    )


@router.get("/routing/rules/{key}/edit", response_class=HTMLResponse)
def edit_rule_form(request: Request, viewer: AdminDep, key: str) -> HTMLResponse:
    _ = _t(viewer)
    with get_db(request).read() as session:
        names = names_of(session)
        try:
            row = svc.get_rule(session, key)
        except NotFound as exc:
            raise german_error(exc, _, key) from exc
        if not may_edit(viewer, row.owner_city_id):
            raise Forbidden(
                _("Regeln anderer Städte können Sie nur lesen; ändern darf sie deren Admin.")
            )
        form = RuleForm.of_row(row, city_keys(session))
    return _form_page(request, viewer, form, names, key=key)


@router.post("/routing/rules/{key}/edit", response_class=HTMLResponse)
async def update_rule(request: Request, viewer: AdminDep, key: str) -> Response:
    form = RuleForm.parse(await request.form(), viewer)
    return await run_in_threadpool(_save, request, viewer, form, key)


@router.post("/routing/rules/{key}/delete")
async def delete_rule(request: Request, viewer: AdminDep, key: str) -> Response:
    data = await request.form()
    _ = _t(viewer)
    version = _int(data.get("version"))
    if version is None:
        raise InvalidInput(_("Die Versionsangabe fehlt. Bitte laden Sie die Seite neu."))

    def run() -> None:
        try:
            with get_db(request).write() as session:
                svc.delete_rule(
                    session, viewer.actor, key, version=version, default_city=_default_city(request)
                )
        except HotlineError as exc:
            raise german_error(exc, _, key) from exc

    await run_in_threadpool(run)
    return redirect(request, BASE, flash=_("Die Regel „{key}“ wurde gelöscht.", key=key))


@router.post("/routing/rules/{key}/accept")
async def accept_delegation(request: Request, viewer: AdminDep, key: str) -> Response:
    return await _decide(request, viewer, key, accept=True)


@router.post("/routing/rules/{key}/reject")
async def reject_delegation(request: Request, viewer: AdminDep, key: str) -> Response:
    return await _decide(request, viewer, key, accept=False)


async def _decide(request: Request, viewer: Viewer, key: str, *, accept: bool) -> Response:
    _ = _t(viewer)

    def run() -> None:
        try:
            with get_db(request).write() as session:
                svc.decide_delegation(
                    session, viewer.actor, key, accept=accept, default_city=_default_city(request)
                )
        except HotlineError as exc:
            raise german_error(exc, _, key) from exc

    await run_in_threadpool(run)
    text = (
        _("Die Delegation „{key}“ wurde angenommen; sie gilt ab sofort.", key=key)
        if accept
        else _("Die Delegation „{key}“ wurde abgelehnt.", key=key)
    )
    return redirect(request, f"{BASE}/delegations", flash=text)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _lines(value: str) -> list[str]:
    """Entries of a text area or comma list: one per line or separated by commas."""
    parts = re.split(r"[\n,;]+", value)
    return [p.strip() for p in parts if p.strip()]


@dataclass
class RuleForm:
    """The rule form's fields as typed (strings), so a refused form comes back unchanged."""

    key: str = ""
    owner: str = ""
    priority: str = "100"
    origin_city: list[str] = field(default_factory=list)
    service: str = ""
    topic: str = ""
    audience: str = ""
    channel: list[str] = field(default_factory=list)
    text_any: str = ""
    route_to: str = ""
    sla_hours: str = ""
    description: str = ""
    version: int | None = None

    @classmethod
    def of_row(cls, row: RoutingRule, keys: dict[int, str]) -> RuleForm:
        when = row.conditions or {}
        return cls(
            key=row.rule_key,
            owner=keys[row.owner_city_id],
            priority=str(row.priority),
            origin_city=list(when.get("origin_city") or []),
            service="\n".join(when.get("service") or []),
            topic="\n".join(when.get("topic") or []),
            audience=str(when.get("audience") or ""),
            channel=list(when.get("channel") or []),
            text_any="\n".join(when.get("text_any") or []),
            route_to=row.route_to,
            sla_hours="" if row.sla_hours is None else str(row.sla_hours),
            description=row.description or "",
            version=row.version,
        )

    @classmethod
    def parse(cls, data: FormData, viewer: Viewer) -> RuleForm:
        def text(name: str, limit: int = 4000) -> str:
            value = data.get(name)
            return value.strip()[:limit] if isinstance(value, str) else ""

        def many(name: str) -> list[str]:
            return [v.strip()[:64] for v in data.getlist(name) if isinstance(v, str) and v.strip()]

        owner = text("owner", 64)
        if not viewer.is_coordinator:
            # A city admin's rules belong to the own city; the service checks it again.
            owner = viewer.city.key if viewer.city else owner
        return cls(
            key=text("key", 200),
            owner=owner,
            priority=text("priority", 20),
            origin_city=many("origin_city"),
            service=text("service", MAX_TEXT),
            topic=text("topic", MAX_TEXT),
            audience=text("audience", 20),
            channel=many("channel"),
            text_any=text("text_any", MAX_TEXT),
            route_to=text("route_to", 64),
            sla_hours=text("sla_hours", 20),
            description=text("description", 2100),
            version=_int(data.get("version")),
        )

    def to_data(self, _: Translator) -> tuple[dict[str, Any], dict[str, str]]:
        """The rule as the service expects it, or German messages per field."""
        errors: dict[str, str] = {}
        if not self.key:
            errors["key"] = _("Bitte geben Sie einen Schlüssel an, z. B. muc-epayment-intern.")
        elif len(self.key) > 120 or not RULE_KEY.match(self.key):
            errors["key"] = _(
                "Der Schlüssel darf nur Kleinbuchstaben a–z, Ziffern, „-“, „_“ und „.“ enthalten (höchstens 120 Zeichen) und muss mit einem Buchstaben oder einer Ziffer beginnen."  # noqa: E501
            )
        elif self.key in RESERVED_KEYS:
            errors["key"] = _("Der Schlüssel „{key}“ ist reserviert.", key=self.key)
        priority = _int(self.priority)
        if priority is None or not -1_000_000 <= priority <= 1_000_000:
            errors["priority"] = _(
                "Die Priorität ist eine ganze Zahl (kleiner = früher), z. B. 100."
            )
        sla: int | None = None
        if self.sla_hours:
            sla = _int(self.sla_hours)
            if sla is None or not 0 < sla <= 10_000:
                errors["sla_hours"] = _(
                    "Die Antwortfrist ist eine ganze Zahl von Stunden zwischen 1 und 10000."
                )
        if not self.owner:
            errors["owner"] = _("Bitte wählen Sie die Stadt, der die Regel gehört.")
        if not self.route_to:
            errors["route_to"] = _("Bitte wählen Sie, wohin die Regel leitet.")
        if self.audience not in ("", "external", "internal"):
            errors["audience"] = _("Bitte wählen Sie eine Zielgruppe aus der Liste.")
        if len(self.description) > 2000:
            errors["description"] = _("Die Beschreibung ist zu lang (höchstens 2000 Zeichen).")
        when: dict[str, Any] = {}
        for name, values in (
            ("origin_city", self.origin_city),
            ("service", _lines(self.service)),
            ("topic", _lines(self.topic)),
            ("channel", self.channel),
            ("text_any", [v.strip() for v in self.text_any.splitlines() if v.strip()]),
        ):
            if values:
                when[name] = values
        if self.audience:
            when["audience"] = self.audience
        data: dict[str, Any] = {
            "id": self.key,
            "owner": self.owner,
            "priority": priority if priority is not None else 100,
            "status": "active",
            "when": when,
            "route_to": self.route_to,
        }
        if sla is not None:
            data["sla_hours"] = sla
        if self.description:
            data["description"] = self.description
        return data, errors


_FORM_FIELDS = {
    "id": "key",
    "owner": "owner",
    "priority": "priority",
    "route_to": "route_to",
    "sla_hours": "sla_hours",
    "description": "description",
    "status": "general",
}


def form_field(problem_field: str) -> str:
    """Which form field a problem of the service layer (`when.service[1]`, `route_to`) is about."""
    head = problem_field.split("[")[0]
    if head.startswith("when."):
        return head.removeprefix("when.")
    return _FORM_FIELDS.get(head, "general")


def _form_page(
    request: Request,
    viewer: Viewer,
    form: RuleForm,
    names: Names,
    *,
    key: str | None,
    errors: dict[str, str] | None = None,
    conflict: str | None = None,
    current: RuleView | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    _ = _t(viewer)
    owners = (
        sorted(names.cities.values(), key=lambda c: c.name)
        if viewer.is_coordinator
        else [c for c in names.cities.values() if viewer.city and c.key == viewer.city.key]
    )
    targets = [
        (ORIGIN_CITY, _("Herkunftsstadt der Frage")),
        (SERVICE_OWNER, _("Betreiberstadt des Dienstes")),
    ]
    targets += [
        (c.key, c.name if c.active else _("{name} (nicht aktiv)", name=c.name))
        for c in sorted(names.cities.values(), key=lambda c: c.name)
    ]
    topics = sorted({s.topic for s in names.services.values() if s.topic})
    services = sorted(names.services.values(), key=lambda s: s.name.casefold())
    return _nav(
        request,
        viewer,
        "routing_form.html",
        {
            "section": "rules",
            "form": form,
            "key": key,
            "errors": errors or {},
            "conflict": conflict,
            "current": current,
            "owners": owners,
            "targets": targets,
            "cities": sorted(names.cities.values(), key=lambda c: c.name),
            "channels": [(c, channel_label(c, _)) for c in CHANNELS],
            "topics": topics,
            "services": services,
        },
        status_code=status_code,
    )


def _save(request: Request, viewer: Viewer, form: RuleForm, key: str | None) -> Response:
    """Create (key None) or replace a rule; a refused form comes back with its messages."""
    _ = _t(viewer)
    db = get_db(request)
    data, errors = form.to_data(_)
    with db.read() as session:
        names = names_of(session)
        if key is not None:
            try:
                row = svc.get_rule(session, key)
            except NotFound as exc:
                raise german_error(exc, _, key) from exc
            if not may_edit(viewer, row.owner_city_id):
                raise Forbidden(
                    _("Regeln anderer Städte können Sie nur lesen; ändern darf sie deren Admin.")
                )
    if form.version is None and key is not None:
        errors["general"] = _("Die Versionsangabe fehlt. Bitte laden Sie die Seite neu.")
    if errors:
        return _form_page(request, viewer, form, names, key=key, errors=errors, status_code=422)
    try:
        with db.write() as session:
            svc.save_rule(
                session,
                viewer.actor,
                data,
                default_city=_default_city(request),
                version=form.version,
                key=key,
            )
    except VersionConflict:
        with db.read() as session:
            row = svc.get_rule(session, key or "")
            keys = city_keys(session)
            rank = [r.rule_key for r in svc.ordered_rules(session)].index(row.rule_key) + 1
            current = _view(row, rank, keys, names, viewer, _)
        message = _(
            "Speichern nicht möglich: Die Regel wurde inzwischen geändert (Ihre Version {mine}, aktuell Version {now}). Die aktuelle Fassung steht unten; Ihre Eingaben sind erhalten. Prüfen Sie beides – wenn Sie erneut speichern, ersetzen Ihre Eingaben die aktuelle Fassung.",  # noqa: E501
            mine=form.version,
            now=row.version,
        )
        form.version = row.version
        return _form_page(
            request,
            viewer,
            form,
            names,
            key=key,
            conflict=message,
            current=current,
            status_code=409,
        )
    except InvalidInput as exc:
        problems = problems_of(exc, viewer.lang)
        for p in problems:
            name = form_field(p.field)
            errors[name] = (errors.get(name, "") + " " + p.message).strip()
        if not problems:
            errors["general"] = _("Die Regel ist ungültig: {detail}", detail=exc.detail)
        return _form_page(request, viewer, form, names, key=key, errors=errors, status_code=422)
    except Conflict as exc:
        if exc.code == "duplicate_rule":
            errors["key"] = _("Eine Regel mit dem Schlüssel „{key}“ gibt es schon.", key=form.key)
            return _form_page(request, viewer, form, names, key=key, errors=errors, status_code=409)
        raise german_error(exc, _, key) from exc
    except HotlineError as exc:
        raise german_error(exc, _, key or form.key) from exc
    text = (
        _("Die Regel „{key}“ wurde gespeichert.", key=form.key)
        if key
        else _("Die Regel „{key}“ wurde angelegt.", key=form.key)
    )
    with db.read() as session:
        status = str(svc.get_rule(session, form.key).status)
    if status == "proposed":
        text += " " + _(
            "Sie leitet an eine andere Stadt und gilt erst, wenn diese die Delegation annimmt."
        )
    return redirect(request, f"{BASE}/rules/{form.key}", flash=text)


# --- delegations -----------------------------------------------------------------------------


@router.get("/routing/delegations", response_class=HTMLResponse)
def delegations(request: Request, viewer: ViewerDep) -> HTMLResponse:
    _ = _t(viewer)
    with get_db(request).read() as session:
        views, _names = rule_views(session, viewer, _)
    own = viewer.city.key if viewer.city else None
    all_delegations = [v for v in views if v.delegation_to is not None]
    if viewer.is_coordinator:
        incoming = [v for v in all_delegations if v.status == "proposed"]
        outgoing: list[RuleView] = []
        decided = [v for v in all_delegations if v.status != "proposed"]
    else:
        incoming = [v for v in all_delegations if v.target_key == own and v.status == "proposed"]
        decided = [v for v in all_delegations if v.target_key == own and v.status != "proposed"]
        outgoing = [v for v in all_delegations if v.owner_key == own]
    return _nav(
        request,
        viewer,
        "routing_delegations.html",
        {
            "section": "delegations",
            "incoming": incoming,
            "decided": decided,
            "outgoing": outgoing,
        },
    )


# --- dry run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceLine:
    rule: str | None
    result: str
    label: str
    badge: str
    text: str


_RESULT = {
    "matched": ("passt – entscheidet", "ok"),
    "no_match": ("passt nicht", ""),
    "skipped": ("übersprungen", "warn"),
    "excluded": ("nicht in Frage", ""),
    "fallback": ("Rückfallregel", "warn"),
    "default": ("Standardstadt", "warn"),
}


def trace_lines(trace: list[dict[str, Any]], _: Translator) -> list[TraceLine]:
    out = []
    for step in trace:
        label, badge = _RESULT.get(step.get("result", ""), (step.get("result", ""), ""))
        out.append(
            TraceLine(
                rule=step.get("rule"),
                result=str(step.get("result")),
                label=_(label),
                badge=badge,
                text=str(step.get("text", "")),
            )
        )
    return out


def decision_words(decision: dict[str, Any], ruleset: RuleSet, names: Names, _: Translator) -> str:
    """'Augsburg — Regel epayment-alle: …' : the decision in one sentence."""
    city = names.city(decision["city"])
    last = decision["trace"][-1] if decision["trace"] else {}
    if decision["via"] == "rule":
        rule = next((r for r in ruleset.rules if r.id == decision["rule"]), None)
        why = (rule.description if rule and rule.description else None) or str(last.get("text", ""))
        return _("{city} — Regel {rule}: {why}", city=city, rule=decision["rule"], why=why)
    if decision["via"] == "fallback":
        return _("{city} — Rückfallregel: {why}", city=city, why=last.get("text", ""))
    return _("{city} — Standardstadt: {why}", city=city, why=last.get("text", ""))


@router.get("/routing/dry-run", response_class=HTMLResponse)
def dry_run(
    request: Request,
    viewer: ViewerDep,
    origin_city: str = "",
    service: str = "",
    topic: str = "",
    audience: str = "",
    channel: str = "",
    text: str = "",
    run: str = "",
) -> HTMLResponse:
    _ = _t(viewer)
    values = {
        "origin_city": origin_city.strip()[:64],
        "service": service.strip()[:120],
        "topic": topic.strip()[:120],
        "audience": audience if audience in ("external", "internal") else "",
        "channel": channel if channel in CHANNELS else "",
        "text": text[:MAX_TEXT],
    }
    with get_db(request).read() as session:
        ruleset = _current(request, session)
    names = Names.of(list(ruleset.cities), list(ruleset.services))
    result = None
    if run:
        facts = Facts(**{k: (v or None) for k, v in values.items()})
        decision = Router(ruleset).decide(facts, full_trace=True).to_dict()
        result = {
            "words": decision_words(decision, ruleset, names, _),
            "city": names.city(decision["city"]),
            "rule": decision["rule"],
            "via": decision["via"],
            "sla_hours": decision["sla_hours"],
            "trace": trace_lines(decision["trace"], _),
            "unknown_service": bool(values["service"]) and values["service"] not in names.aliases,
        }
    return _nav(
        request,
        viewer,
        "routing_dry_run.html",
        {
            "section": "dry-run",
            "values": values,
            "result": result,
            "cities": sorted(names.cities.values(), key=lambda c: c.name),
            "services": sorted(names.services.values(), key=lambda s: s.name.casefold()),
            "topics": sorted({s.topic for s in ruleset.services if s.topic}),
            "channels": [(c, channel_label(c, _)) for c in CHANNELS],
        },
    )


# --- coverage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageEntry:
    audience: str | None  # None: the same for both audiences
    city: str
    rule: str | None
    via: str
    conflict: str | None


@dataclass
class CoverageLine:
    subject: str
    label: str
    cells: list[list[CoverageEntry]]
    by_rule: bool = False
    conflicts: int = 0


def coverage_conflict(
    ruleset: RuleSet, row: CoverageRow, routers: dict[str, Router], names: Names, _: Translator
) -> str | None:
    """Another active rule of the same priority that would send the same question elsewhere:
    only the order of the rules decides between them (the cell is ambiguous)."""
    if row.rule is None:
        return None
    decided = next(r for r in ruleset.rules if r.id == row.rule)
    if row.rule not in routers:
        rest = tuple(r for r in ruleset.rules if r.id != row.rule)
        routers[row.rule] = Router(ruleset.model_copy(update={"rules": rest}))
    facts = Facts(
        origin_city=row.origin_city, service=row.service, topic=row.topic, audience=row.audience
    )
    other = routers[row.rule].decide(facts)
    if other.rule is None or other.city == row.city:
        return None
    rival = next(r for r in ruleset.rules if r.id == other.rule)
    if rival.priority != decided.priority:
        return None
    return _(
        "Konflikt: auch Regel {rule} (gleiche Priorität {prio}) würde an {city} leiten",
        rule=other.rule,
        prio=rival.priority,
        city=names.city(other.city),
    )


def coverage_lines(
    ruleset: RuleSet, rows: list[CoverageRow], by: str, names: Names, _: Translator
) -> tuple[list[CityInfo], list[CoverageLine]]:
    cities = [c for c in ruleset.cities if c.active]
    column = {c.key: i for i, c in enumerate(cities)}
    routers: dict[str, Router] = {}
    lines: dict[str, CoverageLine] = {}
    grouped: dict[tuple[str, str], list[CoverageRow]] = {}
    for row in rows:
        subject = (row.service if by == "service" else row.topic) or ""
        grouped.setdefault((subject, row.origin_city), []).append(row)
        if subject not in lines:
            label = names.service(subject) if by == "service" else subject
            lines[subject] = CoverageLine(subject, label, [[] for _c in cities])
    for (subject, origin), pair in grouped.items():
        line = lines[subject]
        entries = []
        for row in pair:
            conflict = coverage_conflict(ruleset, row, routers, names, _)
            entries.append(
                CoverageEntry(
                    audience=audience_label(str(row.audience), _),
                    city=names.city(row.city),
                    rule=row.rule,
                    via=str(row.via),
                    conflict=conflict,
                )
            )
            line.by_rule = line.by_rule or row.rule is not None
            line.conflicts += conflict is not None
        if len({(e.city, e.rule, e.conflict) for e in entries}) == 1:
            entries = [replace(entries[0], audience=None)]
        line.cells[column[origin]] = entries
    return cities, sorted(lines.values(), key=lambda ln: ln.label.casefold())


@router.get("/routing/coverage", response_class=HTMLResponse)
def coverage_page(
    request: Request, viewer: ViewerDep, by: str = "service", alle: str = ""
) -> HTMLResponse:
    _ = _t(viewer)
    by = by if by in ("service", "topic") else "service"
    with get_db(request).read() as session:
        ruleset = _current(request, session)
    names = Names.of(list(ruleset.cities), list(ruleset.services))
    rows = coverage(ruleset, by="service" if by == "service" else "topic")
    cities, lines = coverage_lines(ruleset, rows, by, names, _)
    hidden = 0
    if not alle:
        shown = [ln for ln in lines if ln.by_rule]
        hidden = len(lines) - len(shown)
        lines = shown
    answers = Counter(names.city(r.city) for r in rows)
    by_rule = Counter(names.city(r.city) for r in rows if r.rule is not None)
    return _nav(
        request,
        viewer,
        "routing_coverage.html",
        {
            "section": "coverage",
            "by": by,
            "alle": bool(alle),
            "cities": cities,
            "lines": lines,
            "hidden": hidden,
            "conflicts": sum(ln.conflicts for ln in lines),
            "answers": [
                (city, n, by_rule[city])
                for city, n in sorted(answers.items(), key=lambda kv: -kv[1])
            ],
            "cells": len(rows),
            "fallback": target_words(ruleset.fallback, names, _),
        },
    )


# --- lint ------------------------------------------------------------------------------------

_LINT_KIND = {
    "shadowed": "Verdeckt",
    "overlap": "Überschneidung",
    "proposed_delegation": "Offene Delegation",
    "inactive_target": "Inaktives Ziel",
    "gap": "Lücke",
}


@router.get("/routing/lint", response_class=HTMLResponse)
def lint_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
    _ = _t(viewer)
    with get_db(request).read() as session:
        ruleset = _current(request, session)
    problems = [
        Problem(None, p.rule, p.field, problem_message(p.message, viewer.lang))
        for p in validate_ruleset(ruleset, channels=CHANNELS)
    ]
    warnings = lint_rows(lint(ruleset), _)
    return _nav(
        request,
        viewer,
        "routing_lint.html",
        {
            "section": "lint",
            "problems": problems,
            "warnings": warnings,
            "rules": len(ruleset.rules),
        },
    )


def lint_rows(warnings: list[LintWarning], _: Translator) -> list[dict[str, Any]]:
    return [
        {
            "kind": _(_LINT_KIND.get(str(w.kind), str(w.kind))),
            "severity": "danger" if str(w.kind) in ("shadowed", "overlap") else "warn",
            "rule": w.rule,
            "related": w.related,
            "message": w.message,
        }
        for w in warnings
    ]


# --- replay ----------------------------------------------------------------------------------


async def _yaml_from_form(request: Request, data: FormData, _: Translator) -> str:
    """The rule file from the upload field (wins when a file was chosen) or the text area."""
    upload = data.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read()
        if raw:
            try:
                return svc.load_yaml_text(raw, limit=get_settings(request).max_body_bytes)
            except InvalidInput as exc:
                message = (
                    _("Die Datei ist zu groß.")
                    if exc.code == "payload_too_large"
                    else _("Die Datei ist kein UTF-8-Text.")
                )
                raise InvalidInput(message, code=exc.code) from exc
    text = data.get("yaml")
    return text if isinstance(text, str) else ""


@router.get("/routing/replay", response_class=HTMLResponse)
def replay_form(request: Request, viewer: ViewerDep) -> HTMLResponse:
    with get_db(request).read() as session:
        text = svc.export_rules(session, default_city=_default_city(request))
    return _replay_page(request, viewer, text, 30)


def _replay_page(
    request: Request,
    viewer: Viewer,
    text: str,
    days: int,
    *,
    result: dict[str, Any] | None = None,
    problems: list[Problem] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return _nav(
        request,
        viewer,
        "routing_replay.html",
        {
            "section": "replay",
            "yaml": text,
            "days": days,
            "result": result,
            "problems": problems or [],
            "error": error,
        },
        status_code=status_code,
    )


@router.post("/routing/replay", response_class=HTMLResponse)
async def replay_run(request: Request, viewer: ViewerDep) -> HTMLResponse:
    async with request.form() as data:
        return await _replay_run(request, viewer, data)


async def _replay_run(request: Request, viewer: Viewer, data: FormData) -> HTMLResponse:
    _ = _t(viewer)
    days = _int(data.get("days"))
    try:
        text = await _yaml_from_form(request, data, _)
    except InvalidInput as exc:
        return _replay_page(request, viewer, "", days or 30, error=exc.detail, status_code=422)
    if days is None or not 1 <= days <= 3650:
        return _replay_page(
            request,
            viewer,
            text,
            30,
            error=_("Bitte geben Sie eine Zahl von Tagen zwischen 1 und 3650 an."),
            status_code=422,
        )
    if not text.strip():
        return _replay_page(
            request,
            viewer,
            text,
            days,
            error=_("Bitte fügen Sie einen Regelsatz ein oder wählen Sie eine Datei."),
            status_code=422,
        )

    def run() -> tuple[RuleSet, list[Any], Names]:
        with get_db(request).read() as session:
            draft = svc.parse_against_db(
                session, text, source="entwurf", default_city=_default_city(request)
            )
            return (
                draft,
                list(svc.recent_tickets(session, viewer.actor, days=days)),
                names_of(session),
            )

    try:
        draft, tickets, names = await run_in_threadpool(run)
    except InvalidInput as exc:
        return _replay_page(
            request,
            viewer,
            text,
            days,
            problems=problems_of(exc, viewer.lang),
            error=_("Der Entwurf ist ungültig; es wurde nichts nachgespielt."),
            status_code=422,
        )
    moves: list[Move] = replay(draft, tickets)
    flows = Counter((names.city(m.from_city), names.city(m.to_city)) for m in moves)
    result = {
        "tickets": len(tickets),
        "moves": [
            {
                "ref": m.ref,
                "from": names.city(m.from_city),
                "to": names.city(m.to_city),
                "rule": m.rule,
                "via": m.via,
            }
            for m in moves
        ],
        "flows": sorted(flows.items(), key=lambda kv: -kv[1]),
    }
    return _replay_page(request, viewer, text, days, result=result)


# --- import and export -----------------------------------------------------------------------


@router.get("/routing/import", response_class=HTMLResponse)
def import_form(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _import_page(request, viewer, "")


def _import_page(
    request: Request,
    viewer: Viewer,
    text: str,
    *,
    problems: list[Problem] | None = None,
    error: str | None = None,
    checked: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with get_db(request).read() as session:
        cities = sorted(names_of(session).cities.values(), key=lambda c: c.name)
    return _nav(
        request,
        viewer,
        "routing_import.html",
        {
            "section": "import",
            "yaml": text,
            "problems": problems or [],
            "error": error,
            "checked": checked,
            "cities": cities,
        },
        status_code=status_code,
    )


@router.post("/routing/import", response_class=HTMLResponse)
async def import_run(request: Request, viewer: AdminDep) -> Response:
    async with request.form() as data:
        return await _import_run(request, viewer, data)


async def _import_run(request: Request, viewer: Viewer, data: FormData) -> Response:
    _ = _t(viewer)
    try:
        text = await _yaml_from_form(request, data, _)
    except InvalidInput as exc:
        return _import_page(request, viewer, "", error=exc.detail, status_code=422)
    if not text.strip():
        return _import_page(
            request,
            viewer,
            text,
            error=_("Bitte fügen Sie einen Regelsatz ein oder wählen Sie eine Datei."),
            status_code=422,
        )
    check_only = data.get("action") == "check"
    default_city = _default_city(request)

    def run() -> svc.ImportSummary | RuleSet:
        if check_only:
            with get_db(request).read() as session:
                return svc.parse_against_db(
                    session, text, source="upload", default_city=default_city
                )
        with get_db(request).write() as session:
            return svc.import_rules(
                session, viewer.actor, text, source="upload", default_city=default_city
            )

    try:
        outcome = await run_in_threadpool(run)
    except InvalidInput as exc:
        return _import_page(
            request,
            viewer,
            text,
            problems=problems_of(exc, viewer.lang),
            error=_("Die Datei wurde abgelehnt; es wurde nichts importiert."),
            status_code=422,
        )
    except Forbidden as exc:
        message = _("Nur die Koordination darf Rückfallregel und Standardstadt ändern.")
        if "other cities" in exc.detail:
            message = _(
                "Die Datei enthält Regeln anderer Städte. Als Städte-Admin importieren Sie nur die Regeln Ihrer Stadt (Export „nur meine Stadt“)."  # noqa: E501
            )
        elif exc.code == "not_rule_admin" and "import" not in exc.detail:
            message = _("Nur Städte-Admins und die Koordination importieren Regeln.")
        return _import_page(
            request,
            viewer,
            text,
            error=message + " " + _("Es wurde nichts importiert."),
            status_code=403,
        )
    except Conflict as exc:
        ids = exc.detail.split(":", 1)[-1].strip().rstrip(".")
        return _import_page(
            request,
            viewer,
            text,
            error=_(
                "Diese Regel-Schlüssel gehören schon anderen Städten: {ids}. Es wurde nichts importiert.",
                ids=ids,
            ),
            status_code=409,
        )
    if isinstance(outcome, RuleSet):
        checked = {"rules": len(outcome.rules), "warnings": lint_rows(lint(outcome), _)}
        return _import_page(request, viewer, text, checked=checked)
    summary = outcome
    message = _(
        "Import abgeschlossen: {created} neu, {updated} geändert, {deleted} gelöscht.",
        created=summary.created,
        updated=summary.updated,
        deleted=summary.deleted,
    )
    if summary.proposed:
        message += " " + _(
            "Vorgeschlagen (warten auf Annahme): {keys}.", keys=", ".join(summary.proposed)
        )
    return redirect(request, BASE, flash=message)


@router.get("/routing/export")
def export(request: Request, viewer: ViewerDep, city: str = "") -> Response:
    """The rule file as YAML (text/yaml download); `city` limits it to one city's rules."""
    with get_db(request).read() as session:
        ruleset = _current(request, session)
    name = "routing-regeln"
    if city and any(c.key == city for c in ruleset.cities):
        ruleset = ruleset.model_copy(
            update={"rules": tuple(r for r in ruleset.rules if r.owner == city)}
        )
        name += f"-{city}"
    text = ruleset.to_yaml(include_catalog=False)
    return Response(
        text,
        media_type="text/yaml; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.yaml"',
            "Cache-Control": "no-store",
        },
    )
