"""Knowledge-base entries in the database: import from and export to KB files (all or nothing)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

import kb
from hotline.db import utcnow
from hotline.errors import Forbidden, InvalidInput, NotFound, VersionConflict
from hotline.models import Audience, City, KBCandidate, KBEntry, KBState, KBStatus, Service
from hotline.services.actors import Actor


class KBImportError(ValueError):
    """Entries that do not fit the database; each message names the file."""


@dataclass(slots=True)
class KBImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    keys: list[str] = field(default_factory=list)


def import_dir(session: Session, directory: Path) -> KBImportResult:
    """Upsert every entry of DIR by id; any bad file refuses the whole import."""
    entries = kb.load_dir(directory)  # KBFormatError names file, line and reason
    cities = {c.key: c for c in session.exec(select(City)).all()}
    services = {s.key: s for s in session.exec(select(Service)).all()}
    problems = []
    for entry in entries:
        where = directory / f"{entry.id}.md"
        if entry.service not in services:
            problems.append(
                f"{where}: unknown service {entry.service!r} (import the catalogue first)"
            )
        if entry.city is not None and entry.city not in cities:
            problems.append(f"{where}: unknown city {entry.city!r}")
    if problems:
        raise KBImportError("\n".join(problems))
    existing = {e.key: e for e in session.exec(select(KBEntry)).all()}
    result = KBImportResult()
    for entry in entries:
        row = existing.get(entry.id)
        values: dict[str, Any] = {
            "title": entry.title,
            "questions": list(entry.questions),
            "answer": entry.answer,
            "service_id": services[entry.service].id,
            "city_id": cities[entry.city].id if entry.city else None,
            "audience": Audience(entry.audience),
            "status": KBStatus(entry.status),
        }
        if row is None:
            row = KBEntry(key=entry.id, **values)
            result.created += 1
        elif all(getattr(row, k) == v for k, v in values.items()):
            result.unchanged += 1
            result.keys.append(entry.id)
            continue
        else:
            for k, v in values.items():
                setattr(row, k, v)
            row.version += 1
            row.updated_at = utcnow()
            result.updated += 1
        session.add(row)
        result.keys.append(entry.id)
    session.flush()
    if result.created or result.updated:
        bump_kb_generation(session)
    return result


def kb_generation(session: Session) -> int:
    """The KB's change counter; 0 before anything was imported."""
    state = session.get(KBState, 1)
    return state.generation if state else 0


def bump_kb_generation(session: Session) -> int:
    """Mark the KB as changed (in the caller's transaction) so every matcher refreshes."""
    state = session.exec(select(KBState).where(KBState.id == 1).with_for_update()).first()
    if state is None:
        state = KBState(id=1, generation=0)
    state.generation += 1
    state.updated_at = utcnow()
    session.add(state)
    session.flush()
    return state.generation


def to_kb_entries(session: Session, keys: set[str] | None = None) -> list[kb.KBEntry]:
    """The stored entries (or those with the given keys) as matcher entries, in key order."""
    cities = {c.id: c.key for c in session.exec(select(City)).all()}
    services = {s.id: s.key for s in session.exec(select(Service)).all()}
    stmt = select(KBEntry).order_by(col(KBEntry.key))
    if keys is not None:
        stmt = stmt.where(col(KBEntry.key).in_(sorted(keys)))
    return [
        kb.KBEntry(
            id=row.key,
            title=row.title,
            service=services.get(row.service_id, "") if row.service_id else "",
            city=cities.get(row.city_id) if row.city_id else None,
            audience=str(row.audience),
            questions=list(row.questions),
            answer=row.answer,
            status=str(row.status),
        )
        for row in session.exec(stmt).all()
    ]


def export_dir(session: Session, directory: Path) -> int:
    return len(kb.write_dir(to_kb_entries(session), directory))


# --- the KB on the staff board: reading, searching and editing entries -------------------------
# Messages here are German: they are shown to staff on the board (English via its catalogue).

# Paths of the board's KB pages: an entry with one of these keys could not be opened there.
RESERVED_KEYS = frozenset({"new", "candidates", "gaps", "try", "preview"})
SHARED = "-"  # city filter value: only the entries shared by all cities
_AUDIENCES = frozenset(a.value for a in Audience)
_STATUSES = frozenset(s.value for s in KBStatus)
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def entry_visible(actor: Actor, row: KBEntry) -> bool:
    """Shared entries and the actor's city's (coordinators: all); drafts and internal entries
    are for staff, city tokens read published entries only."""
    if row.city_id is not None and not actor.can_see_city(row.city_id):
        return False
    return row.status == KBStatus.published or actor.role is not None or actor.network


