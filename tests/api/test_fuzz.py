"""Schemathesis over the whole OpenAPI schema: no 5xx, and every response matches the schema.

Valid (positive) and invalid (negative) requests for every operation, authenticated with a
network token and with a city token, in process over ASGI against a fresh database. Bounded
and derandomised for CI: `HOTLINE_FUZZ_EXAMPLES` raises the number of examples for a deeper
local run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from hotline.app import create_app
from hotline.db import Database
from hotline.settings import Settings
from tests.conftest import World

pytestmark = pytest.mark.db

EXAMPLES = int(os.environ.get("HOTLINE_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture
def fuzz_app(settings: Settings, db: Database, world: World) -> Iterator[FastAPI]:
    # No outbox worker (nothing to deliver to) and no rate limit getting in the fuzzer's way.
    quiet = settings.model_copy(
        update={
            "worker_in_process": False,
            "ask_rate_per_minute": 1_000_000,
            "ticket_rate_per_minute": 1_000_000,
        }
    )
    app = create_app(quiet, db)
    yield app
    asgi.shutdown_lifespans()


def _seed(app: FastAPI, headers: dict[str, str]) -> None:
    """A ticket and an ask exist, so that not every generated id is unknown."""
    client = asgi.get_client(app)
    with client:
        created = client.post(
            "/api/v1/tickets",
            json={"subject": "Fuzz", "body": "Eine Frage", "origin_city": "muenchen"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        asked = client.post("/api/v1/kb/ask", json={"question": "Personalausweis"}, headers=headers)
        assert asked.status_code == 200, asked.text


def _fuzz(app: FastAPI, headers: dict[str, str], modes: tuple[GenerationMode, ...]) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:

            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # no parameters and no body: nothing invalid to send (e.g. /healthz)
            except Exception as exc:  # collect all operations' failures, report them together
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    return failures


@pytest.mark.parametrize(
    ("who", "modes"),
    [
        ("network", (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)),
        # Invalid input is refused before the token's city matters: valid requests suffice.
        ("muenchen", (GenerationMode.POSITIVE,)),
    ],
    ids=["network", "muenchen"],
)
def test_no_server_error_and_every_response_matches_the_schema(
    fuzz_app: FastAPI, world: World, who: str, modes: tuple[GenerationMode, ...]
) -> None:
    headers = world.headers(who)
    _seed(fuzz_app, headers)
    failures = _fuzz(fuzz_app, headers, modes)
    assert not failures, "\n\n".join(failures)
