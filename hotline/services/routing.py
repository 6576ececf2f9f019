"""Who is responsible for a new ticket: the decision and its trace, stored on the ticket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from hotline.errors import InvalidInput
from hotline.models import City, Service
from hotline.services.catalog import find_city


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What routing may look at; keys as the API received them."""

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


def route_ticket(session: Session, facts: TicketFacts, *, default_city: str) -> Routed:
    """The origin city when it is known and active, else the configured default city."""
    origin = facts.origin_city
    if origin is not None and origin.active:
        return Routed(
            city=origin,
            decision={
                "city": origin.key,
                "rule": None,
                "rule_version": None,
                "via": "fallback",
                "trace": [
                    {
                        "result": "fallback",
                        "detail": f"Herkunftsstadt {origin.name} ist zuständig (Rückfallregel).",
                    }
                ],
            },
        )
    city = find_city(session, default_city)
    if city is None or not city.active:
        raise InvalidInput(
            f"No responsible city: the origin city is unknown or inactive and the default city "
            f"{default_city!r} does not exist or is inactive (setting HOTLINE_DEFAULT_CITY).",
            code="no_responsible_city",
        )
    why = "unbekannt" if origin is None else f"{origin.name} (inaktiv)"
    return Routed(
        city=city,
        decision={
            "city": city.key,
            "rule": None,
            "rule_version": None,
            "via": "default",
            "trace": [
                {
                    "result": "default",
                    "detail": f"Herkunftsstadt {why}: Standardstadt {city.name} ist zuständig.",
                }
            ],
        },
    )