def staff_entry(session: Session, actor: Actor, key: str, *, lock: bool = False) -> KBEntry:
    """An entry the actor may read, drafts included; 404 for other cities' entries."""
    stmt = select(KBEntry).where(KBEntry.key == key)
    if lock:
        stmt = stmt.with_for_update()
    row = session.exec(stmt).first()
    if row is None or not entry_visible(actor, row):
        raise NotFound("Diesen Eintrag gibt es nicht (oder nicht für Sie).", code="entry_not_found")
    return row


@dataclass(slots=True)
class EntryFilter:
    """What the board's KB list shows: `city` is a city key or SHARED, None = all visible."""

    text: str = ""
    city: str | None = None
    service: str | None = None
    audience: str | None = None
    status: str | None = None


def list_entries(session: Session, actor: Actor, flt: EntryFilter) -> list[KBEntry]:
    """The entries the actor may read that pass the filter, by title.

    The words of `text` must all occur in the title, a question variant, the answer or the key
    (case and umlauts folded: "gebuehr" finds "Gebühr")."""
    stmt = select(KBEntry).order_by(col(KBEntry.title), col(KBEntry.key))
    if not actor.network:
        stmt = stmt.where(
            (col(KBEntry.city_id).is_(None)) | (col(KBEntry.city_id) == actor.city_id)
        )
    if actor.role is None and not actor.network:
        stmt = stmt.where(KBEntry.status == KBStatus.published)
    if flt.city == SHARED:
        stmt = stmt.where(col(KBEntry.city_id).is_(None))
    elif flt.city:
        city = session.exec(select(City).where(City.key == flt.city)).first()
        if city is None or not actor.can_see_city(city.id):
            raise InvalidInput("Unbekannte Stadt im Filter.", code="unknown_city", field="city")
        stmt = stmt.where(KBEntry.city_id == city.id)
    if flt.service:
        service = session.exec(select(Service).where(Service.key == flt.service)).first()
        if service is None:
            raise InvalidInput(
                "Unbekannter Dienst im Filter.", code="unknown_service", field="service"
            )
        stmt = stmt.where(KBEntry.service_id == service.id)
    if flt.audience:
        if flt.audience not in _AUDIENCES:
            raise InvalidInput(
                "Unbekannte Zielgruppe im Filter.", code="bad_audience", field="audience"
            )
        stmt = stmt.where(KBEntry.audience == flt.audience)
    if flt.status:
        if flt.status not in _STATUSES:
            raise InvalidInput("Unbekannter Status im Filter.", code="bad_status", field="status")
        stmt = stmt.where(KBEntry.status == flt.status)
    rows = list(session.exec(stmt).all())
    words = kb.fold(flt.text).split()
    if not words:
        return rows
    found = []
    for row in rows:
        haystack = kb.fold(" ".join([row.key, row.title, *row.questions, row.answer]))
        if all(w in haystack for w in words):
            found.append(row)
    return found


def entries_by_key(session: Session, actor: Actor, keys: list[str]) -> dict[str, KBEntry]:
    """The visible entries among `keys` (e.g. the matcher's hits), by key."""
    if not keys:
        return {}
    rows = session.exec(select(KBEntry).where(col(KBEntry.key).in_(keys))).all()
    return {row.key: row for row in rows if entry_visible(actor, row)}


@dataclass(slots=True)
class EntryDraft:
    """An entry as typed into the board's form (keys for service and city; None = shared)."""

    key: str
    title: str
    service: str
    city: str | None
    audience: str
    status: str
    questions: list[str]
    answer: str

    @classmethod
    def of(cls, session: Session, row: KBEntry) -> EntryDraft:
        city = session.get(City, row.city_id) if row.city_id else None
        service = session.get(Service, row.service_id) if row.service_id else None
        return cls(
            key=row.key,
            title=row.title,
            service=service.key if service else "",
            city=city.key if city else None,
            audience=str(row.audience),
            status=str(row.status),
            questions=list(row.questions),
            answer=row.answer,
        )


def editable_city_ids(session: Session, actor: Actor) -> list[int | None]:
    """The cities (None = shared) whose entries the actor may write."""
    from hotline.services.learning import can_edit_entry

    ids: list[int | None] = [None]
    ids += [c.id for c in session.exec(select(City).order_by(col(City.name))).all()]
    return [i for i in ids if can_edit_entry(actor, i)]


def _require_kb_editor(actor: Actor, city_id: int | None) -> None:
    from hotline.services.learning import can_edit_entry

    if not can_edit_entry(actor, city_id):
        raise Forbidden(
            "Diesen Eintrag dürfen Sie nicht bearbeiten: Einträge einer Stadt bearbeitet der "
            "Städte-Admin dieser Stadt, gemeinsame Einträge die Koordination.",
            code="not_kb_editor",
        )


