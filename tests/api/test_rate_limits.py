"""Rate limits per client on `POST /kb/ask` and `POST /tickets`: 429 with Retry-After, other
clients unaffected, the web chat limited per citizen, shared through Redis when configured."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from bot.backend import BackendError, Requester
from bot.limits import MemoryRateLimiter
from hotline.api.ratelimit import close_limiters
from hotline.app import create_app, in_process_backend
from hotline.db import Database
from hotline.models import KBAsk, Ticket
from tests.bot.test_limits import redis_url as redis_url  # the fixture, used below
from tests.conftest import World, settings_for

pytestmark = pytest.mark.db

ASK = "/api/v1/kb/ask"
TICKETS = "/api/v1/tickets"
ASK_LIMIT = 3
TICKET_LIMIT = 2


def limited_app(db_url: str, db: Database, **overrides: object) -> TestClient:
    settings = settings_for(
        db_url,
        ask_rate_per_minute=ASK_LIMIT,
        ticket_rate_per_minute=TICKET_LIMIT,
        worker_in_process=False,
        **overrides,
    )
    return TestClient(create_app(settings, db), raise_server_exceptions=False)


@pytest.fixture
def app(db_url: str, db: Database, world: World) -> Iterator[TestClient]:
    with limited_app(db_url, db) as client:
        yield client


def ask(client: TestClient, headers: dict[str, str], who: str | None = None) -> httpx.Response:
    body: dict[str, object] = {"question": "Personalausweis verloren", "channel": "telegram"}
    if who is not None:
        body["client"] = who
    return client.post(ASK, json=body, headers=headers)


def new_ticket(
    client: TestClient, headers: dict[str, str], requester: dict[str, str] | None = None
) -> httpx.Response:
    body: dict[str, object] = {"subject": "Frage", "body": "Wie geht das?", "channel": "web"}
    if requester is not None:
        body["requester"] = requester
    return client.post(TICKETS, json=body, headers=headers)


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited" and "retry" in body["detail"]
    assert isinstance(body["retry_after"], int) and 1 <= body["retry_after"] <= 60
    assert response.headers["Retry-After"] == str(body["retry_after"])


def count(db: Database, model: type[KBAsk] | type[Ticket]) -> int:
    with db.read() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_asks_over_the_limit_get_429_and_other_clients_go_on(
    app: TestClient, world: World, db: Database
) -> None:
    network = world.headers()
    assert [ask(app, network, "4711").status_code for _ in range(ASK_LIMIT)] == [200] * ASK_LIMIT
    assert_rate_limited(ask(app, network, "4711"))
    assert_rate_limited(ask(app, network, "4711"))
    assert count(db, KBAsk) == ASK_LIMIT  # refused asks are not logged
    # Another citizen on the same channel token, the same token without a citizen, and
    # another token are separate clients.
    assert ask(app, network, "4712").status_code == 200
    assert ask(app, network).status_code == 200
    assert ask(app, world.headers("muenchen"), "4711").status_code == 200


def test_ticket_creation_over_the_limit_gets_429_and_stores_nothing(
    app: TestClient, world: World, db: Database
) -> None:
    muenchen = world.headers("muenchen")
    for _ in range(TICKET_LIMIT):
        assert new_ticket(app, muenchen).status_code == 201
    assert_rate_limited(new_ticket(app, muenchen))
    assert count(db, Ticket) == TICKET_LIMIT
    assert new_ticket(app, world.headers("augsburg")).status_code == 201
    # On a channel token every citizen is a client of their own: chat id, session or e-mail.
    network = world.headers()
    for requester in (
        {"telegram_chat_id": "4711"},
        {"web_session": "session-0001"},
        {"email": "erika@example.org"},
    ):
        for _ in range(TICKET_LIMIT):
            assert new_ticket(app, network, requester).status_code == 201
        assert_rate_limited(new_ticket(app, network, requester))
    assert new_ticket(app, network, {"telegram_chat_id": "4712"}).status_code == 201


def test_the_limit_resets_after_the_window(app: TestClient, world: World) -> None:
    now = [1000.0]
    app.app.state.ask_limiter = MemoryRateLimiter(ASK_LIMIT, clock=lambda: now[0])  # type: ignore[attr-defined]
    for _ in range(ASK_LIMIT):
        assert ask(app, world.headers(), "4711").status_code == 200
    now[0] += 45
    refused = ask(app, world.headers(), "4711")
    assert_rate_limited(refused)
    assert refused.json()["retry_after"] == 15
    now[0] += 15
    assert ask(app, world.headers(), "4711").status_code == 200


def test_unauthenticated_and_invalid_requests_are_not_counted_for_the_token(
    app: TestClient, world: World
) -> None:
    assert app.post(ASK, json={"question": "x"}).status_code == 401
    for _ in range(ASK_LIMIT + 2):
        assert app.post(ASK, json={"question": ""}, headers=world.headers()).status_code in (
            422,
            429,
        )
    # Invalid asks count (the limit protects the server, not only the matcher) ...
    assert_rate_limited(ask(app, world.headers()))
    # ... but only for that client.
    assert ask(app, world.headers(), "4711").status_code == 200


async def test_the_web_chat_is_limited_per_citizen_not_as_a_whole(
    db_url: str, db: Database, world: World
) -> None:
    settings = settings_for(db_url, ask_rate_per_minute=ASK_LIMIT, worker_in_process=False)
    backend = in_process_backend(create_app(settings, db))
    first = Requester(channel="web", web_session="session-first-0001")
    second = Requester(channel="web", web_session="session-second-002")
    try:
        for _ in range(ASK_LIMIT):
            await backend.ask("Personalausweis", city=None, requester=first, language="de")
        with pytest.raises(BackendError) as refused:
            await backend.ask("Personalausweis", city=None, requester=first, language="de")
        assert refused.value.status == 429 and refused.value.code == "rate_limited"
        result = await backend.ask("Personalausweis", city=None, requester=second, language="de")
        assert result.ask_id > 0
    finally:
        await backend.aclose()


@pytest.fixture
def redis_app(
    db_url: str,
    db: Database,
    world: World,
    redis_url: str,
) -> Iterator[tuple[TestClient, TestClient]]:
    # A fresh secret: the keys are keyed hashes, so this test never sees another run's counts.
    secret = secrets.token_urlsafe(32)
    with (
        limited_app(db_url, db, redis_url=redis_url, secret_key=secret) as one,
        limited_app(db_url, db, redis_url=redis_url, secret_key=secret) as two,
    ):
        yield one, two
        for client in (one, two):
            # The Redis connections belong to the client's event loop: close them in it.
            client.portal.call(close_limiters, client.app.state)  # type: ignore[union-attr, attr-defined]


def test_limits_are_shared_between_processes_through_redis(
    redis_app: tuple[TestClient, TestClient], world: World
) -> None:
    one, two = redis_app
    network = world.headers()
    codes = [ask(app, network, "4711").status_code for app in (one, two, one)]
    assert codes == [200] * ASK_LIMIT
    assert_rate_limited(ask(two, network, "4711"))
    assert ask(two, network, "4712").status_code == 200
    for app in (one, two):
        assert new_ticket(app, network, {"telegram_chat_id": "4711"}).status_code == 201
    assert_rate_limited(new_ticket(one, network, {"telegram_chat_id": "4711"}))
