"""The data-protection commands: `hotline retention run` and `hotline requester export|delete`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from hotline.cli import app
from hotline.db import Database, utcnow
from hotline.models import Requester, Ticket, TicketEvent, TicketStatus
from hotline.schemas import RequesterIn, TicketCreate
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.services.retention import ANONYMISED_SUBJECT
from hotline.services.rules import RouterCache

pytestmark = pytest.mark.db

runner = CliRunner()
CHAT = "4711"
NAME = "Erika Muster"


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("HOTLINE_ENV", "test")
    monkeypatch.chdir(tmp_path)
    return db_url


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _ticket(db: Database, chat: str = CHAT, name: str = NAME, closed_days_ago: int = 0) -> str:
    actor = Actor(label="kanal:test", city_id=None, network=True)
    with db.write() as s:
        t = svc.create_ticket(
            s,
            actor,
            TicketCreate(
                subject=f"Frage von {name}",
                body="Mein Konto ist gesperrt.",
                channel="telegram",
                origin_city="muenchen",
                requester=RequesterIn(telegram_chat_id=chat, name=name),
            ),
            default_city="muenchen",
            sla=svc.SLAPolicy(24, 120),
            router_cache=RouterCache(),
        )
        if closed_days_ago:
            svc.change_status(s, actor, t.id or 0, to=TicketStatus.closed, version=t.version)
            t.closed_at = utcnow() - timedelta(days=closed_days_ago)
            s.add(t)
        return t.reference


def _subject(db: Database, ref: str) -> str:
    with db.read() as s:
        return s.exec(select(Ticket).where(Ticket.reference == ref)).one().subject


@pytest.mark.usefixtures("env", "world")
def test_export_writes_valid_json(db: Database, tmp_path: Path) -> None:
    ref = _ticket(db)
    _ticket(db, chat="999", name="Max Anderer")
    out = tmp_path / "export.json"
    code, stdout, err = invoke("requester", "export", "--telegram", CHAT, "--out", str(out))
    assert code == 0, err
    assert "1 Tickets" in stdout and NAME not in stdout
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [t["reference"] for t in doc["tickets"]] == [ref]
    assert doc["requesters"][0]["name"] == NAME
    assert "Max Anderer" not in out.read_text(encoding="utf-8")
    assert out.stat().st_mode & 0o077 == 0  # personal data: the operator's eyes only
    code, stdout, _ = invoke("requester", "export", "--telegram", CHAT)
    assert code == 0 and json.loads(stdout)["tickets"][0]["reference"] == ref
    with db.read() as s:
        kinds = s.exec(select(TicketEvent.actor).where(TicketEvent.kind == "privacy_export")).all()
        assert kinds == ["cli", "cli"]


BAD_SELECTORS: list[tuple[list[str], str]] = [
    (["--telegram", "123456"], "No data is held for this Telegram chat"),
    (["--email", "niemand@example.org"], "No data is held for this e-mail address"),
    ([], "exactly one"),
    (["--telegram", CHAT, "--web", "websession-1234"], "exactly one"),
    (["--telegram", "abc"], "Telegram chat id is a number"),
]


@pytest.mark.usefixtures("env", "world")
def test_unknown_or_bad_selectors_fail_clearly() -> None:
    for args, message in BAD_SELECTORS:
        for command in (["export"], ["delete", "--yes"]):
            code, _, err = invoke("requester", *command, *args)
            assert code == 1 and message in err, (command, args, err)


@pytest.mark.usefixtures("env", "world")
def test_delete_needs_yes_and_then_erases(db: Database) -> None:
    ref = _ticket(db)
    code, _, err = invoke("requester", "delete", "--telegram", CHAT)
    assert code == 1 and "--yes" in err and "1 Tickets" in err
    assert _subject(db, ref) == f"Frage von {NAME}"

    code, out, err = invoke("requester", "delete", "--telegram", CHAT, "--yes")
    assert code == 0, err
    assert "1 Tickets anonymisiert" in out
    assert _subject(db, ref) == ANONYMISED_SUBJECT
    with db.read() as s:
        assert s.exec(select(Requester.name)).all() == [None]
    code, _, err = invoke("requester", "delete", "--telegram", CHAT, "--yes")
    assert code == 1 and "No data is held" in err


@pytest.mark.usefixtures("env", "world")
def test_retention_run_and_dry_run(db: Database) -> None:
    old = _ticket(db, closed_days_ago=200)
    young = _ticket(db, chat="5", closed_days_ago=10)
    code, out, err = invoke("retention", "run", "--dry-run")
    assert code == 0, err
    assert "Probelauf" in out and "1 Tickets würden anonymisiert" in out
    assert _subject(db, old) == f"Frage von {NAME}"

    code, out, err = invoke("retention", "run")
    assert code == 0, err
    assert "1 Tickets wurden anonymisiert" in out and "muenchen: 1" in out
    assert _subject(db, old) == ANONYMISED_SUBJECT
    assert _subject(db, young) == f"Frage von {NAME}"
    code, out, _ = invoke("retention", "run")
    assert code == 0 and "0 Tickets wurden anonymisiert" in out
