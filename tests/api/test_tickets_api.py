"""The ticket API as integrations use it: intake, queue, changes, isolation and bad input."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from hotline.db import Database
from hotline.models import Message, OutboxDelivery, Ticket, TicketEvent
from tests.conftest import World

API = "/api/v1"


def new_ticket(
    client: TestClient, world: World, who: str = "network", **fields: Any
) -> dict[str, Any]:
    payload = {
        "subject": "BayernID gesperrt",
        "body": "Mein Konto ist nach drei Fehlversuchen gesperrt.",
        "audience": "external",
        "channel": "web",
        "origin_city": "muenchen",
        **fields,
    }
    response = client.post(f"{API}/tickets", json=payload, headers=world.headers(who))
    assert response.status_code == 201, response.text
    return response.json()


def counts(db: Database) -> tuple[int, int, int]:
    with db.read() as s:
        return (
            s.exec(select(func.count()).select_from(Ticket)).one(),
            s.exec(select(func.count()).select_from(Message)).one(),
            s.exec(select(func.count()).select_from(TicketEvent)).one(),
        )


def test_create_returns_routed_ticket_with_reference_and_sla(
    client: TestClient, world: World
) -> None:
    ticket = new_ticket(
        client, world, service="bayernid", requester={"name": "Lena", "email": "lena@example.org"}
    )
    assert re.fullmatch(r"HL-\d{4}-\d{6}", ticket["reference"])
    assert ticket["status"] == "new"
    assert ticket["responsible_city"] == "muenchen"
    assert ticket["origin_city"] == "muenchen"
    assert ticket["service"] == "bayernid"
    assert ticket["topic"] == "konto"  # taken from the service when not given
    assert ticket["version"] == 1
    assert ticket["routing"]["via"] == "fallback" and ticket["routing"]["city"] == "muenchen"
    assert ticket["sla"]["first_response_due"] > ticket["created_at"]
    assert ticket["requester"]["email"] == "lena@example.org"
    thread = client.get(f"{API}/tickets/{ticket['id']}/messages", headers=world.headers()).json()
    assert [m["kind"] for m in thread] == ["citizen"]
    events = client.get(f"{API}/tickets/{ticket['id']}/events", headers=world.headers()).json()
    assert [e["kind"] for e in events] == ["created", "routed"]


def test_service_may_be_given_by_leika_key(client: TestClient, world: World) -> None:
    ticket = new_ticket(client, world, service="99050012104000")
    assert ticket["service"] == "gewerbe-online"


def test_without_origin_city_the_default_city_is_responsible(
    client: TestClient, world: World
) -> None:
    ticket = new_ticket(client, world, origin_city=None)
    assert ticket["responsible_city"] == "muenchen"
    assert ticket["routing"]["via"] == "default"


def test_inactive_origin_city_falls_back_to_default(client: TestClient, world: World) -> None:
    ticket = new_ticket(client, world, origin_city="dresden")
    assert ticket["origin_city"] == "dresden"
    assert ticket["responsible_city"] == "muenchen"


def test_get_by_reference(client: TestClient, world: World) -> None:
    ticket = new_ticket(client, world)
    got = client.get(f"{API}/tickets/{ticket['reference'].lower()}", headers=world.headers())
    assert got.status_code == 200 and got.json()["id"] == ticket["id"]


def test_idempotency_key_returns_the_same_ticket(
    client: TestClient, world: World, db: Database
) -> None:
    headers = {**world.headers(), "Idempotency-Key": "intake-42"}
    payload = {"subject": "Zahlung", "body": "Doppelt bezahlt", "origin_city": "augsburg"}
    first = client.post(f"{API}/tickets", json=payload, headers=headers)
    second = client.post(f"{API}/tickets", json=payload, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert counts(db)[0] == 1
    other = client.post(f"{API}/tickets", json={**payload, "body": "anders"}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert counts(db)[0] == 1


def test_idempotency_keys_are_per_client(client: TestClient, world: World, db: Database) -> None:
    payload = {"subject": "Zahlung", "body": "Doppelt bezahlt", "origin_city": "augsburg"}
    a = client.post(
        f"{API}/tickets", json=payload, headers={**world.headers(), "Idempotency-Key": "k"}
    )
    b = client.post(
        f"{API}/tickets",
        json=payload,
        headers={**world.headers("augsburg"), "Idempotency-Key": "k"},
    )
    assert a.json()["id"] != b.json()["id"]
    assert counts(db)[0] == 2


def test_message_idempotency(client: TestClient, world: World, db: Database) -> None:
    ticket = new_ticket(client, world)
    headers = {**world.headers(), "Idempotency-Key": "reply-1"}
    body = {"kind": "reply", "body": "Wir kümmern uns."}
    r1 = client.post(f"{API}/tickets/{ticket['id']}/messages", json=body, headers=headers)
    r2 = client.post(f"{API}/tickets/{ticket['id']}/messages", json=body, headers=headers)
    assert r1.status_code == r2.status_code == 201 and r1.json()["id"] == r2.json()["id"]
    assert counts(db)[1] == 2  # the citizen's first message and one reply


def test_reply_opens_ticket_sets_first_response_and_queues_delivery(
    client: TestClient, world: World, db: Database
) -> None:
    ticket = new_ticket(client, world, channel="telegram", requester={"telegram_chat_id": 4711})
    r = client.post(
        f"{API}/tickets/{ticket['id']}/messages",
        json={"kind": "reply", "body": "Hallo!"},
        headers=world.headers(),
    )
    assert r.status_code == 201
    after = client.get(f"{API}/tickets/{ticket['id']}", headers=world.headers()).json()
    assert after["status"] == "open"
    assert after["sla"]["first_responded_at"] is not None
    assert after["version"] > ticket["version"]
    with db.read() as s:
        deliveries = s.exec(select(OutboxDelivery)).all()
    assert [(d.channel, d.recipient, d.payload["text"]) for d in deliveries] == [
        ("telegram", "4711", "Hallo!")
    ]


def test_internal_note_is_not_delivered(client: TestClient, world: World, db: Database) -> None:
    ticket = new_ticket(client, world, channel="telegram", requester={"telegram_chat_id": 4711})
    client.post(
        f"{API}/tickets/{ticket['id']}/messages",
        json={"kind": "note", "body": "intern"},
        headers=world.headers(),
    )
    with db.read() as s:
        assert s.exec(select(OutboxDelivery)).all() == []
    assert (
        client.get(f"{API}/tickets/{ticket['id']}", headers=world.headers()).json()["status"]
        == "new"
    )


def test_status_flow_and_requester_reopens(client: TestClient, world: World) -> None:
    t = new_ticket(client, world)
    h = world.headers()
    for to in ("open", "waiting", "resolved"):
        r = client.post(
            f"{API}/tickets/{t['id']}/transitions",
            json={"to": to, "version": t["version"]},
            headers=h,
        )
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["status"] == to
    assert t["resolved_at"] is not None
    client.post(
        f"{API}/tickets/{t['id']}/messages",
        json={"kind": "citizen", "body": "Geht doch nicht"},
        headers=h,
    )
    t = client.get(f"{API}/tickets/{t['id']}", headers=h).json()
    assert t["status"] == "reopened"
    events = client.get(f"{API}/tickets/{t['id']}/events", headers=h).json()
    changes = [
        (e["before"]["status"], e["after"]["status"])
        for e in events
        if e["kind"] == "status_changed"
    ]
    assert changes == [
        ("new", "open"),
        ("open", "waiting"),
        ("waiting", "resolved"),
        ("resolved", "reopened"),
    ]


def test_illegal_transition_is_refused_and_changes_nothing(
    client: TestClient, world: World, db: Database
) -> None:
    t = new_ticket(client, world)
    before = counts(db)
    r = client.post(
        f"{API}/tickets/{t['id']}/transitions",
        json={"to": "reopened", "version": 1},
        headers=world.headers(),
    )
    assert r.status_code == 409
    body = r.json()
    assert (
        body["code"] == "invalid_transition"
        and "new" in body["detail"]
        and "reopened" in body["detail"]
    )
    assert counts(db) == before
    assert client.get(f"{API}/tickets/{t['id']}", headers=world.headers()).json()["version"] == 1


def test_closed_ticket_is_final(client: TestClient, world: World) -> None:
    t = new_ticket(client, world)
    h = world.headers()
    t = client.post(
        f"{API}/tickets/{t['id']}/transitions", json={"to": "closed", "version": 1}, headers=h
    ).json()
    r = client.post(
        f"{API}/tickets/{t['id']}/transitions",
        json={"to": "open", "version": t["version"]},
        headers=h,
    )
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
    r = client.post(
        f"{API}/tickets/{t['id']}/messages", json={"kind": "citizen", "body": "Hallo?"}, headers=h
    )
    assert r.status_code == 409 and r.json()["code"] == "ticket_closed"


def test_stale_version_gets_409_and_loses_nothing(
    client: TestClient, world: World, db: Database
) -> None:
    t = new_ticket(client, world)
    h = world.headers()
    win = client.post(
        f"{API}/tickets/{t['id']}/transitions", json={"to": "open", "version": 1}, headers=h
    )
    lose = client.post(
        f"{API}/tickets/{t['id']}/transitions", json={"to": "resolved", "version": 1}, headers=h
    )
    assert win.status_code == 200
    assert lose.status_code == 409 and lose.json()["code"] == "version_conflict"
    assert lose.json()["current_version"] == 2
    final = client.get(f"{API}/tickets/{t['id']}", headers=h).json()
    assert final["status"] == "open" and final["version"] == 2


def test_assign_and_unassign(client: TestClient, world: World) -> None:
    t = new_ticket(client, world)
    h = world.headers("muenchen")
    r = client.post(f"{API}/tickets/{t['id']}/assign", json={"assignee": "agent.muc"}, headers=h)
    assert r.status_code == 200 and r.json()["assignee"] == "agent.muc"
    wrong = client.post(
        f"{API}/tickets/{t['id']}/assign", json={"assignee": "agent.aux"}, headers=h
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "assignee_wrong_city"
    stale = client.post(
        f"{API}/tickets/{t['id']}/assign", json={"assignee": "agent2.muc", "version": 1}, headers=h
    )
    assert stale.status_code == 409
    r = client.post(f"{API}/tickets/{t['id']}/assign", json={"assignee": None}, headers=h)
    assert r.json()["assignee"] is None
    events = client.get(f"{API}/tickets/{t['id']}/events", headers=h).json()
    assigned = [
        (e["before"]["assignee"], e["after"]["assignee"]) for e in events if e["kind"] == "assigned"
    ]
    assert assigned == [(None, "agent.muc"), ("agent.muc", None)]


def test_transfer_moves_ticket_to_other_city_queue(client: TestClient, world: World) -> None:
    t = new_ticket(client, world, who="muenchen")
    muc, aux = world.headers("muenchen"), world.headers("augsburg")
    client.post(f"{API}/tickets/{t['id']}/assign", json={"assignee": "agent.muc"}, headers=muc)
    t = client.get(f"{API}/tickets/{t['id']}", headers=muc).json()
    missing = client.post(
        f"{API}/tickets/{t['id']}/transfer",
        json={"to_city": "augsburg", "version": t["version"]},
        headers=muc,
    )
    assert missing.status_code == 422
    r = client.post(
        f"{API}/tickets/{t['id']}/transfer",
        json={
            "to_city": "augsburg",
            "reason": "ePayment betreut Augsburg",
            "version": t["version"],
        },
        headers=muc,
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["responsible_city"] == "augsburg" and moved["assignee"] is None
    assert moved["routing"]["city"] == "muenchen"  # the original decision stays
    assert client.get(f"{API}/tickets/{t['id']}", headers=muc).status_code == 404
    assert client.get(f"{API}/tickets/{t['id']}", headers=aux).status_code == 200
    events = client.get(f"{API}/tickets/{t['id']}/events", headers=aux).json()
    transfer = next(e for e in events if e["kind"] == "transferred")
    assert (
        transfer["before"]["city"] == "muenchen"
        and transfer["after"]["reason"] == "ePayment betreut Augsburg"
    )
    same = client.post(
        f"{API}/tickets/{t['id']}/transfer",
        json={"to_city": "augsburg", "reason": "nochmal", "version": moved["version"]},
        headers=aux,
    )
    assert same.status_code == 422 and same.json()["code"] == "same_city"
    inactive = client.post(
        f"{API}/tickets/{t['id']}/transfer",
        json={"to_city": "dresden", "reason": "Test", "version": moved["version"]},
        headers=aux,
    )
    assert inactive.status_code == 422 and inactive.json()["code"] == "inactive_city"


def test_merge_duplicate(client: TestClient, world: World) -> None:
    h = world.headers()
    first = new_ticket(client, world)
    dup = new_ticket(client, world, body="Nochmal: Konto gesperrt")
    r = client.post(
        f"{API}/tickets/{dup['id']}/merge",
        json={"into": first["reference"], "version": dup["version"]},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == first["id"]
    closed = client.get(f"{API}/tickets/{dup['id']}", headers=h).json()
    assert closed["status"] == "closed" and closed["merged_into"] == first["reference"]
    # A later requester message on the duplicate lands on the surviving ticket.
    client.post(
        f"{API}/tickets/{dup['id']}/messages",
        json={"kind": "citizen", "body": "Noch da?"},
        headers=h,
    )
    bodies = [
        m["body"] for m in client.get(f"{API}/tickets/{first['id']}/messages", headers=h).json()
    ]
    assert "Noch da?" in bodies
    self_merge = client.post(
        f"{API}/tickets/{first['id']}/merge",
        json={"into": str(first["id"]), "version": 3},
        headers=h,
    )
    assert self_merge.status_code in (409, 422)


def test_list_filters_and_keyset_pagination(client: TestClient, world: World) -> None:
    h = world.headers()
    made = [
        new_ticket(
            client, world, subject=f"Frage {i}", origin_city="augsburg" if i % 2 else "muenchen"
        )
        for i in range(7)
    ]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/tickets", params=params, headers=h).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted((t["id"] for t in made), reverse=True)
    aux = client.get(f"{API}/tickets", params={"city": "augsburg"}, headers=h).json()["items"]
    assert {t["responsible_city"] for t in aux} == {"augsburg"} and len(aux) == 3
    found = client.get(f"{API}/tickets", params={"text": "frage 4"}, headers=h).json()["items"]
    assert [t["subject"] for t in found] == ["Frage 4"]
    by_body = client.get(f"{API}/tickets", params={"text": "fehlversuchen"}, headers=h).json()[
        "items"
    ]
    assert len(by_body) == 7
    none = client.get(f"{API}/tickets", params={"status": "closed"}, headers=h).json()["items"]
    assert none == []
    unassigned = client.get(f"{API}/tickets", params={"assignee": "none"}, headers=h).json()[
        "items"
    ]
    assert len(unassigned) == 7
    assert client.get(f"{API}/tickets", params={"cursor": "%%%"}, headers=h).status_code == 422


def test_city_token_sees_and_changes_only_its_city(
    client: TestClient, world: World, db: Database
) -> None:
    theirs = new_ticket(client, world, origin_city="augsburg")
    mine = new_ticket(client, world, origin_city="muenchen")
    muc = world.headers("muenchen")
    listed = client.get(f"{API}/tickets", headers=muc).json()["items"]
    assert [t["id"] for t in listed] == [mine["id"]]
    assert (
        client.get(f"{API}/tickets", params={"city": "augsburg"}, headers=muc).json()["items"] == []
    )
    before = counts(db)
    for method, path, body in (
        ("get", f"/tickets/{theirs['id']}", None),
        ("get", f"/tickets/{theirs['reference']}", None),
        ("get", f"/tickets/{theirs['id']}/messages", None),
        ("get", f"/tickets/{theirs['id']}/events", None),
        ("post", f"/tickets/{theirs['id']}/messages", {"kind": "note", "body": "x"}),
        ("post", f"/tickets/{theirs['id']}/transitions", {"to": "open", "version": 1}),
        ("post", f"/tickets/{theirs['id']}/assign", {"assignee": "agent.muc"}),
        (
            "post",
            f"/tickets/{theirs['id']}/transfer",
            {"to_city": "muenchen", "reason": "meins", "version": 1},
        ),
        ("post", f"/tickets/{theirs['id']}/merge", {"into": str(mine["id"]), "version": 1}),
        ("post", f"/tickets/{mine['id']}/merge", {"into": str(theirs["id"]), "version": 1}),
    ):
        r = client.request(method, API + path, json=body, headers=muc)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.json()["code"] == "ticket_not_found"
    assert counts(db) == before


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_bad_token_is_401(
    client: TestClient, world: World, headers: dict[str, str], db: Database
) -> None:
    for method, path in (
        ("get", "/tickets"),
        ("post", "/tickets"),
        ("get", "/cities"),
        ("get", "/services"),
    ):
        r = client.request(method, API + path, json={"subject": "x", "body": "y"}, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["code"] in ("missing_token", "invalid_token")
    assert counts(db)[0] == 0


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"body": "Hallo"}, "validation_error", "subject"),
        ({"subject": "Hallo"}, "validation_error", "body"),
        ({"subject": "   ", "body": "x"}, "validation_error", "subject"),
        ({"subject": "x", "body": "  \n "}, "validation_error", "body"),
        ({"subject": 42, "body": "x"}, "validation_error", "subject"),
        ({"subject": "x", "body": "y", "audience": "everyone"}, "validation_error", "audience"),
        ({"subject": "x", "body": "y", "channel": "fax"}, "validation_error", "channel"),
        ({"subject": "x", "body": "y", "origin_city": "berlin"}, "unknown_city", "origin_city"),
        ({"subject": "x", "body": "y", "service": "raumschiff"}, "unknown_service", "service"),
        ({"subject": "x", "body": "nul \x00 byte"}, "validation_error", "body"),
        (
            {"subject": "x", "body": "y", "requester": {"email": "not-an-email"}},
            "validation_error",
            "email",
        ),
        ({"subject": "x", "body": "y", "orgin_city": "muenchen"}, "validation_error", "orgin_city"),
        ({"subject": "x" * 301, "body": "y"}, "validation_error", "subject"),
    ],
)
def test_bad_ticket_input_is_422_and_stores_nothing(
    client: TestClient, world: World, db: Database, payload: dict[str, Any], code: str, field: str
) -> None:
    r = client.post(f"{API}/tickets", json=payload, headers=world.headers())
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == code and field in body["detail"]
    assert counts(db) == (0, 0, 0)


def test_malformed_json_and_wrong_shapes(client: TestClient, world: World, db: Database) -> None:
    h = {**world.headers(), "content-type": "application/json"}
    r = client.post(f"{API}/tickets", content=b'{"subject": "x", ', headers=h)
    assert r.status_code == 422 and r.json()["code"] == "invalid_json"
    r = client.post(f"{API}/tickets", content=b"[1, 2, 3]", headers=h)
    assert r.status_code == 422
    deep = b"[" * 100_000 + b"]" * 100_000
    r = client.post(f"{API}/tickets", content=deep, headers=h)
    assert 400 <= r.status_code < 500
    t = new_ticket(client, world)
    r = client.post(
        f"{API}/tickets/{t['id']}/transitions", json={"to": "open", "version": "eins"}, headers=h
    )
    assert r.status_code == 422
    r = client.post(
        f"{API}/tickets/{t['id']}/messages", json={"kind": "bot", "body": "x"}, headers=h
    )
    assert r.status_code == 422
    assert counts(db)[0] == 1


def test_oversized_body_is_413(client: TestClient, world: World, db: Database) -> None:
    big = {"subject": "x", "body": "a" * 1_100_000}
    r = client.post(f"{API}/tickets", json=big, headers=world.headers())
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert counts(db)[0] == 0


def test_unknown_ticket_and_route(client: TestClient, world: World) -> None:
    assert (
        client.get(f"{API}/tickets/999999", headers=world.headers()).json()["code"]
        == "ticket_not_found"
    )
    r = client.get(f"{API}/nothing-here", headers=world.headers())
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "ident", ["99999999999999999999999", "2147483648", "١٢٣", "HL-9999-999999", "%00"]
)
def test_out_of_range_or_odd_ticket_ids_are_404(
    client: TestClient, world: World, ident: str
) -> None:
    """Numbers beyond the id column's range and non-ASCII digits name no ticket (no 500)."""
    r = client.get(f"{API}/tickets/{ident}", headers=world.headers())
    assert r.status_code in ((400,) if ident == "%00" else (404,)), r.text


def test_nul_in_query_or_unvalidated_body_fields_is_a_4xx(client: TestClient, world: World) -> None:
    h = world.headers()
    assert client.get(f"{API}/tickets", params={"text": "a\x00b"}, headers=h).status_code == 400
    assert client.get(f"{API}/tickets", params={"assignee": "x\x00"}, headers=h).status_code == 400
    r = client.post(
        f"{API}/routing/rules",
        json={"id": "x", "owner": "mue\x00nchen", "route_to": "muenchen"},
        headers=h,
    )
    assert 400 <= r.status_code < 500, r.text


def test_cursor_out_of_range_is_422(client: TestClient, world: World) -> None:
    huge = base64.urlsafe_b64encode(b'{"id": 99999999999999999999}').decode().rstrip("=")
    r = client.get(f"{API}/tickets", params={"cursor": huge}, headers=world.headers())
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"
