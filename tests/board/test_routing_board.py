"""Routing pages of the board: rules read and edited by the right people, versions,
delegations, dry run, coverage, lint, replay, YAML import and export."""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from sqlmodel import select

from hotline.db import Database
from hotline.models import RoutingRule, RoutingRuleEvent, Ticket
from hotline.services import rules as svc
from hotline.services.actors import Actor
from tests.board.conftest import BoardClient
from tests.conftest import World

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]
R = "/board/routing"


def rules_yaml(body: str, *, fallback: str = "origin_city") -> str:
    return (
        f"fallback: {fallback}\ndefault_city: muenchen\nrules:\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        + "\n"
    )


STANDARD = rules_yaml("""
- {id: epayment-alle, owner: augsburg, priority: 10, when: {service: epayment}, route_to: augsburg,
   sla_hours: 24, description: Augsburg beantwortet ePayment für alle.}
- {id: muc-konto-intern, owner: muenchen, priority: 30, when: {topic: konto, audience: internal},
   route_to: muenchen}
""")


def seed(db: Database, text: str = STANDARD) -> None:
    with db.write() as session:
        svc.import_rules(session, Actor.system(), text, source="test", default_city="muenchen")


def stored(db: Database, key: str) -> RoutingRule | None:
    with db.read() as session:
        return session.exec(select(RoutingRule).where(RoutingRule.rule_key == key)).first()


def text_of(response: Any) -> str:
    """The page as a user reads it: tags removed, entities decoded, spaces collapsed."""
    plain = re.sub(r"<[^>]+>", " ", response.text)
    return " ".join(html.unescape(plain).split())


def rule_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "key": "muc-bayernid",
        "owner": "muenchen",
        "priority": "40",
        "service": "bayernid",
        "topic": "",
        "audience": "",
        "text_any": "",
        "route_to": "muenchen",
        "sla_hours": "",
        "description": "München beantwortet BayernID.",
    }
    form.update(overrides)
    return form


def test_agent_reads_rules_but_cannot_change_them(board: Board, db: Database) -> None:
    seed(db)
    agent = board("agent.muc")
    page = agent.get(R)
    assert page.status_code == 200
    words = text_of(page)
    assert "epayment-alle" in words and "muc-konto-intern" in words
    assert "Dienst: ePayment" in words and "Augsburg" in words
    assert "/edit" not in page.text and "Neue Regel" not in words
    assert "nur lesen" in words
    # The rule page is readable, without edit or delete.
    rule = agent.get(f"{R}/rules/muc-konto-intern")
    assert rule.status_code == 200 and "Löschen" not in text_of(rule)
    # Every change is refused, also when the form is posted by hand.
    assert agent.get(f"{R}/rules/muc-konto-intern/edit").status_code == 403
    edit = agent.post(
        f"{R}/rules/muc-konto-intern/edit", rule_form(key="muc-konto-intern", version="1")
    )
    assert edit.status_code == 403
    assert agent.post(f"{R}/rules/new", rule_form()).status_code == 403
    assert agent.post(f"{R}/rules/muc-konto-intern/delete", {"version": "1"}).status_code == 403
    assert agent.post(f"{R}/import", {"yaml": STANDARD}).status_code == 403
    row = stored(db, "muc-konto-intern")
    assert row is not None and row.version == 1 and row.priority == 30
    assert stored(db, "muc-bayernid") is None


