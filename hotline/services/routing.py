"""Who is responsible for a new ticket: the router's decision and its trace, stored on the ticket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from hotline.errors import InvalidInput
from hotline.models import City, Service
from hotline.routing import Facts
from hotline.services.catalog import find_city
from hotline.services.rules import RouterCache

FULL_TRACE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What routing may look at, resolved against the catalogue."""

    origin_city: City | None
    service: Service | None
    topic: str | None
    audience: str
    channel: str
    text: str


@dataclass(frozen=True, slots=True)
class Routed:
    city: City
    decision: dict[str, Any]
    sla_hours: int | None = None


def route_ticket(
    session: Session, facts: TicketFacts, *, default_city: str, cache: RouterCache
) -> Routed:
    """Decide with the network's current rules: first matching rule, else fallback, else default."""
    router = cache.get(session, default_city=default_city)
    # Staff read the trace on the ticket: list every rule tried while that stays short; with
    # very large rule sets keep the indexed trace (rules the index excluded are counted).
    decision = router.decide(
        full_trace=len(router.compiled) <= FULL_TRACE_LIMIT,
        facts=Facts(
            origin_city=facts.origin_city.key if facts.origin_city else None,
            service=facts.service.key if facts.service else None,
            topic=facts.topic,
            audience=facts.audience,  # type: ignore[arg-type]
            channel=facts.channel,
            text=facts.text,
        ),
    )
    city = find_city(session, decision.city)
    if city is None:
        raise InvalidInput(
            f"No responsible city: routing chose {decision.city!r}, which does not exist; check "
            "default_city of the rules (or HOTLINE_DEFAULT_CITY).",
            code="no_responsible_city",
        )
    return Routed(city=city, decision=decision.to_dict(), sla_hours=decision.sla_hours)
