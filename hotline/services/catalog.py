"""Cities and services: lookups by key (or LeiKa key) and the service catalogue import."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, or_, select

from hotline.errors import InvalidInput, NotFound
from hotline.models import City, Service

_UMLAUTS = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue"}
)
LEIKA_RE = re.compile(r"^\d{14}$")


def slugify(text: str, max_length: int = 100) -> str:
    """ASCII key from German text: 'Gewerbe-Anmeldung (Online)' → 'gewerbe-anmeldung-online'."""
    text = unicodedata.normalize("NFKC", text).translate(_UMLAUTS)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "service"


def find_city(session: Session, key: str) -> City | None:
    return session.exec(select(City).where(City.key == key)).first()


def get_city(session: Session, key: str, *, field: str = "city") -> City:
    """The city with this key; 422 `unknown_city` when there is none (input validation)."""
    city = find_city(session, key)
    if city is None:
        raise InvalidInput(
            f"Unknown city key {key!r} in {field}.", code="unknown_city", field=field
        )
    return city


def city_or_404(session: Session, key: str) -> City:
    city = find_city(session, key)
    if city is None:
        raise NotFound(f"There is no city with key {key!r}.", code="city_not_found")
    return city


def find_service(session: Session, key_or_leika: str) -> Service | None:
    """A service by its key or, for 14-digit values, its LeiKa key."""
    stmt = select(Service).where(
        or_(Service.key == key_or_leika, Service.leika_key == key_or_leika)
    )
    return session.exec(stmt.order_by(col(Service.key) != key_or_leika, col(Service.id))).first()


def get_service(session: Session, key_or_leika: str) -> Service:
    service = find_service(session, key_or_leika)
    if service is None:
        raise InvalidInput(
            f"Unknown service {key_or_leika!r}: give a service key or a LeiKa key.",
            code="unknown_service",
            field="service",
        )
    return service


def service_or_404(session: Session, key: str) -> Service:
    service = find_service(session, key)
    if service is None:
        raise NotFound(f"There is no service with key {key!r}.", code="service_not_found")
    return service


def city_keys(session: Session) -> dict[int, str]:
    return {c.id: c.key for c in session.exec(select(City)).all() if c.id is not None}


# --- catalogue import ------------------------------------------------------------------------


class CatalogError(ValueError):
    """A catalogue file that cannot be imported; names the file, line and problem."""


@dataclass(slots=True)
class ServiceRow:
    line: int
    key: str
    name: str
    leika_key: str | None = None
    ozg_id: str | None = None
    topic: str | None = None
    owner: str | None = None
    description: str | None = None


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    keys: list[str] = field(default_factory=list)


FORMATS = {
    "ozg": {"leika_key", "leika_name", "ozg_id", "ozg_leistung", "lebenslage", "themenfeld"},
    "munich": {"service_id", "leika_key", "name", "description"},
    "hotline": {"key", "name"},
}


def _clean_leika(raw: str | None) -> str | None:
    # Munich lists several keys in one cell ("99036008007003, 99036008007004"); the first is
    # the main one. The OZG file writes "nicht im LeiKa" for services without a key.
    for part in (raw or "").replace(";", ",").split(","):
        part = part.strip()
        if LEIKA_RE.match(part):
            return part
    return None


def read_catalog(path: Path) -> list[ServiceRow]:
    """Parse a catalogue CSV (OZG/LeiKa export, Munich services, or key,name,… columns)."""
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = set(reader.fieldnames or [])
            kind = next((k for k, cols in FORMATS.items() if cols <= header), None)
            if kind is None:
                raise CatalogError(
                    f"{path}:1: unknown columns {sorted(header)}; expected the OZG/LeiKa export "
                    f"({', '.join(sorted(FORMATS['ozg']))}), the Munich services export "
                    f"({', '.join(sorted(FORMATS['munich']))}) or at least: key, name"
                )
            rows = [_row(kind, raw, reader.line_num, path) for raw in reader]
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise CatalogError(f"{path}: broken CSV ({exc})") from exc
    return _dedupe_keys(rows)


def _row(kind: str, raw: dict[str, str | None], line: int, path: Path) -> ServiceRow:
    def get(name: str) -> str | None:
        value = raw.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    if kind == "ozg":
        name = get("leika_name") or get("ozg_leistung")
        if not name:
            raise CatalogError(f"{path}:{line}: column leika_name is empty")
        leika = _clean_leika(get("leika_key"))
        return ServiceRow(line, slugify(name), name, leika, get("ozg_id"), get("lebenslage"))
    if kind == "munich":
        name = get("name")
        if not name:
            raise CatalogError(f"{path}:{line}: column name is empty")
        return ServiceRow(
            line,
            slugify(name),
            name,
            _clean_leika(get("leika_key")),
            description=get("description"),
        )
    key, name = get("key"), get("name")
    if not key or not name:
        raise CatalogError(f"{path}:{line}: columns key and name must not be empty")
    if slugify(key) != key:
        raise CatalogError(f"{path}:{line}: key {key!r} must be lowercase a-z, 0-9 and '-'")
    leika = get("leika_key") or get("leika")
    if leika and not LEIKA_RE.match(leika):
        raise CatalogError(f"{path}:{line}: LeiKa key {leika!r} must have 14 digits")
    return ServiceRow(line, key, name, leika, get("ozg_id"), get("topic"), get("owner"))


def _dedupe_keys(rows: list[ServiceRow]) -> list[ServiceRow]:
    # Different services can share a name in a catalogue; the LeiKa key or line tells them apart.
    seen: dict[str, int] = {}
    for row in rows:
        if row.key in seen:
            suffix = row.leika_key or str(row.line)
            row.key = f"{row.key[: 100 - len(suffix) - 1]}-{suffix}"
        seen[row.key] = row.line
    return rows


def import_services(session: Session, rows: Iterable[ServiceRow], *, source: str) -> ImportResult:
    """Upsert services by key; validates every row before writing any."""
    rows = list(rows)
    cities = {c.key: c for c in session.exec(select(City)).all()}
    for row in rows:
        if row.owner and row.owner not in cities:
            raise CatalogError(f"{source}:{row.line}: unknown owner city {row.owner!r}")
    existing = {s.key: s for s in session.exec(select(Service)).all()}
    result = ImportResult()
    for row in rows:
        owner_id = cities[row.owner].id if row.owner else None
        service = existing.get(row.key)
        if service is None:
            service = Service(key=row.key, name=row.name)
            existing[row.key] = service
            result.created += 1
        else:
            result.updated += 1
        service.name = row.name[:300]
        service.leika_key = row.leika_key or service.leika_key
        service.ozg_id = row.ozg_id or service.ozg_id
        service.topic = row.topic or service.topic
        service.description = row.description or service.description
        if owner_id is not None:
            service.owner_city_id = owner_id
        session.add(service)
        result.keys.append(row.key)
    # Imported here: the rules service itself uses this module's look-ups.
    from hotline.services.rules import bump_generation

    bump_generation(session)  # owners and LeiKa keys feed routing
    session.flush()
    return result
