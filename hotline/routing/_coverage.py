"""The coverage matrix (origin city × service or topic × audience → responsible city) and the
replay of existing tickets against a (draft) rule set."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from hotline.routing._engine import Router
from hotline.routing._models import Audience, Facts, RuleSet, Via

CoverageBy = Literal["service", "topic"]


class CoverageRow(BaseModel):
    """Who answers questions of one origin city about one service (or topic) and audience."""

    model_config = ConfigDict(frozen=True)

    origin_city: str
    service: str | None = None
    topic: str | None = None
    audience: Audience
    city: str
    rule: str | None
    via: Via


def coverage(
    ruleset: RuleSet, by: CoverageBy = "service", *, router: Router | None = None
) -> list[CoverageRow]:
    """One row per active origin city × service (or topic) × audience, decided without channel
    or text: rules that need a channel or words in the text do not show here."""
    if by not in ("service", "topic"):
        raise ValueError(f"coverage by {by!r}: use 'service' or 'topic'")
    router = router or Router(ruleset)
    if by == "service":
        subjects = [s.key for s in ruleset.services]
    else:
        topics = {s.topic for s in ruleset.services if s.topic}
        for rule in ruleset.rules:
            topics.update(rule.when.topic or ())
        subjects = sorted(topics)
    rows = []
    for city in ruleset.cities:
        if not city.active:
            continue
        for subject in subjects:
            for audience in Audience:
                service = subject if by == "service" else None
                topic = subject if by == "topic" else None
                facts = Facts(origin_city=city.key, audience=audience, service=service, topic=topic)
                decision = router.decide(facts)
                rows.append(
                    CoverageRow(
                        origin_city=city.key,
                        audience=audience,
                        city=decision.city,
                        rule=decision.rule,
                        via=decision.via,
                        service=service,
                        topic=topic,
                    )
                )
    return rows


_COLUMNS = ("origin_city", "{by}", "audience", "city", "rule", "via")


def _records(rows: Iterable[CoverageRow], by: CoverageBy) -> tuple[list[str], list[list[str]]]:
    header = [c.format(by=by) for c in _COLUMNS]
    records = [[str(getattr(row, name) or "") for name in header] for row in rows]
    return header, records


def coverage_csv(rows: Iterable[CoverageRow], by: CoverageBy = "service") -> str:
    """The rows as CSV with a header line (comma-separated, UTF-8 text)."""
    header, records = _records(rows, by)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    return out.getvalue()


def coverage_table(rows: Iterable[CoverageRow], by: CoverageBy = "service") -> str:
    """The rows as an aligned plain-text table; '-' where no rule decided."""
    header, records = _records(rows, by)
    records = [[cell or "-" for cell in record] for record in records]
    widths = [
        max(len(h), *(len(r[i]) for r in records)) if records else len(h)
        for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(cell.ljust(w) for cell, w in zip(record, widths, strict=True)).rstrip()
        for record in records
    )
    return "\n".join(lines) + "\n"


# --- replay -------------------------------------------------------------------------------


class ReplayTicket(BaseModel):
    """A ticket as replay needs it: its reference, the facts, the city responsible now."""

    model_config = ConfigDict(frozen=True)

    ref: str
    facts: Facts
    current_city: str


class Move(BaseModel):
    """A ticket that the rule set would route elsewhere."""

    model_config = ConfigDict(frozen=True)

    ref: str
    from_city: str
    to_city: str
    rule: str | None
    rule_version: int | None
    via: Via


def replay(
    ruleset: RuleSet, tickets: Iterable[ReplayTicket], *, router: Router | None = None
) -> list[Move]:
    """The tickets whose responsible city would change under `ruleset`, in input order."""
    router = router or Router(ruleset)
    moves = []
    for ticket in tickets:
        decision = router.decide(ticket.facts)
        if decision.city != ticket.current_city:
            moves.append(
                Move(
                    ref=ticket.ref,
                    from_city=ticket.current_city,
                    to_city=decision.city,
                    rule=decision.rule,
                    rule_version=decision.rule_version,
                    via=decision.via,
                )
            )
    return moves
