"""The learning loop: candidate question variants and the gaps report.

A question confirmed as answered by entry X (the asker picked X from the suggestions, or staff
linked X to a ticket) becomes a *candidate variant* of X. A KB editor accepts it (the question
joins X's variants and the matcher answers it from the next question on) or rejects it.
Questions the KB could not answer are grouped by similarity into the *gaps* report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rapidfuzz import fuzz, process
from sqlmodel import Session, col, select

import kb
from hotline.db import utcnow
from hotline.errors import Conflict, Forbidden, InvalidInput, NotFound
from hotline.models import (
    Audience,
    CandidateStatus,
    City,
    KBAsk,
    KBCandidate,
    KBEntry,
    Role,
    Ticket,
)
from hotline.services.actors import Actor
from hotline.services.asking import EntryView, MatcherCache, Offer, get_entry, redact
from hotline.services.catalog import city_keys
from hotline.services.kb import bump_kb_generation
from hotline.services.tickets import get_ticket, log_event

# --- who edits the KB ----------------------------------------------------------------------------


def can_edit_entry(actor: Actor, city_id: int | None) -> bool:
    """Coordinators (and network tokens) edit everything; city admins their city's entries."""
    if actor.network:
        return actor.role in (None, Role.coordinator)
    if actor.role is not None and actor.role != Role.city_admin:
        return False  # agents read the KB and propose, they do not edit
    return city_id is not None and actor.city_id == city_id


def _require_editor(actor: Actor, entry: KBEntry) -> None:
    if not can_edit_entry(actor, entry.city_id):
        raise Forbidden(
            "Only a KB editor of this entry may do that: the city admin for a city's entry, "
            "a coordinator for a shared one.",
            code="not_kb_editor",
        )


# --- candidates -----------------------------------------------------------------------------------


def _same(a: str, b: str) -> bool:
    return kb.fold(" ".join(a.split())).strip(" ?!.") == kb.fold(" ".join(b.split())).strip(" ?!.")


def propose_candidate(
    session: Session,
    entry: KBEntry,
    question: str,
    *,
    source: str,
    ask_id: int | None = None,
    ticket_id: int | None = None,
) -> KBCandidate | None:
    """Queue `question` as a variant of `entry`, unless it is one already or already queued."""
    question = " ".join(redact(question).split())[:500]
    if not question or any(_same(question, q) for q in [entry.title, *entry.questions]):
        return None
    pending = session.exec(
        select(KBCandidate).where(
            KBCandidate.entry_id == entry.id, KBCandidate.status == CandidateStatus.pending
        )
    ).all()
    if any(_same(question, c.question) for c in pending):
        return None
    candidate = KBCandidate(
        entry_id=entry.id or 0,
        question=question,
        source=source,
        ask_id=ask_id,
        ticket_id=ticket_id,
    )
    session.add(candidate)
    session.flush()
    return candidate


def withdraw_candidates(session: Session, ask_id: int) -> None:
    """The asker said the chosen entry did not help: its pending candidate is dropped."""
    for candidate in session.exec(
        select(KBCandidate).where(
            KBCandidate.ask_id == ask_id, KBCandidate.status == CandidateStatus.pending
        )
    ).all():
        candidate.status = CandidateStatus.rejected
        candidate.decided_by = "system: did not help"
        candidate.decided_at = utcnow()
        session.add(candidate)


def link_ticket(
    session: Session, actor: Actor, ticket_ident: int | str, *, entry: str, question: str | None
) -> KBCandidate | None:
    """Staff say entry X answers this ticket: X's candidate variant is the ticket's question."""
    ticket = get_ticket(session, actor, ticket_ident, lock=True)
    target = get_entry(session, actor, entry)
    if target.city_id is not None and target.city_id not in (
        ticket.origin_city_id,
        ticket.responsible_city_id,
    ):
        raise InvalidInput(
            f"Entry {entry!r} belongs to another city than this ticket.",
            code="entry_other_city",
            field="entry",
        )
    candidate = propose_candidate(
        session, target, question or ticket.subject, source="staff", ticket_id=ticket.id
    )
    log_event(session, ticket, actor, "kb_linked", {"entry": target.key})
    session.flush()
    return candidate


