"""Knowledge-base entries in the database: import from and export to KB files (all or nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

import kb
from hotline.db import utcnow
from hotline.models import Audience, City, KBEntry, KBState, KBStatus, Service


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