def test_city_admin_edits_own_rules_only(board: Board, db: Database) -> None:
    seed(db)
    admin = board("admin.muc")
    overview = admin.get(R)
    assert f'href="{R}/rules/muc-konto-intern/edit"' in overview.text
    assert f'href="{R}/rules/epayment-alle/edit"' not in overview.text
    form = admin.get(f"{R}/rules/muc-konto-intern/edit")
    assert form.status_code == 200 and 'name="version" value="1"' in form.text
    saved = admin.post(
        f"{R}/rules/muc-konto-intern/edit",
        rule_form(
            key="muc-konto-intern",
            service="",
            topic="konto",
            audience="internal",
            priority="25",
            sla_hours="8",
            version="1",
        ),
    )
    assert saved.status_code == 303, saved.text
    row = stored(db, "muc-konto-intern")
    assert row is not None and (row.priority, row.sla_hours, row.version) == (25, 8, 2)
    assert row.conditions == {"topic": ["konto"], "audience": "internal"}
    page = admin.get(saved.headers["location"])
    words = text_of(page)
    assert "gespeichert" in words  # the flash
    assert "Verlauf" in words and "geändert" in words and "Priorität" in words
    # Another city's rule: neither the form nor a hand-made post.
    assert admin.get(f"{R}/rules/epayment-alle/edit").status_code == 403
    foreign = admin.post(
        f"{R}/rules/epayment-alle/edit",
        rule_form(key="epayment-alle", owner="augsburg", route_to="augsburg", version="1"),
    )
    assert foreign.status_code == 403
    assert admin.post(f"{R}/rules/epayment-alle/delete", {"version": "1"}).status_code == 403
    aux = stored(db, "epayment-alle")
    assert aux is not None and aux.version == 1 and aux.priority == 10
    # A new rule always belongs to the admin's own city, whatever the form says.
    created = admin.post(f"{R}/rules/new", rule_form(owner="augsburg"))
    assert created.status_code == 303
    new = stored(db, "muc-bayernid")
    assert new is not None and new.status == "active"
    with db.read() as session:
        owner = svc.city_keys(session)[new.owner_city_id]
    assert owner == "muenchen"
    # The coordinator may change every city's rules.
    coord = board("koordination")
    ok = coord.post(
        f"{R}/rules/epayment-alle/edit",
        rule_form(
            key="epayment-alle",
            owner="augsburg",
            service="epayment",
            route_to="augsburg",
            priority="11",
            version="1",
        ),
    )
    assert ok.status_code == 303
    # Deleting needs the current version.
    gone = admin.post(f"{R}/rules/muc-bayernid/delete", {"version": "1"})
    assert gone.status_code == 303 and stored(db, "muc-bayernid") is None
    history = admin.get(f"{R}/rules/muc-bayernid")
    assert history.status_code == 200 and "gelöscht" in text_of(history)


def test_stale_version_gives_a_clear_conflict_message(board: Board, db: Database) -> None:
    seed(db)
    admin = board("admin.muc")
    coord = board("koordination")
    assert 'name="version" value="1"' in admin.get(f"{R}/rules/muc-konto-intern/edit").text
    first = coord.post(
        f"{R}/rules/muc-konto-intern/edit",
        rule_form(key="muc-konto-intern", service="", topic="konto", priority="5", version="1"),
    )
    assert first.status_code == 303
    late = admin.post(
        f"{R}/rules/muc-konto-intern/edit",
        rule_form(key="muc-konto-intern", service="", topic="konto", priority="99", version="1"),
    )
    assert late.status_code == 409
    words = text_of(late)
    assert "Versionskonflikt" in words
    assert "inzwischen geändert (Ihre Version 1, aktuell Version 2)" in words
    assert 'value="99"' in late.text  # the admin's input is kept
    row = stored(db, "muc-konto-intern")
    assert row is not None and (row.priority, row.version) == (5, 2)