@dataclass(slots=True)
class CandidateView:
    id: int
    entry: str
    entry_title: str
    entry_city: str | None
    question: str
    source: str
    status: str
    ticket: str | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


def list_candidates(
    session: Session, actor: Actor, *, status: CandidateStatus | None, limit: int = 200
) -> list[CandidateView]:
    """Candidates for the entries the actor may read (shared ones and their city's), newest first."""
    stmt = (
        select(KBCandidate, KBEntry)
        .join(KBEntry, col(KBEntry.id) == col(KBCandidate.entry_id))
        .order_by(col(KBCandidate.id).desc())
    )
    if status is not None:
        stmt = stmt.where(KBCandidate.status == status)
    if not actor.network:
        stmt = stmt.where(
            (col(KBEntry.city_id).is_(None)) | (col(KBEntry.city_id) == actor.city_id)
        )
    return candidate_views(session, list(session.exec(stmt.limit(limit)).all()))


def candidate_views(
    session: Session, rows: list[tuple[KBCandidate, KBEntry]]
) -> list[CandidateView]:
    keys = city_keys(session)
    ticket_ids = {c.ticket_id for c, _ in rows if c.ticket_id}
    refs = (
        {
            t.id: t.reference
            for t in session.exec(select(Ticket).where(col(Ticket.id).in_(ticket_ids))).all()
        }
        if ticket_ids
        else {}
    )
    return [
        CandidateView(
            id=c.id or 0,
            entry=e.key,
            entry_title=e.title,
            entry_city=keys.get(e.city_id) if e.city_id else None,
            question=c.question,
            source=c.source,
            status=str(c.status),
            ticket=refs.get(c.ticket_id) if c.ticket_id else None,
            created_at=c.created_at,
            decided_by=c.decided_by,
            decided_at=c.decided_at,
        )
        for c, e in rows
    ]


def candidate_view(session: Session, candidate: KBCandidate) -> CandidateView:
    return candidate_views(session, [(candidate, session.get_one(KBEntry, candidate.entry_id))])[0]


def _candidate(session: Session, actor: Actor, candidate_id: int) -> tuple[KBCandidate, KBEntry]:
    candidate = session.exec(
        select(KBCandidate).where(KBCandidate.id == candidate_id).with_for_update()
    ).first()
    entry = session.get(KBEntry, candidate.entry_id) if candidate else None
    if (
        candidate is None
        or entry is None
        or not (entry.city_id is None or actor.can_see_city(entry.city_id))
    ):
        raise NotFound(f"Candidate {candidate_id} was not found.", code="candidate_not_found")
    _require_editor(actor, entry)
    if candidate.status != CandidateStatus.pending:
        raise Conflict(
            f"Candidate {candidate_id} was already {candidate.status}.", code="candidate_decided"
        )
    return candidate, entry


def accept_candidate(
    session: Session, actor: Actor, candidate_id: int, *, question: str | None = None
) -> KBEntry:
    """Add the question (optionally reworded by the editor) to the entry; effective at once."""
    candidate, entry = _candidate(session, actor, candidate_id)
    text = " ".join((question or candidate.question).split())
    if not text:
        raise InvalidInput("The question must not be empty.", code="empty_question")
    if not any(_same(text, q) for q in entry.questions):
        entry.questions = [*entry.questions, text]
        entry.version += 1
        entry.updated_at = utcnow()
        session.add(entry)
        bump_kb_generation(session)
    candidate.question = text[:500]
    candidate.status = CandidateStatus.accepted
    candidate.decided_by = actor.label
    candidate.decided_at = utcnow()
    session.add(candidate)
    session.flush()
    return entry


def reject_candidate(session: Session, actor: Actor, candidate_id: int) -> KBCandidate:
    candidate, _ = _candidate(session, actor, candidate_id)
    candidate.status = CandidateStatus.rejected
    candidate.decided_by = actor.label
    candidate.decided_at = utcnow()
    session.add(candidate)
    session.flush()
    return candidate


