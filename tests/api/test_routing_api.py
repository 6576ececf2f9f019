"""Routing with stored rules: the semantics on real tickets, delegations, permissions and tools."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from hotline.app import create_app
from hotline.db import Database
from hotline.models import RoutingRule
from hotline.settings import Settings
from tests.conftest import World

API = "/api/v1"


def yaml_rules(body: str, *, fallback: str = "origin_city", default_city: str = "muenchen") -> str:
    return (
        f"fallback: {fallback}\ndefault_city: {default_city}\nrules:\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        + "\n"
    )


def import_rules(client: TestClient, world: World, text: str, who: str = "network") -> Any:
    return client.post(
        f"{API}/routing/import",
        content=text.encode(),
        headers={**world.headers(who), "Content-Type": "application/yaml"},
    )


def ticket(client: TestClient, world: World, **facts: Any) -> dict[str, Any]:
    payload = {"subject": "Frage", "body": facts.pop("body", "Ich habe eine Frage."), **facts}
    r = client.post(f"{API}/tickets", json=payload, headers=world.headers())
    assert r.status_code == 201, r.text
    return r.json()


def test_first_matching_rule_by_priority_then_position(client: TestClient, world: World) -> None:
    r = import_rules(
        client,
        world,
        yaml_rules("""
        - {id: later-in-file, owner: augsburg, priority: 50, when: {service: epayment}, route_to: augsburg}
        - {id: same-prio-second, owner: nuernberg, priority: 50, when: {service: epayment}, route_to: nuernberg}
        - {id: high-prio, owner: nuernberg, priority: 10, when: {service: epayment, audience: internal},
           route_to: nuernberg}
    """),
    )
    assert r.status_code == 200, r.text
    t = ticket(client, world, origin_city="muenchen", service="epayment")
    assert t["responsible_city"] == "augsburg"
    routing = t["routing"]
    assert (routing["rule"], routing["rule_version"], routing["via"]) == (
        "later-in-file",
        1,
        "rule",
    )
    tried = [(s.get("rule"), s["result"]) for s in routing["trace"] if s.get("rule")]
    assert tried == [("high-prio", "no_match"), ("later-in-file", "matched")]
    internal = ticket(
        client, world, origin_city="muenchen", service="epayment", audience="internal"
    )
    assert (
        internal["responsible_city"] == "nuernberg" and internal["routing"]["rule"] == "high-prio"
    )


def test_service_by_leika_key_in_rules_and_facts(client: TestClient, world: World) -> None:
    import_rules(
        client,
        world,
        yaml_rules("""
        - {id: gewerbe, owner: nuernberg, when: {service: '99050012104000'}, route_to: nuernberg}
    """),
    )
    assert (
        ticket(client, world, origin_city="augsburg", service="gewerbe-online")["responsible_city"]
        == "nuernberg"
    )
    assert (
        ticket(client, world, origin_city="augsburg", service="99050012104000")["responsible_city"]
        == "nuernberg"
    )
    dry = client.post(
        f"{API}/routing/dry-run",
        json={"origin_city": "augsburg", "service": "99050012104000"},
        headers=world.headers(),
    ).json()
    assert dry["rule"] == "gewerbe"


def test_dynamic_targets_do_not_match_when_the_fact_is_unknown(
    client: TestClient, world: World
) -> None:
    import_rules(
        client,
        world,
        yaml_rules(
            """
        - {id: to-origin, owner: muenchen, priority: 1, when: {topic: [konto]}, route_to: origin_city}
        - {id: to-owner, owner: muenchen, priority: 2, when: {topic: [konto, zahlung]}, route_to: service_owner}
        - {id: catch, owner: nuernberg, priority: 3, when: {topic: [konto, zahlung]}, route_to: nuernberg}
    """,
            default_city="augsburg",
        ),
    )
    # No origin city: to-origin cannot decide; bayernid has no owner: to-owner cannot either.
    t = ticket(client, world, service="bayernid")
    assert t["responsible_city"] == "nuernberg" and t["routing"]["rule"] == "catch"
    reasons = {s["rule"]: s for s in t["routing"]["trace"] if s.get("rule")}
    assert (
        reasons["to-origin"]["result"] != "matched" and reasons["to-owner"]["result"] != "matched"
    )
    # epayment has an owner (Augsburg): service_owner decides.
    assert ticket(client, world, service="epayment")["routing"]["rule"] == "to-owner"
    assert (
        ticket(client, world, origin_city="nuernberg", service="bayernid")["routing"]["rule"]
        == "to-origin"
    )


def test_proposed_rejected_and_inactive_targets_are_skipped_with_reason(
    client: TestClient, world: World
) -> None:
    import_rules(
        client,
        world,
        yaml_rules("""
        - {id: prop, owner: muenchen, priority: 1, status: proposed, when: {service: bayernid}, route_to: augsburg}
        - {id: rej, owner: muenchen, priority: 2, status: rejected, when: {service: bayernid}, route_to: nuernberg}
        - {id: dead, owner: muenchen, priority: 3, when: {service: bayernid}, route_to: dresden}
    """),
    )
    t = ticket(client, world, origin_city="muenchen", service="bayernid")
    assert t["responsible_city"] == "muenchen" and t["routing"]["via"] == "fallback"
    steps = {s["rule"]: s for s in t["routing"]["trace"] if s.get("rule")}
    assert steps["prop"]["result"] == "skipped" and steps["prop"]["reason"] == "proposed"
    assert steps["rej"]["result"] == "skipped" and steps["rej"]["reason"] == "rejected"
    assert steps["dead"]["result"] == "skipped" and "inactive" in steps["dead"]["reason"]


def test_fallback_and_default(client: TestClient, world: World) -> None:
    import_rules(
        client,
        world,
        yaml_rules("[]", default_city="nuernberg").replace("rules:\n  []", "rules: []"),
    )
    assert ticket(client, world, origin_city="augsburg")["routing"]["via"] == "fallback"
    assert ticket(client, world, origin_city="augsburg")["responsible_city"] == "augsburg"
    unknown = ticket(client, world)
    assert (unknown["responsible_city"], unknown["routing"]["via"], unknown["routing"]["rule"]) == (
        "nuernberg",
        "default",
        None,
    )
    inactive = ticket(client, world, origin_city="dresden")
    assert (inactive["responsible_city"], inactive["routing"]["via"]) == ("nuernberg", "default")
    import_rules(client, world, "fallback: augsburg\ndefault_city: nuernberg\nrules: []\n")
    named = ticket(client, world, origin_city="muenchen")
    assert (named["responsible_city"], named["routing"]["via"]) == ("augsburg", "fallback")


def test_rule_sla_sets_the_first_response_due_time(client: TestClient, world: World) -> None:
    import_rules(
        client,
        world,
        yaml_rules("""
        - {id: fast, owner: augsburg, when: {service: epayment}, route_to: augsburg, sla_hours: 2}
    """),
    )
    fast = ticket(client, world, origin_city="augsburg", service="epayment")
    slow = ticket(client, world, origin_city="augsburg", service="bayernid")
    assert fast["routing"]["sla_hours"] == 2
    assert fast["sla"]["first_response_due"] < slow["sla"]["first_response_due"]


def test_delegation_stays_proposed_until_the_receiving_city_accepts(
    client: TestClient, world: World
) -> None:
    rule = {
        "id": "muc-eid-an-aux",
        "owner": "muenchen",
        "when": {"origin_city": ["muenchen"], "service": ["bayernid"]},
        "route_to": "augsburg",
        "status": "active",
        "description": "München gibt BayernID-Fragen ab",
    }
    created = client.post(f"{API}/routing/rules", json=rule, headers=world.headers("muenchen"))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "proposed" and created.json()["delegation_to"] == "augsburg"
    assert (
        ticket(client, world, origin_city="muenchen", service="bayernid")["responsible_city"]
        == "muenchen"
    )
    # Neither the delegating city nor a third city may accept it.
    for who in ("muenchen", "nuernberg"):
        r = client.post(f"{API}/routing/rules/muc-eid-an-aux/accept", headers=world.headers(who))
        assert r.status_code == 403 and r.json()["code"] == "not_rule_admin"
    accepted = client.post(
        f"{API}/routing/rules/muc-eid-an-aux/accept", headers=world.headers("augsburg")
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "active"
    assert accepted.json()["version"] == 2
    t = ticket(client, world, origin_city="muenchen", service="bayernid")
    assert t["responsible_city"] == "augsburg"
    assert (t["routing"]["rule"], t["routing"]["rule_version"]) == ("muc-eid-an-aux", 2)
    again = client.post(
        f"{API}/routing/rules/muc-eid-an-aux/reject", headers=world.headers("augsburg")
    )
    assert again.status_code == 409 and again.json()["code"] == "not_proposed"
    # Changing what an accepted delegation covers needs a new acceptance.
    changed = {
        **rule,
        "when": {"origin_city": ["muenchen"], "service": ["bayernid", "epayment"]},
        "version": 2,
    }
    r = client.put(
        f"{API}/routing/rules/muc-eid-an-aux", json=changed, headers=world.headers("muenchen")
    )
    assert r.status_code == 200 and r.json()["status"] == "proposed" and r.json()["version"] == 3
    rejected = client.post(
        f"{API}/routing/rules/muc-eid-an-aux/reject", headers=world.headers()
    )  # coordinator
    assert rejected.json()["status"] == "rejected"
    history = client.get(
        f"{API}/routing/rules/muc-eid-an-aux/history", headers=world.headers("nuernberg")
    ).json()
    assert [(e["kind"], e["version"]) for e in history] == [
        ("created", 1),
        ("accepted", 2),
        ("updated", 3),
        ("rejected", 4),
    ]
    assert history[1]["actor"] == "token:test augsburg"


def test_city_admins_edit_only_their_own_rules_and_everyone_reads(
    client: TestClient, world: World, db: Database
) -> None:
    import_rules(
        client,
        world,
        yaml_rules("""
        - {id: aux-own, owner: augsburg, when: {service: epayment}, route_to: augsburg}
    """),
    )
    body = {
        "id": "aux-own",
        "owner": "augsburg",
        "when": {"service": ["epayment"]},
        "route_to": "augsburg",
        "priority": 5,
        "version": 1,
    }
    r = client.put(f"{API}/routing/rules/aux-own", json=body, headers=world.headers("muenchen"))
    assert r.status_code == 403
    r = client.post(
        f"{API}/routing/rules",
        json={**body, "id": "fake", "version": None},
        headers=world.headers("muenchen"),
    )
    assert r.status_code in (403, 422)
    assert (
        client.delete(
            f"{API}/routing/rules/aux-own", params={"version": 1}, headers=world.headers("muenchen")
        ).status_code
        == 403
    )
    listed = client.get(f"{API}/routing/rules", headers=world.headers("nuernberg")).json()
    assert [x["id"] for x in listed] == ["aux-own"]
    ok = client.put(f"{API}/routing/rules/aux-own", json=body, headers=world.headers("augsburg"))
    assert ok.status_code == 200 and ok.json()["priority"] == 5 and ok.json()["version"] == 2
    stale = client.put(f"{API}/routing/rules/aux-own", json=body, headers=world.headers("augsburg"))
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    assert (
        client.delete(
            f"{API}/routing/rules/aux-own", params={"version": 2}, headers=world.headers("augsburg")
        ).status_code
        == 204
    )
    with db.read() as s:
        assert s.exec(select(func.count()).select_from(RoutingRule)).one() == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("- {id: a, owner: berlin, route_to: muenchen}", "berlin"),
        (
            "- {id: a, owner: muenchen, route_to: muenchen, when: {service: raumschiff}}",
            "raumschiff",
        ),
        (
            "- {id: a, owner: muenchen, route_to: muenchen}\n- {id: a, owner: muenchen, route_to: augsburg}",
            "duplicate",
        ),
        ("- {id: a, owner: muenchen, route_to: muenchen, priority: hoch}", "priority"),
        ("- {id: a, owner: muenchen, route_to: muenchen, when: {audience: alle}}", "audience"),
        ("- {id: a, owner: muenchen, route_to: hamburg}", "hamburg"),
        ("- {id: a, owner: muenchen, route_to: muenchen\n", "line"),
        ("- {id: a, owner: muenchen, route_to: muenchen, priority: 99999999999999}", "priority"),
    ],
)
def test_invalid_rule_file_is_refused_whole(
    client: TestClient, world: World, db: Database, body: str, needle: str
) -> None:
    import_rules(client, world, yaml_rules("- {id: keep, owner: muenchen, route_to: muenchen}"))
    bad = yaml_rules("- {id: fine, owner: augsburg, route_to: augsburg}\n" + body)
    r = import_rules(client, world, bad)
    assert r.status_code == 422, r.text
    assert (
        r.json()["code"] == "invalid_rules"
        and needle in r.json()["detail"].lower() + str(r.json().get("problems")).lower()
    )
    checked = client.post(f"{API}/routing/check", json={"yaml": bad}, headers=world.headers())
    assert checked.status_code == 422
    with db.read() as s:
        assert [r.rule_key for r in s.exec(select(RoutingRule)).all()] == ["keep"]


def test_city_admin_import_touches_only_own_rules(client: TestClient, world: World) -> None:
    import_rules(
        client,
        world,
        yaml_rules("""
        - {id: muc-1, owner: muenchen, when: {service: bayernid}, route_to: muenchen}
        - {id: aux-1, owner: augsburg, when: {service: epayment}, route_to: augsburg}
    """),
    )
    foreign = import_rules(
        client,
        world,
        yaml_rules("- {id: aux-2, owner: augsburg, route_to: augsburg}"),
        who="muenchen",
    )
    assert foreign.status_code == 403
    own = import_rules(
        client,
        world,
        yaml_rules("""
        - {id: muc-2, owner: muenchen, when: {topic: [konto]}, route_to: muenchen}
        - {id: muc-deleg, owner: muenchen, when: {origin_city: [muenchen], service: epayment}, route_to: nuernberg}
    """),
        who="muenchen",
    )
    assert own.status_code == 200 and own.json() == {
        "created": 2,
        "updated": 0,
        "deleted": 1,
        "proposed": ["muc-deleg"],
    }
    ids = [r["id"] for r in client.get(f"{API}/routing/rules", headers=world.headers()).json()]
    assert sorted(ids) == ["aux-1", "muc-2", "muc-deleg"]


def test_tools_dry_run_coverage_lint_replay_export(client: TestClient, world: World) -> None:
    rules = yaml_rules("""
        - {id: epay, owner: augsburg, priority: 10, when: {service: epayment}, route_to: augsburg}
        - {id: never, owner: augsburg, priority: 20, when: {service: epayment, audience: external}, route_to: augsburg}
        - {id: prop, owner: muenchen, priority: 30, status: proposed, when: {origin_city: [muenchen]},
           route_to: nuernberg}
    """)
    assert import_rules(client, world, rules).status_code == 200
    h = world.headers("nuernberg")
    dry = client.post(
        f"{API}/routing/dry-run",
        json={"origin_city": "nuernberg", "service": "epayment"},
        headers=h,
    )
    assert dry.json()["city"] == "augsburg" and dry.json()["rule"] == "epay"
    cov = client.get(f"{API}/routing/coverage", headers=h).json()
    row = next(
        r
        for r in cov
        if r["origin_city"] == "muenchen"
        and r["service"] == "epayment"
        and r["audience"] == "external"
    )
    assert row["city"] == "augsburg" and row["rule"] == "epay"
    csv = client.get(f"{API}/routing/coverage", params={"format": "csv", "by": "topic"}, headers=h)
    assert (
        csv.headers["content-type"].startswith("text/csv")
        and "origin_city" in csv.text.splitlines()[0]
    )
    kinds = {(w["kind"], w["rule"]) for w in client.get(f"{API}/routing/lint", headers=h).json()}
    assert ("shadowed", "never") in kinds and ("proposed_delegation", "prop") in kinds
    exported = client.get(f"{API}/routing/export", headers=h)
    assert (
        exported.headers["content-type"].startswith("application/yaml")
        and "id: epay" in exported.text
    )
    # Tickets made under the current rules; a draft that sends ePayment to Nürnberg moves them.
    made = ticket(client, world, origin_city="muenchen", service="epayment")
    draft = exported.text.replace("route_to: augsburg", "route_to: nuernberg")
    replayed = client.post(
        f"{API}/routing/replay", params={"days": 7}, json={"yaml": draft}, headers=world.headers()
    )
    moves = replayed.json()["moves"]
    assert [(m["ref"], m["from_city"], m["to_city"], m["rule"]) for m in moves] == [
        (made["reference"], "augsburg", "nuernberg", "epay")
    ]
    # A city token only replays the tickets it may see.
    assert (
        client.post(f"{API}/routing/replay", json={"yaml": draft}, headers=h).json()["tickets"] == 0
    )


def test_a_rule_change_reaches_every_app_instance(
    settings: Settings, db: Database, world: World
) -> None:
    """Two app instances (as two processes would) share the rules through the database."""
    with TestClient(create_app(settings, db)) as a, TestClient(create_app(settings, db)) as b:
        assert (
            ticket(b, world, origin_city="muenchen", service="epayment")["responsible_city"]
            == "muenchen"
        )
        import_rules(
            a,
            world,
            yaml_rules(
                "- {id: epay, owner: augsburg, when: {service: epayment}, route_to: augsburg}"
            ),
        )
        assert (
            ticket(b, world, origin_city="muenchen", service="epayment")["responsible_city"]
            == "augsburg"
        )
