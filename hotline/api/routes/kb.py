"""Knowledge base endpoints: ask, search, feedback, candidate variants and the gaps report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from sqlmodel import Session

from hotline.api.deps import ActorDep, DatabaseDep, MatcherCacheDep, SettingsDep
from hotline.api.ratelimit import RATE_LIMITED, limit_asks
from hotline.models import Audience, CandidateStatus, KBEntry
from hotline.schemas import (
    AcceptIn,
    AskIn,
    AskOut,
    CandidateOut,
    ChoiceIn,
    EntryOut,
    ErrorOut,
    FeedbackIn,
    GapOut,
    KBLinkIn,
    OfferOut,
    SearchHitOut,
    ServiceRefOut,
)
from hotline.services import asking, learning

router = APIRouter(tags=["knowledge base"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or bad token"},
    403: {"model": ErrorOut, "description": "Not allowed for this token or user"},
    404: {"model": ErrorOut, "description": "No such ask, entry or candidate"},
    409: {"model": ErrorOut, "description": "Candidate already decided"},
    422: {"model": ErrorOut, "description": "Invalid input"},
}


def _entry(view: asking.EntryView) -> EntryOut:
    return EntryOut(
        id=view.id,
        title=view.title,
        service=view.service,
        city=view.city,
        audience=view.audience,
        answer=view.answer,
    )


def _stored_entry(session: Session, row: KBEntry) -> EntryOut:
    return _entry(asking.entry_view(session, row))


@router.post(
    "/kb/ask",
    response_model=AskOut,
    responses={**ERRORS, **RATE_LIMITED},
    dependencies=[Depends(limit_asks)],
)
def ask(
    data: AskIn, actor: ActorDep, db: DatabaseDep, cache: MatcherCacheDep, settings: SettingsDep
) -> AskOut:
    """Match a question: **answer** (confident), **suggest** (up to three choices) or
    **handover** (to a person). Shared entries and the city's own; internal entries only for
    `audience: internal`. Every ask is logged without personal data."""
    with db.write() as session:
        out = asking.ask(
            session,
            actor,
            cache,
            question=data.question,
            city=data.city,
            audience=data.audience,
            channel=data.channel,
            client=data.client,
            secret=settings.secret_key,
        )
        return AskOut(
            ask_id=out.ask_id,
            decision=out.decision,  # type: ignore[arg-type]
            score=out.score,
            entry=_entry(out.entry) if out.entry else None,
            alternatives=[
                OfferOut(id=o.id, title=o.title, score=o.score) for o in out.alternatives
            ],
            suggestions=[OfferOut(id=o.id, title=o.title, score=o.score) for o in out.suggestions],
            service=out.service,
            confidence=out.confidence,
            reason=out.reason,  # type: ignore[arg-type]
            other_bodies=out.other_bodies,
        )


@router.get("/kb/search", response_model=list[SearchHitOut], responses=ERRORS)
def search(
    actor: ActorDep,
    db: DatabaseDep,
    cache: MatcherCacheDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Search words")],
    city: Annotated[str | None, Query(max_length=64)] = None,
    audience: Audience = Audience.external,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[SearchHitOut]:
    """Entries for a search box, best first, with their scores (not logged as asks)."""
    with db.read() as session:
        hits = asking.search(
            session, actor, cache, query=q, city=city, audience=audience, limit=limit
        )
        return [SearchHitOut(entry=_entry(view), score=score) for view, score in hits]


@router.get("/kb/entries/{key}", response_model=EntryOut, responses=ERRORS)
def get_entry(key: str, actor: ActorDep, db: DatabaseDep) -> EntryOut:
    """One entry with its answer text."""
    with db.read() as session:
        return _stored_entry(session, asking.get_entry(session, actor, key))


@router.get("/kb/services", response_model=list[ServiceRefOut], responses=ERRORS)
def kb_services(_: ActorDep, db: DatabaseDep) -> list[ServiceRefOut]:
    """The services the KB answers questions about (for "which service is it about?")."""
    with db.read() as session:
        return [ServiceRefOut(key=s.key, name=s.name) for s in asking.kb_services(session)]


@router.post("/kb/asks/{ask_id}/feedback", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def feedback(ask_id: int, data: FeedbackIn, actor: ActorDep, db: DatabaseDep) -> Response:
    """ "Helped / did not help" for an answer; unhelpful answers show up in the gaps report."""
    with db.write() as session:
        asking.feedback(session, actor, ask_id, helped=data.helped)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/kb/asks/{ask_id}/choice", response_model=EntryOut, responses=ERRORS)
def choice(ask_id: int, data: ChoiceIn, actor: ActorDep, db: DatabaseDep) -> EntryOut:
    """The asker chose one of the offered entries: returns it; its question becomes a
    candidate variant of that entry."""
    with db.write() as session:
        return _stored_entry(session, asking.choose(session, actor, ask_id, entry=data.entry))


@router.post("/tickets/{ticket_id}/kb-link", response_model=CandidateOut | None, responses=ERRORS)
def kb_link(ticket_id: str, data: KBLinkIn, actor: ActorDep, db: DatabaseDep) -> Any:
    """Staff: entry X answers this ticket. The ticket's question becomes a candidate variant
    of X (null when X already has that question)."""
    with db.write() as session:
        candidate = learning.link_ticket(
            session, actor, ticket_id, entry=data.entry, question=data.question
        )
        if candidate is None:
            return None
        return CandidateOut(**_as_dict(learning.candidate_view(session, candidate)))


def _as_dict(view: learning.CandidateView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in CandidateOut.model_fields}


@router.get("/kb/candidates", response_model=list[CandidateOut], responses=ERRORS)
def list_candidates(
    actor: ActorDep,
    db: DatabaseDep,
    status_: Annotated[CandidateStatus | None, Query(alias="status")] = CandidateStatus.pending,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[CandidateOut]:
    """Candidate question variants (default: pending), newest first."""
    with db.read() as session:
        views = learning.list_candidates(session, actor, status=status_, limit=limit)
        return [CandidateOut(**_as_dict(v)) for v in views]


@router.post("/kb/candidates/{candidate_id}/accept", response_model=EntryOut, responses=ERRORS)
def accept_candidate(
    candidate_id: int, actor: ActorDep, db: DatabaseDep, data: AcceptIn | None = None
) -> EntryOut:
    """Add the question to the entry's variants; the matcher uses it from the next question."""
    with db.write() as session:
        entry = learning.accept_candidate(
            session, actor, candidate_id, question=data.question if data else None
        )
        return _stored_entry(session, entry)


@router.post("/kb/candidates/{candidate_id}/reject", response_model=CandidateOut, responses=ERRORS)
def reject_candidate(candidate_id: int, actor: ActorDep, db: DatabaseDep) -> CandidateOut:
    with db.write() as session:
        candidate = learning.reject_candidate(session, actor, candidate_id)
        return CandidateOut(**_as_dict(learning.candidate_view(session, candidate)))


@router.get("/kb/gaps", response_model=list[GapOut], responses=ERRORS)
def gaps(
    actor: ActorDep,
    db: DatabaseDep,
    cache: MatcherCacheDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    city: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[GapOut]:
    """Questions handed over or answered unhelpfully, grouped by similarity, biggest first."""
    with db.read() as session:
        analyzer = cache.run(session, lambda m: m.analyzer)
        groups = learning.gaps(session, actor, analyzer, days=days, city=city, limit=limit)
        return [GapOut(**{name: getattr(g, name) for name in GapOut.model_fields}) for g in groups]