# --- gaps -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class GapGroup:
    size: int
    question: str  # the most typical question of the group
    examples: list[str]
    cities: dict[str, int]
    channels: dict[str, int]
    handed_over: int
    not_helped: int
    best_entry: str | None  # the matcher's best (unconfident) guess, most often
    first_seen: datetime
    last_seen: datetime
    ask_ids: list[int] = field(default_factory=list)


def gaps(
    session: Session,
    actor: Actor,
    analyzer: kb.Analyzer,
    *,
    days: int = 30,
    city: str | None = None,
    similarity: float = 70.0,
    limit: int = 50,
    max_asks: int = 5000,
) -> list[GapGroup]:
    """Questions handed over or answered unhelpfully, grouped by similarity, biggest first.

    Questions are compared on their analysed words (stems after synonyms and stop words),
    so "Perso verloren" and "Personalausweis verloren gegangen" fall into one group."""
    since = utcnow() - timedelta(days=days)
    stmt = (
        select(KBAsk)
        .where(col(KBAsk.created_at) >= since)
        .where((col(KBAsk.decision) == "handover") | (col(KBAsk.helped).is_(False)))
        .order_by(col(KBAsk.id).desc())
        .limit(max_asks)
    )
    if not actor.network:
        stmt = stmt.where(KBAsk.city_id == actor.city_id)
    if city is not None:
        found = session.exec(select(City).where(City.key == city)).first()
        if found is None:
            raise InvalidInput(f"Unknown city key {city!r}.", code="unknown_city", field="city")
        stmt = stmt.where(KBAsk.city_id == found.id)
    asks = list(session.exec(stmt).all())
    keys = city_keys(session)
    # Leader clustering: each question joins the first group whose leader is similar enough.
    leaders: list[str] = []
    members: list[list[tuple[KBAsk, str]]] = []
    for row in reversed(asks):  # oldest first: the first wording of a gap leads its group
        norm = " ".join(sorted({t.stem for t in analyzer.tokens(row.question)}))
        if not norm:
            continue
        hit = process.extractOne(
            norm, leaders, scorer=fuzz.token_set_ratio, score_cutoff=similarity
        )
        if hit is None:
            leaders.append(norm)
            members.append([(row, norm)])
        else:
            members[hit[2]].append((row, norm))
    groups = []
    for group in members:
        rows = [r for r, _ in group]
        texts = [r.question for r in rows]
        # The most typical question: the one closest to the others (of the first 50, so a
        # big group costs at most 2,500 comparisons).
        sample = group[:50]
        typical = max(
            sample, key=lambda item: sum(fuzz.token_set_ratio(item[1], n) for _, n in sample)
        )[0].question
        seen_examples: list[str] = []
        for text in texts[::-1]:
            if text not in seen_examples:
                seen_examples.append(text)
        cities: dict[str, int] = {}
        channels: dict[str, int] = {}
        guesses: dict[str, int] = {}
        for r in rows:
            label = keys.get(r.city_id, "-") if r.city_id else "-"
            cities[label] = cities.get(label, 0) + 1
            channels[str(r.channel)] = channels.get(str(r.channel), 0) + 1
            if r.entry_key:
                guesses[r.entry_key] = guesses.get(r.entry_key, 0) + 1
        groups.append(
            GapGroup(
                size=len(rows),
                question=typical,
                examples=seen_examples[:5],
                cities=cities,
                channels=channels,
                handed_over=sum(r.decision == "handover" for r in rows),
                not_helped=sum(r.helped is False for r in rows),
                best_entry=max(guesses, key=lambda k: guesses[k]) if guesses else None,
                first_seen=min(r.created_at for r in rows),
                last_seen=max(r.created_at for r in rows),
                ask_ids=[r.id or 0 for r in rows][:50],
            )
        )
    groups.sort(key=lambda g: (-g.size, -g.last_seen.timestamp()))
    return groups[:limit]


# --- the staff board: what editors work on, and trying questions ---------------------------------


