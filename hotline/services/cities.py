"""Adding a city to the network (the city and its first admin, checked as a whole, one
transaction) and changing a city's escalation targets and retention periods from the console.

The board's administration (services/admin.py) adds a city field by field; an operator adding a
municipality from the console gives everything at once, and gets every problem at once, each
naming its field, before anything is written. The records themselves are made by the same
functions as on the board, so a city added here is the same as one added there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from sqlmodel import Session, col, func, select

from hotline.errors import InvalidInput
from hotline.models import City, KBEntry, Role, RoutingRule, StaffUser
from hotline.services import admin
from hotline.services.actors import Actor
from hotline.services.sla import WEEKDAYS, parse_service_hours

AGS_RE = re.compile(r"^\d{8}$")
# The first two digits of an AGS are the Land; its ISO 3166-2 code picks the public holidays.
AGS_STATES = {
    "01": "SH", "02": "HH", "03": "NI", "04": "HB", "05": "NW", "06": "HE", "07": "RP", "08": "BW",
    "09": "BY", "10": "SL", "11": "BE", "12": "BB", "13": "MV", "14": "SN", "15": "ST", "16": "TH",
}  # fmt: skip
# Subdivisions of Germany the `holidays` package has calendars for, as ISO 3166-2 codes (it also
# knows a city, Augsburg, which is no state).
STATE_CODES = frozenset(s for s in holidays.Germany.subdivisions if re.fullmatch(r"[A-Z]{2}", s))
STATE_NAMES = {
    name.casefold(): code
    for name, code in holidays.Germany.subdivisions_aliases.items()
    if code in STATE_CODES
}


@dataclass(frozen=True, slots=True)
class NewCity:
    """Everything a new member city needs: the city and its first city admin."""

    key: str
    name: str
    ags: str
    admin_username: str
    admin_email: str
    state: str | None = None  # None: the Land of the AGS
    timezone: str = "Europe/Berlin"
    postcodes: Sequence[str] = ()
    # {"mon": [["08:00", "16:00"]], ...}, or the inline text of `parse_hours_inline`
    service_hours: Mapping[str, Any] | str | None = None
    admin_name: str | None = None
    admin_password: str | None = None  # None: a one-time password is generated
    escalation_email: str | None = None  # where overdue tickets are reported; None: nowhere
    escalation_webhook_url: str | None = None
    retention_days: str | None = None  # as typed; None: the default (180)
    log_retention_days: str | None = None  # None: the default (30)


@dataclass(frozen=True, slots=True)
class AddedCity:
    city: City
    admin: StaffUser
    generated_password: str | None  # shown once; None when the operator gave one


class CityRefused(InvalidInput):
    """The new city was refused; `problems` lists every one, each naming its field."""

    code = "city_refused"

    def __init__(self, problems: list[InvalidInput]) -> None:
        super().__init__("; ".join(p.detail for p in problems), problems=problems)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class CityChange:
    """New settings of an existing city, as typed: None leaves a setting as it is; an empty
    escalation e-mail or webhook removes it."""

    escalation_email: str | None = None
    escalation_webhook_url: str | None = None
    retention_days: str | None = None
    log_retention_days: str | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.escalation_email,
                self.escalation_webhook_url,
                self.retention_days,
                self.log_retention_days,
            )
        )


def field_of(problem: InvalidInput) -> str:
    return str(problem.extra.get("field") or "input")


def state_code(raw: str) -> str | None:
    """ "BY", "by", "DE-BY" or "Bayern" → "BY"; None when it is no German state."""
    text = raw.strip()
    code = text.upper().removeprefix("DE-")
    if code in STATE_CODES:
        return code
    return STATE_NAMES.get(text.casefold())


def _check_state(spec: NewCity) -> list[InvalidInput]:
    land = AGS_STATES.get(spec.ags.strip()[:2]) if AGS_RE.match(spec.ags.strip()) else None
    if spec.state is None:
        return []
    code = state_code(spec.state)
    if code is None:
        return [
            admin.invalid(
                "state",
                "„{value}“ ist kein Bundesland (ISO 3166-2, z. B. BY, NW oder DE-BW).",
                "invalid_state",
                value=spec.state,
            )
        ]
    if land is not None and code != land:
        return [
            admin.invalid(
                "state",
                "Der AGS {ags} liegt in {land}, nicht in {state}.",
                "state_mismatch",
                ags=spec.ags.strip(),
                land=land,
                state=code,
            )
        ]
    return []


def _hours_mapping(hours: Mapping[str, Any] | str | None) -> Mapping[str, Any] | None:
    return parse_hours_inline(hours) if isinstance(hours, str) else hours


def _check_service_hours(raw: Mapping[str, Any] | str | None) -> list[InvalidInput]:
    try:
        hours = _hours_mapping(raw)
    except InvalidInput as exc:
        return [exc]
    if hours is None:
        return []
    if not isinstance(hours, Mapping):
        return [
            admin.invalid(
                "service_hours",
                "Die Servicezeiten sind eine Zuordnung Wochentag → Zeitspannen, z. B. "
                'mon: [["08:00", "16:00"]].',
                "hours_format",
            )
        ]
    try:
        parsed = parse_service_hours(hours)
    except ValueError as exc:
        hint = ""
        if any(
            isinstance(v, int)
            for spans in hours.values()
            if isinstance(spans, list)
            for span in spans
            if isinstance(span, list)
            for v in span
        ):
            hint = ' (in YAML Zeiten in Anführungszeichen setzen: "16:00")'
        return [
            admin.invalid("service_hours", "{error}{hint}", "hours_format", error=exc, hint=hint)
        ]
    if not any(parsed.values()):
        return [
            admin.invalid(
                "service_hours",
                "An keinem Tag ist eine Servicezeit eingetragen; ohne --service-hours wird rund "
                "um die Uhr gezählt.",
                "hours_empty",
            )
        ]
    return []


def _check(run: Any, *args: Any, **kwargs: Any) -> list[InvalidInput]:
    try:
        run(*args, **kwargs)
    except InvalidInput as exc:
        return [exc]
    return []


def _check_settings(
    escalation_email: str | None,
    escalation_webhook_url: str | None,
    retention_days: str | None,
    log_retention_days: str | None,
    current: tuple[int, int],
) -> list[InvalidInput]:
    """The escalation targets and retention periods as typed (None: not given, then
    `current` (retention days, log retention days) counts for the order of the two)."""
    problems: list[InvalidInput] = []
    if escalation_email is not None:
        problems += _check(admin.clean_escalation_email, escalation_email)
    if escalation_webhook_url is not None:
        problems += _check(admin.clean_webhook_url, escalation_webhook_url)
    days, log_days = current
    if retention_days is not None:
        try:
            days = admin.retention_days_of(retention_days, default=None)
        except InvalidInput as exc:
            problems.append(exc)
    if log_retention_days is not None:
        try:
            log_days = admin.log_retention_days_of(log_retention_days, default=None)
        except InvalidInput as exc:
            problems.append(exc)
    if not any(field_of(p).endswith("retention_days") for p in problems):
        problems += _check(admin.check_retention_order, days, log_days)
    return problems


def check_new_city(session: Session, spec: NewCity) -> list[InvalidInput]:
    """Every problem of `spec`, each naming its field (`field_of`); empty when it can be added."""
    problems: list[InvalidInput] = []
    key = spec.key.strip()
    if not admin.CITY_KEY_RE.match(key) or key in admin.RESERVED_CITY_KEYS:
        problems.append(
            admin.invalid(
                "key",
                "Der Schlüssel „{key}“ taugt nicht: 2 bis 64 Kleinbuchstaben, Ziffern und "
                "Bindestriche, z. B. regensburg.",
                "invalid_key",
                key=key,
            )
        )
    elif session.exec(select(City).where(City.key == key)).first() is not None:
        problems.append(
            admin.invalid("key", "Den Schlüssel „{key}“ gibt es schon.", "city_taken", key=key)
        )
    name = " ".join(spec.name.split())
    if not name or len(name) > 200:
        problems.append(
            admin.invalid(
                "name", "Bitte geben Sie den Namen der Stadt ein (höchstens 200 Zeichen)."
            )
        )
    ags = spec.ags.strip()
    if not AGS_RE.match(ags) or ags[:2] not in AGS_STATES:
        problems.append(
            admin.invalid(
                "ags",
                "„{value}“ ist kein Amtlicher Gemeindeschlüssel: 8 Ziffern, die ersten beiden "
                "das Land (01–16), z. B. 09362000 für Regensburg.",
                "invalid_ags",
                value=ags,
            )
        )
    else:
        holder = session.exec(select(City).where(City.ags == ags)).first()
        if holder is not None:
            problems.append(
                admin.invalid(
                    "ags",
                    "Der AGS {ags} gehört schon zu {city} ({key}).",
                    "ags_taken",
                    ags=ags,
                    city=holder.name,
                    key=holder.key,
                )
            )
    problems += _check_state(spec)
    try:
        ZoneInfo(spec.timezone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            admin.invalid(
                "timezone",
                "„{value}“ ist keine bekannte Zeitzone (z. B. Europe/Berlin).",
                "invalid_timezone",
                value=spec.timezone,
            )
        )
    problems += _check(admin.parse_postcodes, ", ".join(spec.postcodes))
    problems += _check_service_hours(spec.service_hours)
    username = spec.admin_username.strip()
    if not admin.USERNAME_RE.match(username):
        problems.append(
            admin.invalid(
                "username",
                "Der Benutzername darf nur Buchstaben, Ziffern und . _ @ - enthalten "
                "(höchstens 80 Zeichen).",
                "invalid_username",
            )
        )
    elif session.exec(select(StaffUser).where(StaffUser.username == username)).first():
        problems.append(
            admin.invalid(
                "username",
                "Den Benutzernamen „{name}“ gibt es schon.",
                "username_taken",
                name=username,
            )
        )
    if not spec.admin_email.strip():
        problems.append(
            admin.invalid(
                "email", "Die erste Administration braucht eine E-Mail-Adresse.", "no_email"
            )
        )
    else:
        problems += _check(admin._clean_email, spec.admin_email)
    problems += _check(admin._clean_display_name, spec.admin_name or "", username)
    if spec.admin_password is not None:
        problems += _check(admin._check_password, spec.admin_password)
    problems += _check_settings(
        spec.escalation_email,
        spec.escalation_webhook_url,
        spec.retention_days,
        spec.log_retention_days,
        (admin.DEFAULT_RETENTION_DAYS, admin.DEFAULT_LOG_RETENTION_DAYS),
    )
    return problems


def add_city(session: Session, actor: Actor, spec: NewCity) -> AddedCity:
    """Add the city and its first city admin in the caller's transaction: checked as a whole
    first (CityRefused lists every problem), so nothing is written on any error."""
    admin.require_coordinator(actor)
    problems = check_new_city(session, spec)
    if problems:
        raise CityRefused(problems)
    spans = parse_service_hours(_hours_mapping(spec.service_hours))
    hours = {
        WEEKDAYS[day]: [[f"{start:%H:%M}", f"{end:%H:%M}"] for start, end in spans[day]]
        for day in sorted(spans)
    }
    state = state_code(spec.state) if spec.state else AGS_STATES[spec.ags.strip()[:2]]
    city = admin.create_city(
        session,
        actor,
        admin.CityForm(
            key=spec.key,
            name=spec.name,
            ags=spec.ags,
            state=state or "",
            timezone=spec.timezone,
            postcodes=", ".join(spec.postcodes),
            service_hours=admin.format_service_hours(hours),
            escalation_email=spec.escalation_email or "",
            escalation_webhook_url=spec.escalation_webhook_url or "",
            retention_days=spec.retention_days or "",
            log_retention_days=spec.log_retention_days or "",
        ),
    )
    created = admin.create_user(
        session,
        actor,
        username=spec.admin_username,
        display_name=spec.admin_name or "",
        email=spec.admin_email,
        role=Role.city_admin.value,
        city_key=city.key,
        password=spec.admin_password,
    )
    return AddedCity(city=city, admin=created.user, generated_password=created.generated_password)


def change_city(session: Session, actor: Actor, key: str, change: CityChange) -> City:
    """Set an existing city's escalation targets and retention periods (coordinator; the
    console acts for the network). Every problem is reported at once (CityRefused, the unknown
    city as `key`); nothing is changed on any error."""
    admin.require_coordinator(actor)
    city = session.exec(select(City).where(City.key == key.strip()).with_for_update()).first()
    if city is None:
        raise CityRefused(
            [
                admin.invalid(
                    "key", "Die Stadt „{key}“ gibt es nicht.", "city_not_found", key=key.strip()
                )
            ]
        )
    problems = _check_settings(
        change.escalation_email,
        change.escalation_webhook_url,
        change.retention_days,
        change.log_retention_days,
        (city.retention_days, city.log_retention_days),
    )
    if problems:
        raise CityRefused(problems)
    if change.escalation_email is not None:
        city.escalation_email = admin.clean_escalation_email(change.escalation_email)
    if change.escalation_webhook_url is not None:
        city.escalation_webhook_url = admin.clean_webhook_url(change.escalation_webhook_url)
    if change.retention_days is not None:
        city.retention_days = admin.retention_days_of(change.retention_days, default=None)
    if change.log_retention_days is not None:
        city.log_retention_days = admin.log_retention_days_of(
            change.log_retention_days, default=None
        )
    session.add(city)
    session.flush()
    return city


def webhook_display(url: str | None) -> str:
    """The webhook without its path and query, which may hold a secret: for console output."""
    if not url:
        return "-"
    parts = urlsplit(url)
    rest = "/…" if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{parts.netloc}{rest}"  # no user:password@ (refused when set)


@dataclass(frozen=True, slots=True)
class CityListing:
    city: City
    staff: int
    rules: int  # routing rules the city maintains
    kb_entries: int  # KB entries only for this city
    admins: list[str] = field(default_factory=list)


def list_network(session: Session) -> list[CityListing]:
    """Every city of the network with what it has set up so far."""

    def per_city(column: Any, *where: Any) -> dict[int, int]:
        stmt = select(column, func.count()).where(*where).group_by(column)
        return {cid: n for cid, n in session.exec(stmt).all() if cid is not None}

    staff = per_city(col(StaffUser.city_id), col(StaffUser.active))
    rules = per_city(col(RoutingRule.owner_city_id))
    entries = per_city(col(KBEntry.city_id))
    admins: dict[int, list[str]] = {}
    for city_id, username in session.exec(
        select(StaffUser.city_id, StaffUser.username)
        .where(StaffUser.role == Role.city_admin, col(StaffUser.active))
        .order_by(col(StaffUser.username))
    ).all():
        if city_id is not None:
            admins.setdefault(city_id, []).append(username)
    return [
        CityListing(
            city=city,
            staff=staff.get(city.id or 0, 0),
            rules=rules.get(city.id or 0, 0),
            kb_entries=entries.get(city.id or 0, 0),
            admins=admins.get(city.id or 0, []),
        )
        for city in session.exec(select(City).order_by(col(City.key))).all()
    ]


def parse_hours_inline(text: str) -> dict[str, list[list[str]]] | None:
    """The board's service-hours text on one line: days separated by "|", and day ranges
    allowed ("Mo-Fr 08:00-16:00 | Sa 09:00-12:00"). InvalidInput names the day that is wrong."""
    lines: list[str] = []
    for part in re.split(r"[|\n]", text):
        part = part.strip()
        head, _, rest = part.partition(" ")
        first, dash, last = head.rstrip(":,.").lower().partition("-")
        start, end = admin._DAY_ALIASES.get(first), admin._DAY_ALIASES.get(last)
        if dash and start is not None and end is not None and start <= end:
            lines += [f"{admin.DAY_NAMES[day]} {rest}" for day in range(start, end + 1)]
        else:
            lines.append(part)
    return admin.parse_hours_text("\n".join(lines))
