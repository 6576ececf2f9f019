"""Asking the knowledge base: the matcher kept in step with the database, and the ask log.

Every process keeps one `kb.Matcher` built from the stored entries. It is refreshed when the
KB's generation counter (bumped in the same transaction as every KB change) moves: only the
entries whose version changed are re-indexed, so an accepted question variant answers the
very next question. Every ask is logged for the gaps report and feedback, without personal
data (see `redact` and `client_hash`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

import kb
from hotline.errors import Forbidden, InvalidInput, NotFound
from hotline.models import (
    Audience,
    Channel,
    City,
    KBAsk,
    KBEntry,
    KBStatus,
    RoutingConfig,
    Service,
)
from hotline.services.actors import Actor
from hotline.services.catalog import get_city
from hotline.services.kb import kb_generation, to_kb_entries

# --- the matcher, shared by the requests of one process -----------------------------------------


@dataclass
class MatcherCache:
    """One matcher per process, refreshed incrementally when the KB generation moves."""

    generation: int | None = None
    matcher: kb.Matcher | None = None
    versions: dict[str, int] = field(default_factory=dict)
    # The matcher's index is not safe to read while it is being updated: one lock for both.
    lock: threading.Lock = field(default_factory=threading.Lock)
    thresholds: kb.Thresholds | None = None
    # The cities' names and keys: stop words of the matcher (a question's city comes with it;
    # a city added later would otherwise be an unknown word that blocks confident answers).
    # Re-read only when the routing generation moves, which every city change bumps.
    city_names: tuple[str, ...] = ()
    cities_generation: int | None = None

    def _refresh(self, session: Session) -> kb.Matcher:
        generation = kb_generation(session)
        config = session.get(RoutingConfig, 1)
        cities_generation = config.generation if config is not None else 0
        if cities_generation != self.cities_generation:
            names = tuple(
                sorted({n for row in session.exec(select(City.key, City.name)) for n in row})
            )
            if names != self.city_names:
                self.matcher, self.city_names = None, names
            self.cities_generation = cities_generation
        names = self.city_names
        if self.matcher is not None and self.generation == generation:
            return self.matcher
        stored = {
            key: version for key, version in session.exec(select(KBEntry.key, KBEntry.version))
        }
        if self.matcher is None:
            matcher = kb.Matcher(
                to_kb_entries(session), thresholds=self.thresholds, extra_stopwords=names
            )
        else:
            matcher = self.matcher
            for key in set(self.versions) - set(stored):
                matcher.remove(key)
            changed = {k for k, v in stored.items() if self.versions.get(k) != v}
            for entry in to_kb_entries(session, changed) if changed else []:
                matcher.upsert(entry)
        # The variant classifier retrains now, while updates hold the lock anyway (about a
        # second or two for a KB of the demo's size), not in the middle of a later question.
        matcher.prepare()
        self.matcher, self.generation, self.versions = matcher, generation, stored
        return matcher

    def run(self, session: Session, fn: Any) -> Any:
        """Call `fn(matcher)` with an up-to-date matcher, serialised with updates."""
        with self.lock:
            return fn(self._refresh(session))


# --- no personal data in the log -----------------------------------------------------------------

_REDACTIONS = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[E-Mail]"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){3,7}(?:[ ]?[A-Z0-9]{1,3})?\b"), "[IBAN]"),
    (re.compile(r"(?<![\w])(?:\+|00)\d[\d /()-]{6,}\d"), "[Telefon]"),
    (re.compile(r"(?<![\w])0\d{2,5}[ /-]?\d[\d -]{4,}\d"), "[Telefon]"),
    (re.compile(r"\b\d{6,}\b"), "[Nummer]"),
]


def redact(text: str) -> str:
    """Mask e-mail addresses, IBANs, phone numbers and long numbers (ids, case numbers).

    Five-digit postcodes and short numbers stay: they carry meaning for the question."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def client_hash(secret: str, channel: str, ident: str) -> str:
    """A keyed hash of a chat or session id: links one asker's log for deletion, reveals nothing."""
    digest = hmac.new(secret.encode(), f"{channel}:{ident}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


# --- asking --------------------------------------------------------------------------------------


@dataclass(slots=True)
class EntryView:
    id: str
    title: str
    service: str | None
    city: str | None
    answer: str
    audience: str


@dataclass(slots=True)
class Offer:
    id: str
    title: str
    score: float


@dataclass(slots=True)
class AskOutcome:
    ask_id: int
    decision: str
    score: float
    entry: EntryView | None
    alternatives: list[Offer]
    suggestions: list[Offer]
    service: str | None
    # The confidence model's probability that `entry` is right (None with the hand rule).
    confidence: float | None = None
    # Why `entry` is no confident answer (`kb.MatchResult.reason`); None for an answer.
    reason: str | None = None
    # Other bodies the question names and `entry` does not (`kb.MatchResult.other_bodies`).
    other_bodies: list[str] = field(default_factory=list)


def _view(entry: kb.KBEntry) -> EntryView:
    return EntryView(
        id=entry.id,
        title=entry.title,
        service=entry.service or None,
        city=entry.city,
        answer=entry.answer,
        audience=entry.audience,
    )


def _city_for(session: Session, actor: Actor, city: str | None) -> City | None:
    if city is None:
        return None
    found = get_city(session, city)
    if not actor.can_see_city(found.id):
        raise Forbidden(
            f"This token belongs to another city and cannot ask as {found.name}.",
            code="city_forbidden",
        )
    return found


def ask(
    session: Session,
    actor: Actor,
    cache: MatcherCache,
    *,
    question: str,
    city: str | None,
    audience: Audience = Audience.external,
    channel: Channel = Channel.api,
    client: str | None = None,
    secret: str,
) -> AskOutcome:
    """Match a question, log it (redacted) and return the decision with the entries' texts."""
    found_city = _city_for(session, actor, city)
    city_key = found_city.key if found_city else None

    def match(matcher: kb.Matcher) -> tuple[kb.MatchResult, dict[str, kb.KBEntry], float]:
        result = matcher.match(question, city=city_key, audience=audience.value)
        ids = [result.entry, *(i for i, _ in result.alternatives)]
        entries = {i: e for i in ids if i and (e := matcher.get(i)) is not None}
        return result, entries, matcher.thresholds.suggest

    result, entries, threshold = cache.run(session, match)
    best = entries.get(result.entry) if result.entry else None
    alternatives = [Offer(i, entries[i].title, round(s, 1)) for i, s in result.alternatives]
    scores = {result.entry: result.score, **dict(result.alternatives)}
    suggestions = [Offer(i, entries[i].title, round(scores[i], 1)) for i in result.suggestions]
    row = KBAsk(
        question=redact(question)[:2000],
        city_id=found_city.id if found_city else None,
        audience=audience,
        channel=channel,
        decision=result.decision,
        entry_key=result.entry,
        score=round(result.score, 1),
        alternatives=[[i, round(s, 1)] for i, s in result.alternatives],
        client_hash=client_hash(secret, channel.value, client) if client else None,
    )
    session.add(row)
    session.flush()
    return AskOutcome(
        ask_id=row.id or 0,
        decision=result.decision,
        score=round(result.score, 1),
        entry=_view(best) if best else None,
        alternatives=alternatives,
        suggestions=suggestions,
        service=best.service or None if best and result.score >= threshold else None,
        confidence=round(result.confidence, 3) if result.confidence is not None else None,
        reason=result.reason,
        other_bodies=result.other_bodies,
    )


def search(
    session: Session,
    actor: Actor,
    cache: MatcherCache,
    *,
    query: str,
    city: str | None,
    audience: Audience = Audience.external,
    limit: int = 10,
) -> list[tuple[EntryView, float]]:
    """Entries for a search box, best first (not logged: nobody asked the bot)."""
    found_city = _city_for(session, actor, city)

    def run(matcher: kb.Matcher) -> list[tuple[EntryView, float]]:
        ranked = matcher.search(
            query, city=found_city.key if found_city else None, audience=audience.value, limit=limit
        )
        return [(_view(e), round(s, 1)) for i, s in ranked if (e := matcher.get(i)) is not None]

    result: list[tuple[EntryView, float]] = cache.run(session, run)
    return result


def get_ask(session: Session, actor: Actor, ask_id: int, *, lock: bool = False) -> KBAsk:
    stmt = select(KBAsk).where(KBAsk.id == ask_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.exec(stmt).first()
    if row is None or not (actor.network or row.city_id == actor.city_id):
        raise NotFound(f"Ask {ask_id} was not found.", code="ask_not_found")
    return row


def get_entry(
    session: Session, actor: Actor, key: str, *, audience: Audience | None = None
) -> KBEntry:
    """A published entry the actor may read: shared or of the actor's city; 404 otherwise."""
    row = session.exec(select(KBEntry).where(KBEntry.key == key)).first()
    if (
        row is None
        or (row.city_id is not None and not actor.can_see_city(row.city_id))
        or (row.status != KBStatus.published and actor.role is None and not actor.network)
        or (audience == Audience.external and row.audience != Audience.external)
    ):
        raise NotFound(f"KB entry {key!r} was not found.", code="entry_not_found")
    return row


def entry_view(session: Session, row: KBEntry) -> EntryView:
    city = session.get(City, row.city_id) if row.city_id else None
    service = session.get(Service, row.service_id) if row.service_id else None
    return EntryView(
        id=row.key,
        title=row.title,
        service=service.key if service else None,
        city=city.key if city else None,
        answer=row.answer,
        audience=str(row.audience),
    )


def feedback(session: Session, actor: Actor, ask_id: int, *, helped: bool) -> KBAsk:
    """Record "helped / did not help"; a chosen entry that did not help is no variant."""
    from hotline.services.learning import withdraw_candidates

    row = get_ask(session, actor, ask_id, lock=True)
    row.helped = helped
    session.add(row)
    if not helped:
        withdraw_candidates(session, ask_id)
    session.flush()
    return row


def choose(session: Session, actor: Actor, ask_id: int, *, entry: str) -> KBEntry:
    """The asker picked `entry` from the suggestions: record it and propose the variant."""
    from hotline.services.learning import propose_candidate

    row = get_ask(session, actor, ask_id, lock=True)
    offered = {row.entry_key, *(a[0] for a in row.alternatives or [])}
    if entry not in offered:
        raise InvalidInput(
            f"Entry {entry!r} was not offered for ask {ask_id}.", code="not_offered", field="entry"
        )
    target = get_entry(session, actor, entry, audience=Audience(row.audience))
    row.chosen_entry_key = entry
    session.add(row)
    propose_candidate(session, target, row.question, source="choice", ask_id=row.id)
    session.flush()
    return target


def kb_services(session: Session) -> list[Service]:
    """Services that have published external entries: what a citizen can ask about."""
    ids = select(KBEntry.service_id).where(
        KBEntry.status == KBStatus.published, KBEntry.audience == Audience.external
    )
    return list(
        session.exec(
            select(Service).where(col(Service.id).in_(ids)).order_by(col(Service.name))
        ).all()
    )