def editable_candidates(session: Session, actor: Actor, *, limit: int = 200) -> list[CandidateView]:
    """Pending candidates of the entries the actor may edit, newest first."""
    ids = {key: city_id for city_id, key in city_keys(session).items()}
    return [
        view
        for view in list_candidates(session, actor, status=CandidateStatus.pending, limit=limit)
        if can_edit_entry(actor, ids.get(view.entry_city) if view.entry_city else None)
    ]


def _staff_city(session: Session, actor: Actor, city: str | None) -> str | None:
    """The city to match as (a key or None for shared entries only): staff of a city may only
    use their own city, the coordination every city."""
    if not city:
        return None
    found = session.exec(select(City).where(City.key == city)).first()
    if found is None:
        raise InvalidInput("Diese Stadt gibt es nicht.", code="unknown_city", field="city")
    if not actor.can_see_city(found.id):
        raise Forbidden("Sie können nur als Ihre eigene Stadt fragen.", code="city_forbidden")
    return found.key


@dataclass(slots=True)
class Trial:
    """What the bot would do with a question: the decision, the best entry and the others."""

    decision: str
    score: float
    entry: EntryView | None
    alternatives: list[Offer]
    suggestions: list[str]
    thresholds: kb.Thresholds
    # Why there is no direct answer ("low_score", "close_second", …; kb.MatchResult.reason).
    reason: str | None = None
    # The learned decision: how sure the bot is (0–1) and from where it answers (None: rule).
    confidence: float | None = None
    confidence_threshold: float | None = None
    # Other bodies the question names and the entry does not (kb.MatchResult.other_bodies).
    other_bodies: list[str] = field(default_factory=list)


def try_question(
    session: Session,
    actor: Actor,
    cache: MatcherCache,
    *,
    question: str,
    city: str | None,
    audience: Audience = Audience.external,
) -> Trial:
    """Match a question as the bot would, without logging it as an ask (staff trying the KB
    must not show up in the gaps report)."""
    city_key = _staff_city(session, actor, city)
    if not question.strip():
        raise InvalidInput("Bitte geben Sie eine Frage ein.", code="empty_question", field="q")

    def run(matcher: kb.Matcher) -> Trial:
        result = matcher.match(question, city=city_key, audience=audience.value)
        best = matcher.get(result.entry) if result.entry else None
        alternatives = [
            Offer(i, e.title, round(s, 1))
            for i, s in result.alternatives
            if (e := matcher.get(i)) is not None
        ]
        return Trial(
            decision=result.decision,
            score=round(result.score, 1),
            entry=entry_view_of(best) if best else None,
            alternatives=alternatives,
            suggestions=list(result.suggestions),
            thresholds=matcher.thresholds,
            reason=result.reason if result.entry else None,
            confidence=result.confidence,
            confidence_threshold=model.threshold if (model := matcher.decision_model) else None,
            other_bodies=list(result.other_bodies),
        )

    trial: Trial = cache.run(session, run)
    return trial


def entry_view_of(entry: kb.KBEntry) -> EntryView:
    return EntryView(
        id=entry.id,
        title=entry.title,
        service=entry.service or None,
        city=entry.city,
        answer=entry.answer,
        audience=entry.audience,
    )


def find_by_question(
    session: Session,
    actor: Actor,
    cache: MatcherCache,
    *,
    question: str,
    city: str | None = None,
    limit: int = 50,
) -> list[tuple[str, float]]:
    """Entry keys a question asks for, best first, as the matcher ranks them (staff view:
    internal entries included). Staff of a city search the shared and their city's entries;
    the coordination a given city's, or every city's when none is given."""
    if actor.network:
        cities: list[str | None] = (
            [_staff_city(session, actor, city)]
            if city
            else [None, *sorted(city_keys(session).values())]
        )
    else:
        own = city_keys(session).get(actor.city_id) if actor.city_id is not None else None
        cities = [own]

    def run(matcher: kb.Matcher) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for key in cities:
            for entry_id, score in matcher.search(
                question, city=key, audience="internal", limit=limit
            ):
                best[entry_id] = max(score, best.get(entry_id, 0.0))
        return sorted(best.items(), key=lambda item: -item[1])[:limit]

    hits: list[tuple[str, float]] = cache.run(session, run)
    return hits
