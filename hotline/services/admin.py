"""Administration of staff users, cities, API tokens and the service catalogue, with rights.

City admins manage their own city (its agents and admins, its tokens, its service hours, who
is alerted about its overdue tickets);
the coordinator manages the whole network. Every function takes the acting `Actor` and checks
the rights itself, whatever the page showed. Messages are German (the board translates them):
an `InvalidInput` carries the form `field`, the message template `msg` and its `values`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, time
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func
from sqlmodel import Session, col, or_, select

from hotline.db import utcnow
from hotline.errors import Forbidden, InvalidInput, NotFound
from hotline.models import ApiToken, City, Role, Service, StaffUser, TokenScope
from hotline.services import auth, staff
from hotline.services.actors import Actor
from hotline.services.catalog import LEIKA_RE, slugify
from hotline.services.rules import bump_generation
from hotline.services.sla import WEEKDAYS, parse_service_hours

MIN_PASSWORD = staff.MIN_PASSWORD
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CITY_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
SERVICE_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,119}$")
AGS_RE = re.compile(r"^(\d{8}|\d{12})$")
POSTCODE_RE = re.compile(r"^(\d{5})(?:\s*[-–]\s*(\d{5}))?$")
# ISO 3166-2 subdivisions of Germany: the public-holiday calendar of the city's state.
STATES = (
    "BB", "BE", "BW", "BY", "HB", "HE", "HH", "MV", "NI", "NW", "RP", "SH", "SL", "SN", "ST", "TH"
)  # fmt: skip
RESERVED_CITY_KEYS = frozenset({"new", "origin_city", "service_owner"})
MAX_SLA_HOURS = 24 * 365
# Data retention per city (services/retention.py): closed tickets, and the question log.
RETENTION_DAYS = (7, 3650)
LOG_RETENTION_DAYS = (1, 365)
DEFAULT_RETENTION_DAYS = 180
DEFAULT_LOG_RETENTION_DAYS = 30
MAX_WEBHOOK_URL = 500
# Plain http only for a receiver on the same machine (tests, a local relay).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def invalid(field_name: str, msg: str, code: str = "invalid_input", **values: Any) -> InvalidInput:
    """A refused input: German text (template + values, for translation) naming its field."""
    return InvalidInput(msg.format(**values), code=code, field=field_name, msg=msg, values=values)


# --- rights --------------------------------------------------------------------------------------


def _is_network_admin(actor: Actor) -> bool:
    if actor.role == Role.coordinator:
        return True
    # The system itself (CLI, demo loader): network-wide, neither a token nor a person.
    return actor.network and actor.staff_id is None and actor.token_id is None


def require_admin(actor: Actor) -> None:
    if not (_is_network_admin(actor) or actor.role == Role.city_admin):
        raise Forbidden(
            "Die Verwaltung ist Städte-Admins und der Koordination vorbehalten.",
            code="admin_only",
        )


def require_coordinator(actor: Actor) -> None:
    if not _is_network_admin(actor):
        raise Forbidden("Das darf nur die Koordination ändern.", code="coordinator_only")


def _manages_city(actor: Actor, city_id: int | None) -> bool:
    if _is_network_admin(actor):
        return True
    return actor.role == Role.city_admin and city_id is not None and city_id == actor.city_id


# --- staff users ---------------------------------------------------------------------------------


def is_locked(user: StaffUser, now: datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def list_users(
    session: Session, actor: Actor, *, city_id: int | None = None, q: str | None = None
) -> list[StaffUser]:
    """City admin: the users of their city; coordinator: everyone, optionally of one city
    (`city_id=0` means the network's coordinators, who have no city)."""
    require_admin(actor)
    stmt = select(StaffUser)
    if not _is_network_admin(actor):
        stmt = stmt.where(StaffUser.city_id == actor.city_id)
    elif city_id == 0:
        stmt = stmt.where(col(StaffUser.city_id).is_(None))
    elif city_id is not None:
        stmt = stmt.where(StaffUser.city_id == city_id)
    if q and q.strip():
        pattern = f"%{q.strip()}%"
        stmt = stmt.where(
            or_(col(StaffUser.username).ilike(pattern), col(StaffUser.display_name).ilike(pattern))
        )
    return list(session.exec(stmt.order_by(col(StaffUser.username))).all())


def get_user(session: Session, actor: Actor, user_id: int, *, lock: bool = False) -> StaffUser:
    """A user the actor may manage: 404 when there is none, 403 for another city's user."""
    require_admin(actor)
    stmt = select(StaffUser).where(StaffUser.id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    user = session.exec(stmt).first()
    if user is None:
        raise NotFound("Diesen Benutzer gibt es nicht.", code="user_not_found")
    if not _manages_city(actor, user.city_id):
        raise Forbidden(
            "Sie dürfen nur Benutzer Ihrer eigenen Stadt verwalten.", code="other_city_user"
        )
    return user


def _allowed_roles(actor: Actor) -> tuple[Role, ...]:
    if _is_network_admin(actor):
        return (Role.agent, Role.city_admin, Role.coordinator)
    return (Role.agent, Role.city_admin)


def _check_role_and_city(
    session: Session, actor: Actor, role_raw: str, city_key: str | None
) -> tuple[Role, City | None]:
    try:
        role = Role(role_raw)
    except ValueError:
        raise invalid("role", "Bitte wählen Sie eine Rolle.", "invalid_role") from None
    if role not in _allowed_roles(actor):
        raise Forbidden(
            "Städte-Admins dürfen keine Koordinations-Konten vergeben.", code="role_forbidden"
        )
    if role == Role.coordinator:
        return role, None  # the coordinator acts for the whole network, not for one city
    if not city_key:
        raise invalid("city", "Sachbearbeitung und Städte-Admins brauchen eine Stadt.", "no_city")
    city = session.exec(select(City).where(City.key == city_key)).first()
    if city is None:
        raise invalid("city", "Diese Stadt gibt es nicht.", "unknown_city")
    if not _manages_city(actor, city.id):
        raise Forbidden(
            "Sie dürfen nur Benutzer Ihrer eigenen Stadt anlegen.", code="other_city_user"
        )
    return role, city


def _clean_display_name(value: str, fallback: str) -> str:
    value = " ".join(value.split())
    if len(value) > 200:
        raise invalid("display_name", "Der Anzeigename darf höchstens 200 Zeichen haben.")
    return value or fallback


def _clean_email(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if len(value) > 320 or not EMAIL_RE.match(value):
        raise invalid(
            "email", "„{value}“ ist keine gültige E-Mail-Adresse.", "invalid_email", value=value
        )
    return value


def _check_password(value: str) -> None:
    if len(value) < MIN_PASSWORD:
        raise invalid(
            "password",
            "Das Passwort braucht mindestens {n} Zeichen.",
            "weak_password",
            n=MIN_PASSWORD,
        )
    if len(value) > 1000:
        raise invalid("password", "Das Passwort ist zu lang.", "long_password")


def generate_password() -> str:
    # 16 URL-safe characters, about 96 bits: handed over once, changed by the user later.
    return secrets.token_urlsafe(12)


@dataclass(frozen=True, slots=True)
class CreatedUser:
    user: StaffUser
    generated_password: str | None  # shown once when the admin let the board choose it


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    display_name: str,
    email: str,
    role: str,
    city_key: str | None,
    password: str | None,
) -> CreatedUser:
    """A new staff user. City admins create agents and city admins of their own city only.
    An empty password means: generate one (returned once, never stored in clear)."""
    require_admin(actor)
    username = username.strip()
    if not username:
        raise invalid("username", "Bitte geben Sie einen Benutzernamen ein.", "invalid_username")
    if not USERNAME_RE.match(username):
        raise invalid(
            "username",
            "Der Benutzername darf nur Buchstaben, Ziffern und . _ @ - enthalten (höchstens 80 Zeichen).",
            "invalid_username",
        )
    role_, city = _check_role_and_city(session, actor, role, city_key)
    if session.exec(select(StaffUser).where(StaffUser.username == username)).first():
        raise invalid(
            "username", "Den Benutzernamen „{name}“ gibt es schon.", "username_taken", name=username
        )
    display = _clean_display_name(display_name, username)
    mail = _clean_email(email)
    generated = None
    if password:
        _check_password(password)
    else:
        password = generated = generate_password()
    user = auth.create_user(
        session,
        username=username,
        password=password,
        role=role_,
        city_key=city.key if city else None,
        display_name=display,
        email=mail,
    )
    return CreatedUser(user=user, generated_password=generated)


def update_user(
    session: Session,
    actor: Actor,
    user_id: int,
    *,
    display_name: str,
    email: str,
    role: str,
    active: bool,
    city_key: str | None = None,
) -> StaffUser:
    """Change name, e-mail, role and active flag (the coordinator may also move a user to
    another city). Nobody deactivates or demotes themselves; deactivation ends the sessions."""
    user = get_user(session, actor, user_id, lock=True)
    if city_key is None or not _is_network_admin(actor):
        city_key = _city_key(session, user.city_id)
    role_, city = _check_role_and_city(session, actor, role, city_key)
    if user.id == actor.staff_id:
        if not active:
            raise Forbidden("Sie können sich nicht selbst deaktivieren.", code="self_deactivate")
        if role_ != user.role:
            raise Forbidden("Sie können Ihre eigene Rolle nicht ändern.", code="self_demote")
    if user.role == Role.coordinator and not _is_network_admin(actor):
        raise Forbidden(
            "Sie dürfen nur Benutzer Ihrer eigenen Stadt verwalten.", code="other_city_user"
        )
    user.display_name = _clean_display_name(display_name, user.username)
    user.email = _clean_email(email)
    user.role = role_
    user.city_id = city.id if city else None
    was_active = user.active
    user.active = active
    session.add(user)
    if was_active and not active:
        staff.end_sessions(session, user.id or 0)
    session.flush()
    return user


def _city_key(session: Session, city_id: int | None) -> str | None:
    if city_id is None:
        return None
    city = session.get(City, city_id)
    return city.key if city else None


def set_user_active(session: Session, actor: Actor, user_id: int, *, active: bool) -> StaffUser:
    """(De)activate a user; deactivation logs them out everywhere at once."""
    user = get_user(session, actor, user_id, lock=True)
    if user.id == actor.staff_id and not active:
        raise Forbidden("Sie können sich nicht selbst deaktivieren.", code="self_deactivate")
    user.active = active
    session.add(user)
    if not active:
        staff.end_sessions(session, user.id or 0)
    session.flush()
    return user


def reset_password(
    session: Session, actor: Actor, user_id: int, *, password: str | None
) -> str | None:
    """Set a new password (or generate one, returned once); ends the user's sessions and
    lifts a lockout, since the admin has just handed over a new password."""
    user = get_user(session, actor, user_id, lock=True)
    if user.id == actor.staff_id:
        raise Forbidden(
            "Ihr eigenes Passwort ändern Sie unter „Passwort ändern“.", code="self_reset"
        )
    generated = None
    if password:
        _check_password(password)
    else:
        password = generated = generate_password()
    user.password_hash = auth.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    staff.end_sessions(session, user.id or 0)
    session.flush()
    return generated


def unlock_user(session: Session, actor: Actor, user_id: int) -> StaffUser:
    """Lift the lockout after too many failed logins."""
    user = get_user(session, actor, user_id, lock=True)
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    session.flush()
    return user


# --- cities --------------------------------------------------------------------------------------

DAY_NAMES = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")
_DAY_ALIASES: dict[str, int] = {}
for _i, _names in enumerate(
    (
        ("mo", "mon", "montag", "monday"),
        ("di", "tue", "tu", "dienstag", "tuesday"),
        ("mi", "wed", "we", "mittwoch", "wednesday"),
        ("do", "thu", "th", "donnerstag", "thursday"),
        ("fr", "fri", "freitag", "friday"),
        ("sa", "sat", "samstag", "sonnabend", "saturday"),
        ("so", "sun", "su", "sonntag", "sunday"),
    )
):
    for _name in _names:
        _DAY_ALIASES[_name] = _i
_CLOSED = frozenset({"", "-", "–", "geschlossen", "zu", "closed"})
_SPAN_RE = re.compile(r"^(\d{1,2})[:.](\d{2})\s*(?:-|–|bis|to)\s*(\d{1,2})[:.](\d{2})$")


def format_service_hours(raw: dict[str, Any] | None) -> str:
    """`{"mon": [["08:00", "12:00"], ["13:00", "16:00"]]}` → "Mo 08:00-12:00, 13:00-16:00"."""
    lines = []
    for index, day in enumerate(WEEKDAYS):
        spans = (raw or {}).get(day) or []
        if spans:
            text = ", ".join(f"{start}-{end}" for start, end in spans)
            lines.append(f"{DAY_NAMES[index]} {text}")
    return "\n".join(lines)


def parse_hours_text(text: str) -> dict[str, list[list[str]]] | None:
    """One line per weekday ("Mo 08:00-12:00, 13:00-16:00"); days without a line are closed.
    Empty text: no service hours (due times run around the clock). German messages name the
    line that is wrong."""
    result: dict[str, list[list[str]]] = {}
    seen: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        head = head.rstrip(":,.").lower()
        day = _DAY_ALIASES.get(head)
        if day is None:
            raise invalid(
                "service_hours",
                "Zeile {line}: „{word}“ ist kein Wochentag. Beginnen Sie jede Zeile mit Mo, Di, Mi, Do, Fr, Sa oder So.",  # noqa: E501
                "hours_weekday",
                line=number,
                word=line.partition(" ")[0],
            )
        name = DAY_NAMES[day]
        if day in seen:
            raise invalid(
                "service_hours",
                "Zeile {line}: {day} steht schon in Zeile {first}. Schreiben Sie alle Zeiten eines Tages in eine Zeile.",  # noqa: E501
                "hours_duplicate",
                line=number,
                day=name,
                first=seen[day],
            )
        seen[day] = number
        rest = rest.strip().lstrip(":").strip()
        if rest.lower() in _CLOSED:
            continue
        spans: list[tuple[time, time]] = []
        for part in rest.replace(";", ",").split(","):
            part = part.strip()
            match = _SPAN_RE.match(part)
            times = None
            if match:
                h1, m1, h2, m2 = (int(g) for g in match.groups())
                if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60:
                    times = (time(h1, m1), time(h2, m2))
            if times is None:
                raise invalid(
                    "service_hours",
                    "Zeile {line} ({day}): „{span}“ ist keine Zeitspanne. Schreiben Sie z. B. 08:00-12:00.",
                    "hours_span",
                    line=number,
                    day=name,
                    span=part,
                )
            if times[1] <= times[0]:
                raise invalid(
                    "service_hours",
                    "Zeile {line} ({day}): {span} endet, bevor es beginnt.",
                    "hours_order",
                    line=number,
                    day=name,
                    span=part,
                )
            spans.append(times)
        spans.sort()
        for (s1, e1), (s2, e2) in pairwise(spans):
            if s2 < e1:
                raise invalid(
                    "service_hours",
                    "Zeile {line} ({day}): {first} und {second} überschneiden sich.",
                    "hours_overlap",
                    line=number,
                    day=name,
                    first=f"{s1:%H:%M}-{e1:%H:%M}",
                    second=f"{s2:%H:%M}-{e2:%H:%M}",
                )
        result[WEEKDAYS[day]] = [[f"{s:%H:%M}", f"{e:%H:%M}"] for s, e in spans]
    if not result:
        if seen:
            raise invalid(
                "service_hours",
                "An keinem Tag ist eine Servicezeit eingetragen. Lassen Sie das Feld leer, wenn rund um die Uhr gezählt werden soll.",  # noqa: E501
                "hours_empty",
            )
        return None
    ordered = {day: result[day] for day in WEEKDAYS if day in result}
    parse_service_hours(ordered)  # the format the SLA clock reads; cannot fail after the above
    return ordered


def format_postcodes(raw: list[str] | None) -> str:
    return ", ".join(raw or [])


def parse_postcodes(text: str) -> list[str] | None:
    """ "80331-81929, 85774" → ["80331-81929", "85774"] (ranges inclusive)."""
    result: list[str] = []
    for part in re.split(r"[,;\n]+", text):
        part = part.strip()
        if not part:
            continue
        match = POSTCODE_RE.match(part)
        if not match:
            raise invalid(
                "postcodes",
                "„{value}“ ist keine Postleitzahl und kein Bereich wie 80331-81929.",
                "invalid_postcode",
                value=part,
            )
        low, high = match.group(1), match.group(2)
        if high and int(high) < int(low):
            raise invalid(
                "postcodes",
                "Im Bereich {value} ist die erste Postleitzahl größer als die zweite.",
                "postcode_order",
                value=part,
            )
        result.append(f"{low}-{high}" if high and high != low else low)
    return result or None


def list_cities(session: Session, actor: Actor) -> list[City]:
    require_admin(actor)
    stmt = select(City)
    if not _is_network_admin(actor):
        stmt = stmt.where(City.id == actor.city_id)
    return list(session.exec(stmt.order_by(col(City.name))).all())


def get_city(session: Session, actor: Actor, key: str) -> City:
    require_admin(actor)
    city = session.exec(select(City).where(City.key == key)).first()
    if city is None:
        raise NotFound("Diese Stadt gibt es nicht.", code="city_not_found")
    if not _manages_city(actor, city.id):
        raise Forbidden("Sie dürfen nur Ihre eigene Stadt verwalten.", code="other_city")
    return city


@dataclass(slots=True)
class CityForm:
    """The city fields as typed into the form (text), validated by `apply_city_form`."""

    key: str = ""
    name: str = ""
    ags: str = ""
    state: str = ""
    timezone: str = "Europe/Berlin"
    active: bool = True
    postcodes: str = ""
    service_hours: str = ""
    sla_first_response_hours: str = ""
    sla_resolution_hours: str = ""
    escalation_email: str = ""
    escalation_webhook_url: str = ""
    retention_days: str = str(DEFAULT_RETENTION_DAYS)
    log_retention_days: str = str(DEFAULT_LOG_RETENTION_DAYS)

    @classmethod
    def of(cls, city: City) -> CityForm:
        return cls(
            key=city.key,
            name=city.name,
            ags=city.ags or "",
            state=city.state or "",
            timezone=city.timezone,
            active=city.active,
            postcodes=format_postcodes(city.postcodes),
            service_hours=format_service_hours(city.service_hours),
            sla_first_response_hours=_int_text(city.sla_first_response_hours),
            sla_resolution_hours=_int_text(city.sla_resolution_hours),
            escalation_email=city.escalation_email or "",
            escalation_webhook_url=city.escalation_webhook_url or "",
            retention_days=str(city.retention_days),
            log_retention_days=str(city.log_retention_days),
        )


def _int_text(value: int | None) -> str:
    return "" if value is None else str(value)


def _sla_hours(field_name: str, text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_SLA_HOURS:
        raise invalid(
            field_name,
            "Bitte eine ganze Zahl von Stunden zwischen 1 und {max} eingeben (leer: Netzwerk-Vorgabe).",
            "invalid_sla",
            max=MAX_SLA_HOURS,
        )
    return int(text)


def clean_escalation_email(value: str) -> str | None:
    """The address the worker mails overdue tickets to; empty: none. Syntax only (no DNS)."""
    value = value.strip()
    if not value:
        return None
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise invalid(
            "escalation_email",
            "„{value}“ ist keine gültige E-Mail-Adresse für Eskalationen.",
            "invalid_escalation_email",
            value=value[:320],
        ) from None
    if len(checked.normalized) > 320:
        raise invalid(
            "escalation_email",
            "Die E-Mail-Adresse für Eskalationen hat höchstens 320 Zeichen.",
            "invalid_escalation_email",
        )
    return str(checked.normalized)


def clean_webhook_url(value: str) -> str | None:
    """The URL the worker POSTs overdue tickets to; empty: none. Its path may hold a secret, so
    no message quotes it."""
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_WEBHOOK_URL:
        raise invalid(
            "escalation_webhook_url",
            "Die Webhook-Adresse hat höchstens {max} Zeichen.",
            "invalid_webhook_url",
            max=MAX_WEBHOOK_URL,
        )
    try:
        parts = urlsplit(value)
        _ = parts.port  # an unparseable port raises here
    except ValueError:
        parts = None
    if (
        parts is None
        or any(ch.isspace() or ord(ch) < 32 for ch in value)
        or parts.scheme.lower() not in ("https", "http")
        or not parts.hostname
    ):
        raise invalid(
            "escalation_webhook_url",
            "Die Webhook-Adresse ist keine gültige URL. Schreiben Sie sie vollständig, z. B. https://hooks.example.de/hotline.",
            "invalid_webhook_url",
        )
    if parts.username is not None or parts.password is not None:
        raise invalid(
            "escalation_webhook_url",
            "Die Webhook-Adresse darf keinen Benutzernamen und kein Passwort enthalten (user:passwort@). Der Empfänger prüft stattdessen die Signatur.",  # noqa: E501
            "webhook_credentials",
        )
    if parts.scheme.lower() != "https" and parts.hostname.lower() not in LOCAL_HOSTS:
        raise invalid(
            "escalation_webhook_url",
            "Die Webhook-Adresse muss mit https:// beginnen (http:// nur für localhost).",
            "webhook_not_https",
        )
    return value


def _days(field_name: str, text: str, bounds: tuple[int, int], default: int | None) -> int:
    text = text.strip()
    if not text and default is not None:
        return default
    low, high = bounds
    if not text.isdigit() or not low <= int(text) <= high:
        raise invalid(
            field_name,
            "Bitte eine ganze Zahl von Tagen zwischen {low} und {high} eingeben.",
            "invalid_retention",
            low=low,
            high=high,
        )
    return int(text)


def retention_days_of(text: str, *, default: int | None = DEFAULT_RETENTION_DAYS) -> int:
    """Days after closing until a ticket is anonymised; empty: `default` (None: refused)."""
    return _days("retention_days", text, RETENTION_DAYS, default)


def log_retention_days_of(text: str, *, default: int | None = DEFAULT_LOG_RETENTION_DAYS) -> int:
    """Days until the question log is deleted; empty: `default` (None: refused)."""
    return _days("log_retention_days", text, LOG_RETENTION_DAYS, default)


def check_retention_order(days: int, log_days: int) -> None:
    # The question log may not outlive the closed tickets it could be matched with.
    if log_days > days:
        raise invalid(
            "log_retention_days",
            "Das Frageprotokoll darf nicht länger aufbewahrt werden als abgeschlossene Fälle ({days} Tage).",
            "log_retention_too_long",
            days=days,
        )


def clean_retention(retention_text: str, log_retention_text: str) -> tuple[int, int]:
    """(retention_days, log_retention_days) from the form's text; empty: the defaults."""
    days = retention_days_of(retention_text)
    log_days = log_retention_days_of(log_retention_text)
    check_retention_order(days, log_days)
    return days, log_days


def _apply_city_form(city: City, form: CityForm) -> None:
    name = " ".join(form.name.split())
    if not name or len(name) > 200:
        raise invalid("name", "Bitte geben Sie den Namen der Stadt ein (höchstens 200 Zeichen).")
    ags = form.ags.strip().replace(" ", "")
    if ags and not AGS_RE.match(ags):
        raise invalid(
            "ags",
            "Der Amtliche Gemeindeschlüssel hat 8 Ziffern (z. B. 09162000) oder als Regionalschlüssel 12.",
            "invalid_ags",
        )
    state = form.state.strip().upper()
    if state and state not in STATES:
        raise invalid(
            "state",
            "„{value}“ ist kein Bundesland-Kürzel (z. B. BY, BW, NW).",
            "invalid_state",
            value=form.state.strip(),
        )
    zone = form.timezone.strip() or "Europe/Berlin"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(
            "timezone",
            "„{value}“ ist keine bekannte Zeitzone (z. B. Europe/Berlin).",
            "invalid_timezone",
            value=zone,
        ) from None
    escalation_email = clean_escalation_email(form.escalation_email)
    webhook_url = clean_webhook_url(form.escalation_webhook_url)
    retention = clean_retention(form.retention_days, form.log_retention_days)
    city.name = name
    city.ags = ags or None
    city.state = state or None
    city.timezone = zone
    city.active = form.active
    city.postcodes = parse_postcodes(form.postcodes)
    city.service_hours = parse_hours_text(form.service_hours)
    city.sla_first_response_hours = _sla_hours(
        "sla_first_response_hours", form.sla_first_response_hours
    )
    city.sla_resolution_hours = _sla_hours("sla_resolution_hours", form.sla_resolution_hours)
    city.escalation_email = escalation_email
    city.escalation_webhook_url = webhook_url
    city.retention_days, city.log_retention_days = retention


def create_city(session: Session, actor: Actor, form: CityForm) -> City:
    """A new city of the network (coordinator)."""
    require_coordinator(actor)
    key = form.key.strip().lower()
    if not CITY_KEY_RE.match(key) or key in RESERVED_CITY_KEYS:
        raise invalid(
            "key",
            "Der Schlüssel besteht aus 2 bis 64 Kleinbuchstaben, Ziffern und Bindestrichen, z. B. regensburg.",
            "invalid_key",
        )
    if session.exec(select(City).where(City.key == key)).first():
        raise invalid("key", "Den Schlüssel „{key}“ gibt es schon.", "city_taken", key=key)
    city = City(key=key, name="")
    _apply_city_form(city, form)
    session.add(city)
    bump_generation(session)  # a new routing target
    session.flush()
    return city


def update_city(session: Session, actor: Actor, key: str, form: CityForm) -> City:
    """Everything but the key (rules route to it), coordinator only."""
    require_coordinator(actor)
    city = get_city(session, actor, key)
    _apply_city_form(city, form)
    session.add(city)
    bump_generation(session)  # active flag and names feed the router and the rule lint
    session.flush()
    return city


def set_service_hours(session: Session, actor: Actor, key: str, text: str) -> City:
    """The city admin's own city (or any city for the coordinator): service hours only."""
    city = get_city(session, actor, key)
    city.service_hours = parse_hours_text(text)
    session.add(city)
    session.flush()
    return city


def set_escalation_targets(
    session: Session, actor: Actor, key: str, *, email: str, webhook_url: str
) -> City:
    """Who is alerted about the city's overdue tickets is the city's business: its admin (or the
    coordinator) sets the e-mail address and the webhook; empty clears one."""
    city = get_city(session, actor, key)
    mail = clean_escalation_email(email)
    url = clean_webhook_url(webhook_url)
    city.escalation_email = mail
    city.escalation_webhook_url = url
    session.add(city)
    session.flush()
    return city


# --- API tokens ----------------------------------------------------------------------------------


def list_tokens(session: Session, actor: Actor) -> list[ApiToken]:
    """City admin: their city's tokens; coordinator: all, network tokens included."""
    require_admin(actor)
    stmt = select(ApiToken)
    if not _is_network_admin(actor):
        stmt = stmt.where(ApiToken.scope == TokenScope.city, ApiToken.city_id == actor.city_id)
    return list(session.exec(stmt.order_by(col(ApiToken.revoked), col(ApiToken.id).desc())).all())


def issue_token(
    session: Session, actor: Actor, *, name: str, scope: str, city_key: str | None
) -> auth.IssuedToken:
    """A new token; its secret is in the result only (the table keeps its hash)."""
    require_admin(actor)
    name = " ".join(name.split())
    if not name:
        raise invalid("name", "Bitte geben Sie dem Token einen Namen, z. B. „Website München“.")
    if len(name) > 120:
        raise invalid("name", "Der Name darf höchstens 120 Zeichen haben.")
    if scope == TokenScope.network:
        if not _is_network_admin(actor):
            raise Forbidden(
                "Netzwerk-Tokens darf nur die Koordination ausstellen.", code="network_token"
            )
        return auth.create_token(session, name=name, network=True)
    if scope != TokenScope.city:
        raise invalid("scope", "Bitte wählen Sie den Geltungsbereich.", "token_scope")
    if not _is_network_admin(actor):
        city_key = _city_key(session, actor.city_id)
    if not city_key:
        raise invalid("city", "Bitte wählen Sie die Stadt des Tokens.", "no_city")
    city = session.exec(select(City).where(City.key == city_key)).first()
    if city is None:
        raise invalid("city", "Diese Stadt gibt es nicht.", "unknown_city")
    if not _manages_city(actor, city.id):
        raise Forbidden(
            "Sie dürfen nur Tokens für Ihre eigene Stadt ausstellen.", code="other_city"
        )
    return auth.create_token(session, name=name, city_key=city.key)


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    require_admin(actor)
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("Dieses Token gibt es nicht.", code="token_not_found")
    if not _is_network_admin(actor) and (
        token.scope == TokenScope.network or token.city_id != actor.city_id
    ):
        raise Forbidden("Sie dürfen nur Tokens Ihrer eigenen Stadt widerrufen.", code="other_city")
    token.revoked = True
    session.add(token)
    session.flush()
    return token


# --- services ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePage:
    items: list[Service]
    total: int
    page: int
    pages: int


def list_services(
    session: Session,
    actor: Actor,
    *,
    q: str | None = None,
    owner: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> ServicePage:
    """The catalogue by name, searched (name, key, LeiKa key, OZG id) and filtered by owner
    city (`owner="-"`: services without owner), one page at a time."""
    require_admin(actor)
    stmt = select(Service)
    if q and q.strip():
        text = q.strip()
        pattern = f"%{text}%"
        stmt = stmt.where(
            or_(
                col(Service.name).ilike(pattern),
                col(Service.key).ilike(pattern),
                col(Service.leika_key).startswith(text, autoescape=True),
                Service.ozg_id == text,
                col(Service.topic).ilike(pattern),
            )
        )
    if owner == "-":
        stmt = stmt.where(col(Service.owner_city_id).is_(None))
    elif owner:
        city = session.exec(select(City).where(City.key == owner)).first()
        stmt = stmt.where(Service.owner_city_id == (city.id if city else -1))
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.exec(
        stmt.order_by(col(Service.name), col(Service.id))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return ServicePage(items=list(rows), total=total, page=page, pages=pages)


def get_service(session: Session, actor: Actor, service_id: int) -> Service:
    require_admin(actor)
    service = session.get(Service, service_id)
    if service is None:
        raise NotFound("Diese Leistung gibt es nicht.", code="service_not_found")
    return service


@dataclass(slots=True)
class ServiceForm:
    key: str = ""
    name: str = ""
    leika_key: str = ""
    ozg_id: str = ""
    topic: str = ""
    owner: str = ""  # city key, "" for no owner

    @classmethod
    def of(cls, service: Service, owner_key: str | None) -> ServiceForm:
        return cls(
            key=service.key,
            name=service.name,
            leika_key=service.leika_key or "",
            ozg_id=service.ozg_id or "",
            topic=service.topic or "",
            owner=owner_key or "",
        )


def _apply_service_form(session: Session, service: Service, form: ServiceForm) -> None:
    name = " ".join(form.name.split())
    if not name or len(name) > 300:
        raise invalid("name", "Bitte geben Sie den Namen der Leistung ein (höchstens 300 Zeichen).")
    leika = form.leika_key.strip().replace(" ", "")
    if leika and not LEIKA_RE.match(leika):
        raise invalid("leika_key", "Der LeiKa-Schlüssel hat genau 14 Ziffern.", "invalid_leika")
    if leika:
        other = session.exec(
            select(Service).where(Service.leika_key == leika, Service.id != service.id)
        ).first()
        if other is not None:
            raise invalid(
                "leika_key",
                "Der LeiKa-Schlüssel {leika} gehört schon zur Leistung „{name}“.",
                "leika_taken",
                leika=leika,
                name=other.name,
            )
    ozg = form.ozg_id.strip()
    if len(ozg) > 16:
        raise invalid("ozg_id", "Die OZG-ID hat höchstens 16 Zeichen.", "invalid_ozg")
    topic = form.topic.strip()
    if len(topic) > 120:
        raise invalid("topic", "Das Thema hat höchstens 120 Zeichen.", "invalid_topic")
    owner_id = None
    if form.owner:
        city = session.exec(select(City).where(City.key == form.owner)).first()
        if city is None:
            raise invalid("owner", "Diese Stadt gibt es nicht.", "unknown_city")
        owner_id = city.id
    service.name = name
    service.leika_key = leika or None
    service.ozg_id = ozg or None
    service.topic = topic or None
    service.owner_city_id = owner_id


def create_service(session: Session, actor: Actor, form: ServiceForm) -> Service:
    """A new catalogue entry (coordinator); the key is derived from the name when empty."""
    require_coordinator(actor)
    key = form.key.strip().lower() or slugify(form.name)
    if not SERVICE_KEY_RE.match(key):
        raise invalid(
            "key",
            "Der Schlüssel besteht aus Kleinbuchstaben, Ziffern und Bindestrichen (höchstens 120 Zeichen).",
            "invalid_key",
        )
    if session.exec(select(Service).where(Service.key == key)).first():
        raise invalid("key", "Den Schlüssel „{key}“ gibt es schon.", "service_taken", key=key)
    service = Service(key=key, name="")
    _apply_service_form(session, service, form)
    session.add(service)
    bump_generation(session)  # routing reads the catalogue (service owners)
    session.flush()
    return service


def update_service(session: Session, actor: Actor, service_id: int, form: ServiceForm) -> Service:
    """Change name, LeiKa key, OZG id, topic and owner city (coordinator). The owner decides
    `service_owner` routing, so router caches are told to rebuild."""
    require_coordinator(actor)
    service = get_service(session, actor, service_id)
    _apply_service_form(session, service, form)
    session.add(service)
    bump_generation(session)
    session.flush()
    return service


# --- overview ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overview:
    users: int
    locked: int
    cities: int
    tokens: int
    services: int


def overview(session: Session, actor: Actor) -> Overview:
    users = list_users(session, actor)
    now = utcnow()
    tokens = [t for t in list_tokens(session, actor) if not t.revoked]
    services = session.exec(select(func.count()).select_from(Service)).one()
    return Overview(
        users=len(users),
        locked=sum(1 for u in users if is_locked(u, now)),
        cities=len(list_cities(session, actor)),
        tokens=len(tokens),
        services=services,
    )