def _checked(
    session: Session, draft: EntryDraft, *, new: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values for the row and the problems by field (the rules of the KB file format)."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    key = draft.key.strip()
    if new:
        if not key:
            errors["key"] = "Bitte geben Sie einen Schlüssel an."
        elif len(key) > 120 or not _KEY_RE.match(key):
            errors["key"] = (
                "Der Schlüssel darf nur Kleinbuchstaben a–z, Ziffern, „-“ und „_“ enthalten "
                "(höchstens 120 Zeichen)."
            )
        elif key in RESERVED_KEYS:
            errors["key"] = "Dieser Schlüssel ist für Seiten der Wissensdatenbank reserviert."
        elif session.exec(select(KBEntry.id).where(KBEntry.key == key)).first() is not None:
            errors["key"] = "Einen Eintrag mit diesem Schlüssel gibt es schon."
    title = " ".join(draft.title.split())
    if not title:
        errors["title"] = "Bitte geben Sie einen Titel an."
    elif len(title) > 300:
        errors["title"] = "Der Titel ist zu lang (höchstens 300 Zeichen)."
    values["title"] = title
    service = session.exec(select(Service).where(Service.key == draft.service)).first()
    if service is None:
        errors["service"] = "Bitte wählen Sie einen Dienst."
    else:
        values["service_id"] = service.id
    values["city_id"] = None
    if draft.city:
        city = session.exec(select(City).where(City.key == draft.city)).first()
        if city is None:
            errors["city"] = "Diese Stadt gibt es nicht."
        else:
            values["city_id"] = city.id
    if draft.audience not in _AUDIENCES:
        errors["audience"] = "Bitte wählen Sie eine Zielgruppe."
    else:
        values["audience"] = Audience(draft.audience)
    if draft.status not in _STATUSES:
        errors["status"] = "Bitte wählen Sie einen Status."
    else:
        values["status"] = KBStatus(draft.status)
    questions: list[str] = []
    for question in draft.questions:
        text = " ".join(question.split())
        if not text:
            continue
        if len(text) > 500:
            errors["questions"] = "Eine Frage ist zu lang (höchstens 500 Zeichen je Zeile)."
        elif text in questions:
            errors["questions"] = "Eine Frage steht doppelt in der Liste."
        questions.append(text)
    if not questions and "questions" not in errors:
        errors["questions"] = "Bitte geben Sie mindestens eine Frage an (eine je Zeile)."
    values["questions"] = questions
    answer = draft.answer.strip()
    if not answer:
        errors["answer"] = "Bitte schreiben Sie eine Antwort."
    values["answer"] = answer
    return values, errors


def _invalid(errors: dict[str, str]) -> InvalidInput:
    return InvalidInput(
        "Der Eintrag wurde nicht gespeichert: Bitte prüfen Sie die markierten Felder.",
        code="invalid_entry",
        field=next(iter(errors)),
        errors=errors,
    )


def create_entry(session: Session, actor: Actor, draft: EntryDraft) -> KBEntry:
    """A new entry; 422 with `extra["errors"]` (field → message) when the input is not valid."""
    values, errors = _checked(session, draft, new=True)
    if not errors:
        _require_kb_editor(actor, values["city_id"])
    if errors:
        raise _invalid(errors)
    row = KBEntry(key=draft.key.strip(), **values)
    session.add(row)
    session.flush()
    bump_kb_generation(session)
    return row


def update_entry(
    session: Session, actor: Actor, key: str, draft: EntryDraft, *, version: int
) -> KBEntry:
    """Change an entry that is still at `version` (else VersionConflict); the key stays."""
    row = staff_entry(session, actor, key, lock=True)
    _require_kb_editor(actor, row.city_id)
    values, errors = _checked(session, draft, new=False)
    if errors:
        raise _invalid(errors)
    _require_kb_editor(actor, values["city_id"])  # moving it needs rights for the target too
    if row.version != version:
        raise VersionConflict(
            "Der Eintrag wurde inzwischen von jemand anderem geändert.",
            code="version_conflict",
            current=row.version,
        )
    if all(getattr(row, k) == v for k, v in values.items()):
        return row
    for k, v in values.items():
        setattr(row, k, v)
    row.version += 1
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    bump_kb_generation(session)
    return row


def delete_entry(session: Session, actor: Actor, key: str, *, version: int | None = None) -> None:
    """Remove an entry and its candidate variants (the ask log keeps only the key)."""
    row = staff_entry(session, actor, key, lock=True)
    _require_kb_editor(actor, row.city_id)
    if version is not None and row.version != version:
        raise VersionConflict(
            "Der Eintrag wurde inzwischen von jemand anderem geändert.", code="version_conflict"
        )
    for candidate in session.exec(select(KBCandidate).where(KBCandidate.entry_id == row.id)):
        session.delete(candidate)
    session.flush()
    session.delete(row)
    session.flush()
    bump_kb_generation(session)
