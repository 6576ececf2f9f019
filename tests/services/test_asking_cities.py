"""The backend's matcher treats every city's name as a stop word, also for cities added later."""

from __future__ import annotations

from hotline.db import Database
from hotline.models import City
from hotline.services.actors import Actor
from hotline.services.asking import MatcherCache, ask
from hotline.services.rules import bump_generation
from tests.conftest import World

QUESTION = "Regensburg Personalausweis verloren"


def test_a_new_citys_name_does_not_block_a_confident_answer(
    demo_kb_world: World, db: Database
) -> None:
    actor = Actor(label="test", city_id=None, network=True)
    cache = MatcherCache()
    with db.write() as session:
        # Before the city exists its name is a word no KB entry knows: no confident answer.
        before = ask(session, actor, cache, question=QUESTION, city=None, secret="s")
    assert (before.decision, before.entry and before.entry.id) == ("suggest", "ausweis-verlust")

    with db.write() as session:
        session.add(City(key="regensburg", name="Regensburg", ags="09362000", state="BY"))
        bump_generation(session)  # as every city change does (services/admin.py)
    with db.write() as session:
        after = ask(session, actor, cache, question=QUESTION, city="regensburg", secret="s")
    assert (after.decision, after.entry and after.entry.id) == ("answer", "ausweis-verlust")