def test_invalid_rule_form_names_the_field_and_saves_nothing(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    bad = admin.post(f"{R}/rules/new", rule_form(key="Muc Regel!", priority="hoch"))
    assert bad.status_code == 422
    words = text_of(bad)
    assert "Der Schlüssel darf nur Kleinbuchstaben" in words
    assert "Die Priorität ist eine ganze Zahl" in words
    unknown = admin.post(f"{R}/rules/new", rule_form(service="raumschiff"))
    assert unknown.status_code == 422
    assert 'id="err-service"' in unknown.text
    assert "unbekannter Dienst „raumschiff“" in text_of(unknown)
    with db.read() as session:
        assert session.exec(select(RoutingRule)).all() == []


def test_dry_run_shows_the_decision_in_words_and_the_trace(board: Board, db: Database) -> None:
    seed(db)
    agent = board("agent.muc")
    page = agent.get(
        f"{R}/dry-run",
        params={
            "run": "1",
            "origin_city": "muenchen",
            "service": "bayernid",
            "audience": "internal",
            "channel": "web",
            "text": "Postfach geht nicht",
        },
    )
    assert page.status_code == 200
    words = text_of(page)
    assert "München — Regel muc-konto-intern" in words
    # epayment-alle is tried first and does not match; the reason is given.
    assert re.search(
        r"epayment-alle passt nicht Dienst BayernID passt nicht zu \[epayment\]", words
    )
    assert "muc-konto-intern passt – entscheidet" in words
    fallback = agent.get(
        f"{R}/dry-run", params={"run": "1", "origin_city": "nuernberg", "service": "bayernid"}
    )
    assert "Nürnberg — Rückfallregel" in text_of(fallback)
    epay = agent.get(f"{R}/dry-run", params={"run": "1", "service": "epayment"})
    assert "Augsburg — Regel epayment-alle: Augsburg beantwortet ePayment für alle." in text_of(
        epay
    )
    assert "Antwortfrist laut Regel: 24 Stunden" in text_of(epay)


def test_delegation_is_decided_only_by_the_receiving_city(board: Board, db: Database) -> None:
    seed(db)
    muc = board("admin.muc")
    for key in ("muc-an-aux", "muc-an-aux-2"):
        r = muc.post(
            f"{R}/rules/new",
            rule_form(key=key, origin_city="muenchen", service="bayernid", route_to="augsburg"),
        )
        assert r.status_code == 303
        assert "gilt erst, wenn diese die Delegation annimmt" in text_of(
            muc.get(r.headers["location"])
        )
        row = stored(db, key)
        assert row is not None and row.status == "proposed"
    assert "vorgeschlagen" in text_of(muc.get(R))
    # Neither the proposing city nor an agent of the receiving city may decide.
    assert muc.post(f"{R}/rules/muc-an-aux/accept").status_code == 403
    agent_aux = board("agent.aux")
    assert agent_aux.post(f"{R}/rules/muc-an-aux/accept").status_code == 403
    assert "Annehmen" not in text_of(agent_aux.get(f"{R}/delegations"))
    row = stored(db, "muc-an-aux")
    assert row is not None and row.status == "proposed"
    # The receiving city's admin sees both and decides.
    aux = board("admin.aux")
    page = aux.get(f"{R}/delegations")
    assert "muc-an-aux" in page.text and f'action="{R}/rules/muc-an-aux/accept"' in page.text
    assert "Delegationen warten auf Ihre Entscheidung" in text_of(aux.get(R))
    accepted = aux.post(f"{R}/rules/muc-an-aux/accept")
    assert accepted.status_code == 303
    assert "angenommen" in text_of(aux.get(accepted.headers["location"]))
    rejected = aux.post(f"{R}/rules/muc-an-aux-2/reject")
    assert rejected.status_code == 303
    states = {k: getattr(stored(db, k), "status", None) for k in ("muc-an-aux", "muc-an-aux-2")}
    assert states == {"muc-an-aux": "active", "muc-an-aux-2": "rejected"}
    again = aux.post(f"{R}/rules/muc-an-aux/reject")
    assert again.status_code == 409 and "schon entschieden" in text_of(again)
    history = text_of(muc.get(f"{R}/rules/muc-an-aux"))
    assert "angenommen" in history and "admin.aux" in history


def test_coverage_and_lint_show_conflicts_and_gaps_in_words(board: Board, db: Database) -> None:
    seed(
        db,
        rules_yaml("""
        - {id: aux-epayment, owner: augsburg, priority: 10,
           when: {origin_city: [augsburg, muenchen], service: epayment, audience: external},
           route_to: augsburg}
        - {id: nue-epayment, owner: nuernberg, priority: 10,
           when: {origin_city: augsburg, service: epayment}, route_to: nuernberg}
        - {id: muc-konto, owner: muenchen, priority: 20,
           when: {origin_city: muenchen, service: bayernid, audience: internal}, route_to: muenchen}
        """),
    )
    agent = board("agent.muc")
    cov = agent.get(f"{R}/coverage")
    assert cov.status_code == 200
    words = text_of(cov)
    assert '<th scope="col">' in cov.text and '<th scope="row">' in cov.text
    assert "Fragen aus München" in words and "Fragen aus Dresden" not in words  # inactive
    assert (
        "Konflikt: auch Regel nue-epayment (gleiche Priorität 10) würde an Nürnberg leiten" in words
    )
    assert "extern: München · Rückfallregel intern: München · muc-konto" in words
    by_topic = agent.get(f"{R}/coverage", params={"by": "topic", "alle": "1"})
    assert by_topic.status_code == 200 and "zahlung" in text_of(by_topic)
    lint_page = agent.get(f"{R}/lint")
    assert lint_page.status_code == 200
    lint_words = text_of(lint_page)
    assert "Überschneidung nue-epayment betrifft auch aux-epayment" in lint_words
    assert "Regel nue-epayment überschneidet sich mit aux-epayment" in lint_words
    assert "Lücke — Für Fragen aus Nürnberg (Zielgruppe extern) gibt es keine Regel" in lint_words


def _ticket(bc: BoardClient, world: World, **facts: Any) -> dict[str, Any]:
    payload = {"subject": "Frage zur Zahlung", "body": "Wie bezahle ich online?", **facts}
    r = bc.client.post("/api/v1/tickets", json=payload, headers=world.headers())
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_replay_reports_moves_and_changes_nothing(board: Board, db: Database, world: World) -> None:
    admin = board("admin.muc")
    moved = _ticket(admin, world, origin_city="muenchen", service="epayment")
    _ticket(admin, world, origin_city="muenchen", service="bayernid")
    assert moved["responsible_city"] == "muenchen"
    page = admin.get(f"{R}/replay")
    assert page.status_code == 200 and "default_city: muenchen" in page.text
    draft = rules_yaml("""
    - {id: epayment-alle, owner: augsburg, when: {service: epayment}, route_to: augsburg}
    """)
    result = admin.post(f"{R}/replay", {"yaml": draft, "days": "30"})
    assert result.status_code == 200, result.text
    words = text_of(result)
    assert "Von 2 Tickets der letzten 30 Tage würden 1 woanders landen." in words
    assert f"{moved['reference']} München Augsburg Regel epayment-alle" in words
    with db.read() as session:
        assert session.exec(select(RoutingRule)).all() == []
        tickets = session.exec(select(Ticket)).all()
        assert {t.responsible_city_id for t in tickets} == {
            next(k for k, v in svc.city_keys(session).items() if v == "muenchen")
        }
    broken = admin.post(
        f"{R}/replay", {"yaml": draft.replace("epayment}", "zahlung-online}"), "days": "30"}
    )
    assert broken.status_code == 422 and "Zeile 4" in text_of(broken)


def test_import_refuses_a_bad_file_whole_with_line_numbers(board: Board, db: Database) -> None:
    seed(db)
    admin = board("admin.muc")
    bad = rules_yaml("""
    - {id: muc-eins, owner: muenchen, when: {service: bayernid}, route_to: muenchen}
    - id: muc-zwei
      owner: muenchen
      when: {service: raumschiff}
      route_to: muenchen
    - {id: muc-drei, owner: muenchen, route_to: muenchen, priority: hoch}
    """)
    r = admin.post(f"{R}/import", {"yaml": bad, "action": "import"})
    assert r.status_code == 422
    words = text_of(r)
    assert "es wurde nichts importiert" in words
    assert "Zeile 7 Regel muc-zwei Feld when.service[0] — unbekannter Dienst „raumschiff“" in words
    assert "Zeile 9" in words and "muss eine ganze Zahl sein" in words
    with db.read() as session:
        keys = sorted(r.rule_key for r in session.exec(select(RoutingRule)).all())
    assert keys == ["epayment-alle", "muc-konto-intern"]
    # A file with another city's rule is refused too.
    foreign = admin.post(
        f"{R}/import",
        {"yaml": rules_yaml("- {id: x, owner: augsburg, route_to: augsburg}"), "action": "import"},
    )
    assert foreign.status_code == 403 and "Regeln anderer Städte" in text_of(foreign)
    # "Nur prüfen" checks without importing; a good file then replaces the city's own rules.
    good = rules_yaml(
        "- {id: muc-neu, owner: muenchen, when: {service: bayernid}, route_to: muenchen}"
    )
    check = admin.post(f"{R}/import", {"yaml": good, "action": "check"})
    assert check.status_code == 200 and "Die Datei ist gültig (1 Regeln)." in text_of(check)
    assert stored(db, "muc-neu") is None
    done = admin.post(
        f"{R}/import",
        {"action": "import", "csrf": admin.csrf},
        files={"file": ("rules.yaml", good.encode(), "application/yaml")},
    )
    assert done.status_code == 303
    assert "1 neu, 0 geändert, 1 gelöscht" in text_of(admin.get(R))
    assert stored(db, "muc-neu") is not None and stored(db, "muc-konto-intern") is None
    assert stored(db, "epayment-alle") is not None
    with db.read() as session:
        kinds = [e.kind for e in session.exec(select(RoutingRuleEvent)).all()]
    assert "imported" in kinds and "deleted" in kinds


def test_export_downloads_yaml(board: Board, db: Database) -> None:
    seed(db)
    agent = board("agent.aux")
    r = agent.get(f"{R}/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/yaml")
    assert "attachment" in r.headers["content-disposition"]
    data = yaml.safe_load(r.text)
    assert [x["id"] for x in data["rules"]] == ["epayment-alle", "muc-konto-intern"]
    assert data["default_city"] == "muenchen"
    own = yaml.safe_load(agent.get(f"{R}/export", params={"city": "augsburg"}).text)
    assert [x["id"] for x in own["rules"]] == ["epayment-alle"]


def test_routing_pages_need_a_login(board: Board) -> None:
    anonymous = board()
    for path in (R, f"{R}/coverage", f"{R}/export"):
        assert anonymous.get(path, follow_redirects=False).status_code == 303
