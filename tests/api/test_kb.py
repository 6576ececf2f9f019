"""The KB API: ask, search, feedback, candidate variants (the learning loop) and gaps."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from hotline.db import Database
from hotline.models import City, KBAsk, KBCandidate, KBEntry
from kb._confidence import shipped_model
from tests.conftest import World


@pytest.fixture
def kb_world(demo_kb_world: World) -> World:
    return demo_kb_world


def _ask(http: TestClient, world: World, question: str, **extra: object) -> dict:
    response = http.post(
        "/api/v1/kb/ask", json={"question": question, **extra}, headers=world.headers()
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_ask_answers_with_the_entry_text(client: TestClient, kb_world: World) -> None:
    out = _ask(
        client, kb_world, "Ich habe mein Passwort für die BayernID vergessen", city="muenchen"
    )
    assert out["decision"] == "answer"
    assert out["entry"]["id"] == "bayernid-passwort-vergessen"
    assert "Passwort" in out["entry"]["answer"]
    assert out["service"] == "bayernid"
    assert out["ask_id"] > 0
    assert out["confidence"] >= shipped_model().threshold and out["reason"] is None


def test_ask_says_how_sure_it_is_and_why_it_holds_back(
    client: TestClient, kb_world: World
) -> None:
    out = _ask(client, kb_world, "Wie beantrage ich Wohngeld?", city="muenchen")
    assert out["decision"] != "answer"
    assert 0.0 <= out["confidence"] < shipped_model().threshold
    assert out["reason"] in {"low_score", "close_second", "unknown_words", "low_confidence"}


def test_ask_is_city_aware_and_never_returns_another_citys_entry(
    client: TestClient, kb_world: World, db: Database
) -> None:
    with db.read() as session:
        city_entries = {
            e.key: e.city_id for e in session.exec(select(KBEntry)).all() if e.city_id is not None
        }
        augsburg = session.exec(select(City).where(City.key == "augsburg")).one().id
    assert city_entries
    for question in ("Hundesteuer anmelden", "Anwohnerparkausweis beantragen", "Termin buchen"):
        out = _ask(client, kb_world, question, city="augsburg")
        ids = [out["entry"]["id"]] if out["entry"] else []
        ids += [a["id"] for a in out["alternatives"]]
        for entry_id in ids:
            if entry_id in city_entries:
                assert city_entries[entry_id] == augsburg, (question, entry_id)


def test_internal_entries_only_for_internal_audience(client: TestClient, kb_world: World) -> None:
    question = "Wie veröffentliche ich ein Formular auf der Formularplattform?"
    external = _ask(client, kb_world, question)
    internal = _ask(client, kb_world, question, audience="internal")
    assert internal["entry"] is not None and internal["entry"]["audience"] == "internal"
    assert external["entry"] is None or external["entry"]["audience"] == "external"


def test_city_token_may_not_ask_as_another_city(client: TestClient, kb_world: World) -> None:
    response = client.post(
        "/api/v1/kb/ask",
        json={"question": "BayernID Passwort", "city": "augsburg"},
        headers=kb_world.headers("muenchen"),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "city_forbidden"


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "   "},
        {"question": "x" * 2001},
        {"question": "a\x00b"},
        {"question": "Frage", "city": "atlantis"},
        {"question": "Frage", "audience": "everyone"},
        {"question": "Frage", "extra": 1},
    ],
)
def test_bad_ask_input_is_a_clear_4xx(client: TestClient, kb_world: World, body: dict) -> None:
    response = client.post("/api/v1/kb/ask", json=body, headers=kb_world.headers())
    assert response.status_code == 422
    assert response.json()["code"]


def test_ask_log_is_redacted_and_hashes_the_client(
    client: TestClient, kb_world: World, db: Database
) -> None:
    out = _ask(
        client,
        kb_world,
        "Meine Mail max.muster@example.org, Tel. 0171 2345678, IBAN DE89370400440532013000",
        client="123456789",
        channel="telegram",
    )
    with db.read() as session:
        row = session.get_one(KBAsk, out["ask_id"])
    assert "max.muster" not in row.question and "2345678" not in row.question
    assert "DE89" not in row.question
    assert "[E-Mail]" in row.question and "[IBAN]" in row.question
    assert row.client_hash and "123456789" not in row.client_hash
    assert row.channel == "telegram"


def test_search_ranks_entries(client: TestClient, kb_world: World) -> None:
    response = client.get(
        "/api/v1/kb/search", params={"q": "Führungszeugnis online"}, headers=kb_world.headers()
    )
    assert response.status_code == 200
    hits = response.json()
    assert hits and hits[0]["entry"]["service"] == "fuehrungszeugnis-online"
    assert hits == sorted(hits, key=lambda h: -h["score"])


def test_choice_makes_a_candidate_and_accepting_it_takes_effect_at_once(
    client: TestClient, kb_world: World, db: Database
) -> None:
    question = "Zugangsdaten fürs Bürgerkonto weg, was tun"
    first = _ask(client, kb_world, question, city="muenchen")
    offered = [first["entry"]["id"], *(a["id"] for a in first["alternatives"])]
    target = (
        next(i for i in offered if i.startswith("bayernid"))
        if any(i.startswith("bayernid") for i in offered)
        else offered[0]
    )
    chosen = client.post(
        f"/api/v1/kb/asks/{first['ask_id']}/choice",
        json={"entry": target},
        headers=kb_world.headers(),
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["id"] == target and chosen.json()["answer"]

    pending = client.get("/api/v1/kb/candidates", headers=kb_world.headers()).json()
    candidate = next(c for c in pending if c["entry"] == target)
    assert candidate["question"] == question and candidate["source"] == "choice"

    # A choice that was not offered is refused.
    bad = client.post(
        f"/api/v1/kb/asks/{first['ask_id']}/choice",
        json={"entry": "hundesteuer-anmelden-nuernberg"},
        headers=kb_world.headers(),
    )
    assert bad.status_code == 422 and bad.json()["code"] == "not_offered"

    # City tokens cannot edit a shared entry.
    denied = client.post(
        f"/api/v1/kb/candidates/{candidate['id']}/accept", headers=kb_world.headers("muenchen")
    )
    assert denied.status_code == 403 and denied.json()["code"] == "not_kb_editor"

    accepted = client.post(
        f"/api/v1/kb/candidates/{candidate['id']}/accept", headers=kb_world.headers()
    )
    assert accepted.status_code == 200, accepted.text
    with db.read() as session:
        row = session.exec(select(KBEntry).where(KBEntry.key == target)).one()
        assert question in row.questions
    again = _ask(client, kb_world, question, city="muenchen")
    assert again["decision"] == "answer" and again["entry"]["id"] == target
    assert again["score"] > first["score"]

    twice = client.post(
        f"/api/v1/kb/candidates/{candidate['id']}/reject", headers=kb_world.headers()
    )
    assert twice.status_code == 409 and twice.json()["code"] == "candidate_decided"


def test_not_helped_withdraws_the_candidate_and_feeds_the_gaps(
    client: TestClient, kb_world: World, db: Database
) -> None:
    out = _ask(client, kb_world, "BayernID Login klappt nicht richtig", city="muenchen")
    entry = out["entry"]["id"]
    assert (
        client.post(
            f"/api/v1/kb/asks/{out['ask_id']}/choice",
            json={"entry": entry},
            headers=kb_world.headers(),
        ).status_code
        == 200
    )
    response = client.post(
        f"/api/v1/kb/asks/{out['ask_id']}/feedback",
        json={"helped": False},
        headers=kb_world.headers(),
    )
    assert response.status_code == 204
    with db.read() as session:
        assert session.get_one(KBAsk, out["ask_id"]).helped is False
        candidate = session.exec(
            select(KBCandidate).where(KBCandidate.ask_id == out["ask_id"])
        ).one()
        assert candidate.status == "rejected"
    gaps = client.get("/api/v1/kb/gaps", headers=kb_world.headers()).json()
    assert any("BayernID Login" in g["question"] for g in gaps)


def test_gaps_group_similar_questions_biggest_first(client: TestClient, kb_world: World) -> None:
    for question in (
        "Wie beantrage ich einen Angelschein online?",
        "Angelschein online beantragen",
        "Kann man den Fischereischein online beantragen?",
        "Fischereischein beantragen online wo",
        "Wo melde ich eine kaputte Straßenlaterne?",
    ):
        assert _ask(client, kb_world, question, city="nuernberg")["decision"] != "answer"
    gaps = client.get(
        "/api/v1/kb/gaps", params={"city": "nuernberg"}, headers=kb_world.headers()
    ).json()
    assert gaps[0]["size"] >= 2
    assert gaps == sorted(gaps, key=lambda g: -g["size"])
    assert sum(g["size"] for g in gaps) == 5
    biggest = " ".join(gaps[0]["examples"])
    assert "Angelschein" in biggest or "Fischereischein" in biggest
    # Another city's token does not see Nürnberg's gaps.
    other = client.get("/api/v1/kb/gaps", headers=kb_world.headers("augsburg")).json()
    assert other == []


def test_staff_link_on_a_ticket_proposes_the_ticket_question(
    client: TestClient, kb_world: World
) -> None:
    ticket = client.post(
        "/api/v1/tickets",
        json={
            "subject": "Online-Zahlung mit Paypal abgebrochen",
            "body": "Was nun?",
            "origin_city": "augsburg",
        },
        headers=kb_world.headers(),
    ).json()
    response = client.post(
        f"/api/v1/tickets/{ticket['reference']}/kb-link",
        json={"entry": "epayment-zahlung-fehlgeschlagen"},
        headers=kb_world.headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "staff" and body["ticket"] == ticket["reference"]
    assert body["question"] == "Online-Zahlung mit Paypal abgebrochen"
    events = client.get(
        f"/api/v1/tickets/{ticket['reference']}/events", headers=kb_world.headers()
    ).json()
    assert any(e["kind"] == "kb_linked" for e in events)


def test_kb_services_lists_services_with_entries(client: TestClient, kb_world: World) -> None:
    services = client.get("/api/v1/kb/services", headers=kb_world.headers()).json()
    keys = {s["key"] for s in services}
    assert {"bayernid", "epayment", "eid"} <= keys
    assert "formularplattform" not in keys  # internal entries only
