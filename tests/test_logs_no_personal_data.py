"""No personal data in logs: a realistic day — the bot's API calls, the web chat with a
handover, staff on the board, errors, rate limits and an erasure — with every logger at DEBUG;
none of the test citizens' names, e-mail addresses, chat ids or web sessions may appear."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.backend import BackendError, HttpBackend, Requester
from hotline.app import create_app
from hotline.db import Database
from hotline.models import OutboxDelivery
from hotline.settings import Settings
from tests.board.conftest import BoardClient
from tests.conftest import World
from tests.web.test_chat import Browser, text_of

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]

NAME = "Quirinia Zwackelmeyer"
SURNAME = "Zwackelmeyer"
EMAIL = "quirinia.zwackelmeyer@example.org"
CHAT_ID = "8765432109"
WEB_NAME = "Bartholomäa Knöpfleinsdorf"
WEB_EMAIL = "b.knoepfleinsdorf@example.net"
# Loggers that do not pass records to the root logger (uvicorn) or that a deployment may turn
# up on its own; all of them are captured at DEBUG.
EXTRA_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "httpx",
    "httpcore",
    "aiogram",
    "hotline",
    "bot",
    "multipart",
    "python_multipart",
)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    # SQL echo prints bound parameters by design; it is a debugging switch that is off unless
    # someone sets it, so it is not part of "the logs" this test guards.
    engine = logging.getLogger("sqlalchemy.engine")
    engine_level = engine.level
    engine.setLevel(logging.WARNING)
    saved = []
    for name in EXTRA_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        engine.setLevel(engine_level)
        for logger, level in saved:
            logger.setLevel(level)
            if caplog.handler in logger.handlers:
                logger.removeHandler(caplog.handler)


def _is_request_url_log(record: logging.LogRecord) -> bool:
    # httpx logs every request's full URL at INFO; see the known leak below.
    return record.name == "httpx" and record.getMessage().startswith("HTTP Request:")


def _logged_text(
    caplog: pytest.LogCaptureFixture, skip: Callable[[logging.LogRecord], bool] = lambda _: False
) -> str:
    lines = []
    for record in caplog.records:
        # The test client (httpx2) stands in for the citizen's browser and the staff's: its
        # request log is theirs, not the server's (which runs without an access log).
        if record.name.startswith("httpx2") or skip(record):
            continue
        lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


def _bot_calls(app: FastAPI, token: str, *, ask_first: bool = True) -> None:
    """What the Telegram bot sends for a citizen: ask, ticket, status, erase (over HTTP)."""

    async def run() -> None:
        backend = HttpBackend(
            "http://hotline.test", token, transport=httpx.ASGITransport(app=app), timeout=30
        )
        telegram = Requester(channel="telegram", telegram_chat_id=CHAT_ID)
        try:
            if not ask_first:
                await backend.citizen_tickets(telegram)
                return
            await backend.ask(
                f"Ich bin {NAME}, mein Konto {EMAIL} ist gesperrt",
                city="muenchen",
                requester=telegram,
                language="de",
            )
            tickets = await backend.citizen_tickets(telegram)
            assert tickets, "the API scenario made a ticket for this chat"
            await backend.erase(Requester(channel="telegram", telegram_chat_id="1122334455"))
            with pytest.raises(BackendError):
                await backend.ask(f"{NAME}\x00", city=None, requester=telegram, language="de")
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_no_personal_data_in_any_log(
    all_logs: pytest.LogCaptureFixture,
    settings: Settings,
    db: Database,
    demo_kb_world: World,
) -> None:
    world = demo_kb_world
    app = create_app(settings.model_copy(update={"ticket_rate_per_minute": 3}), db)
    with TestClient(app, raise_server_exceptions=False) as client:
        network = world.headers()
        # --- a channel creates a ticket for a Telegram citizen, with a retry -------------------
        body = {
            "subject": f"Konto gesperrt ({NAME})",
            "body": f"Hallo, ich bin {NAME} ({EMAIL}), Telefon 089 1234567. Bitte helfen.",
            "channel": "telegram",
            "origin_city": "muenchen",
            "requester": {"name": NAME, "email": EMAIL, "telegram_chat_id": CHAT_ID},
            "transcript": [{"role": "citizen", "text": f"Mein Name ist {NAME}"}],
        }
        headers = {**network, "Idempotency-Key": f"tg-{CHAT_ID}-1"}
        created = client.post("/api/v1/tickets", json=body, headers=headers)
        assert created.status_code == 201, created.text
        again = client.post("/api/v1/tickets", json=body, headers=headers)
        assert again.status_code == 201
        reference = created.json()["reference"]
        # Invalid input that carries personal data: refused, and the value is not logged.
        bad = {**body, "requester": {"name": NAME, "email": f"{SURNAME}@@{EMAIL}"}}
        assert client.post("/api/v1/tickets", json=bad, headers=network).status_code == 422
        nul = {**body, "subject": f"{NAME}\x00"}
        assert client.post("/api/v1/tickets", json=nul, headers=network).status_code == 422
        # The same citizen over the limit.
        for _ in range(3):
            client.post("/api/v1/tickets", json=body, headers=network)
        assert client.post("/api/v1/tickets", json=body, headers=network).status_code == 429
        found = client.get(
            "/api/v1/citizen/tickets", params={"telegram_chat_id": CHAT_ID}, headers=network
        ).json()
        assert [t["reference"] for t in found][:1] == [reference]
        client.get(f"/api/v1/tickets?text={SURNAME}", headers=network)

        # --- the bot's calls over HTTP ---------------------------------------------------------
        _bot_calls(app, world.network_token)

        # --- the web chat: question with a name, handover with an e-mail, status ---------------
        browser = Browser(client)
        page = browser.open()
        browser.press(page, "Augsburg")
        reply = browser.say(f"Ich heiße {WEB_NAME}. Wo kann ich einen Angelschein beantragen?")
        yes = next(label for label in browser.buttons(reply) if label.startswith("Ja"))
        step = browser.press(reply, yes)
        if "Weiß nicht" in browser.buttons(step):
            step = browser.press(step, "Weiß nicht")
        done = browser.say(WEB_EMAIL)
        web_ref = re.search(r"HL-\d{4}-\d{6}", text_of(done))
        assert web_ref, text_of(done)
        browser.say("/status")
        web_session = client.cookies.get("hl_chat")
        assert web_session

        # --- staff on the board ----------------------------------------------------------------
        agent = BoardClient(TestClient(app, raise_server_exceptions=False))
        with agent.client:
            assert agent.login("agent.muc").status_code == 303
            ticket_page = agent.get(f"/board/tickets/{reference}")
            assert NAME in ticket_page.text  # staff see the person; the logs do not
            version = re.search(r'name="version" value="(\d+)"', ticket_page.text)
            assert version
            replied = agent.post(
                f"/board/tickets/{reference}/reply",
                {
                    "body": f"Guten Tag Frau {SURNAME}, Ihr Konto ist entsperrt.",
                    "version": version[1],
                },
            )
            assert replied.status_code == 303
            agent.get(f"/board/inbox?q={SURNAME}")
            assert agent.login("agent.muc", f"{NAME}-falsches-Passwort").status_code != 303
        aux = BoardClient(TestClient(app, raise_server_exceptions=False))
        with aux.client:
            assert aux.login("agent.aux").status_code == 303
            web_page = aux.get(f"/board/tickets/{web_ref.group(0)}")
            assert web_page.status_code == 200
            version = re.search(r'name="version" value="(\d+)"', web_page.text)
            assert version
            aux.post(
                f"/board/tickets/{web_ref.group(0)}/reply",
                {"body": f"Hallo {WEB_NAME}, das geht online.", "version": version[1]},
            )
        browser.updates()

        # --- the citizen asks for erasure --------------------------------------------------------
        erased = client.post("/api/v1/citizen/erase", json={"email": EMAIL}, headers=network)
        assert erased.status_code == 200, erased.text
        with db.read() as session:
            assert session.exec(select(OutboxDelivery)).all()

    logged = _logged_text(all_logs, skip=_is_request_url_log)
    assert logged, "the scenario logs something (else this test proves nothing)"
    assert_no_leaks(
        logged,
        [
            NAME,
            SURNAME,
            EMAIL,
            CHAT_ID,
            WEB_NAME,
            "Knöpfleinsdorf",
            WEB_EMAIL,
            web_session,
            "1122334455",
        ],
    )


def assert_no_leaks(logged: str, personal: list[str]) -> None:
    leaks = {
        value: [line for line in logged.splitlines() if value in line][:3]
        for value in personal
        if value in logged
    }
    assert not leaks, leaks


def test_the_channels_request_log_holds_no_chat_id_or_session(
    all_logs: pytest.LogCaptureFixture, settings: Settings, db: Database, world: World
) -> None:
    app = create_app(settings, db)
    with TestClient(app, raise_server_exceptions=False) as client:
        _bot_calls(app, world.network_token, ask_first=False)
        browser = Browser(client)
        browser.open()
        browser.say("/status")
        web_session = client.cookies.get("hl_chat")
        assert web_session
    logged = _logged_text(all_logs)
    assert "HTTP Request:" in logged  # httpx logged the channels' requests
    assert_no_leaks(logged, [CHAT_ID, web_session])
