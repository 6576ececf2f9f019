"""The München objects both access matrices work on: a rule, a delegation, a KB entry with a
proposed variant (tests/board/test_access.py, tests/api/test_access_matrix.py)."""

from __future__ import annotations

from sqlmodel import Session, select

from hotline.models import City, KBCandidate, KBEntry
from hotline.services.actors import Actor
from hotline.services.learning import propose_candidate
from hotline.services.rules import save_rule


def munich_objects(
    session: Session, who: str, *, title: str, question: str, variant: str
) -> tuple[KBEntry, KBCandidate]:
    """Rule `muc-<who>`, Augsburg's delegation `aux-an-muc-<who>` (waiting for München's
    decision) and the entry `muc-eintrag-<who>` with one proposed variant."""
    cities = {c.key: c for c in session.exec(select(City)).all()}
    save_rule(
        session,
        Actor.system(),
        {
            "id": f"muc-{who}",
            "owner": "muenchen",
            "priority": 50,
            "when": {"service": "bayernid", "text_any": [f"regel {who}"]},
            "route_to": "muenchen",
        },
        default_city="muenchen",
    )
    save_rule(
        session,
        Actor(label="admin.aux", city_id=cities["augsburg"].id, network=False),
        {
            "id": f"aux-an-muc-{who}",
            "owner": "augsburg",
            "priority": 60,
            "when": {"service": "bayernid", "text_any": [f"delegation {who}"]},
            "route_to": "muenchen",
        },
        default_city="muenchen",
    )
    entry = KBEntry(
        key=f"muc-eintrag-{who}",
        title=title,
        questions=[question],
        answer="So geht das.",
        city_id=cities["muenchen"].id,
    )
    session.add(entry)
    session.flush()
    candidate = propose_candidate(session, entry, variant, source="staff")
    assert candidate is not None
    return entry, candidate
