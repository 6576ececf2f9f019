"""Board and web chat in a real browser: Debian's Chromium driven by Playwright for Python.

One live server (uvicorn on 127.0.0.1) with the demo data on SQLite serves all browser tests.
Each test opens its own browser context (its own cookies), logs in through the form, saves
screenshots to `var/screenshots/` (HOTLINE_SCREENSHOT_DIR) and checks every page it visits
with axe-core for WCAG 2.1 AA violations. Without Chromium the tests skip, unless
HOTLINE_REQUIRE_BROWSER=1 (set by CI) makes them fail.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hotline.db import Database
from hotline.demo.loader import DEMO_PASSWORD, load_demo
from hotline.migrate import upgrade
from tests.conftest import LiveServer, settings_for

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("HOTLINE_SCREENSHOT_DIR", ROOT / "var" / "screenshots"))
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
LAPTOP = {"width": 1366, "height": 800}
TABLET = {"width": 800, "height": 1180}


def _require() -> bool:
    return os.environ.get("HOTLINE_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if _require():
        pytest.fail(f"browser tests required (HOTLINE_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with the demo data (users, rules, KB, tickets) on its own SQLite file."""
    path = tmp_path_factory.mktemp("browser") / "demo.db"
    # Every browser test logs in from 127.0.0.1: the per-address login limit (tested in
    # tests/board/test_auth.py) would otherwise refuse the later tests of a fast run.
    settings = settings_for(f"sqlite:///{path}", worker_in_process=True, login_rate_per_minute=1000)
    db = Database.from_settings(settings)
    upgrade(db.engine)
    load_demo(db, settings)
    db.dispose()
    with LiveServer(settings) as server:
        yield server


# Module scope: Playwright's sync API keeps an event loop running while it is open, which
# would break the asyncio tests that run after the browser tests in the same session.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - dev extras missing
        _unavailable("playwright is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class Visit:
    """A logged-in (or anonymous) page plus what it collected: console errors, axe results."""

    page: Any
    base: str
    name: str
    console_errors: list[str] = field(default_factory=list)
    axe_checked: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def shot(self, label: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        target = SHOTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(target), full_page=True)
        return target

    def check_accessible(self, label: str) -> None:
        """axe-core over the current page: no WCAG 2.1 A/AA violations (results saved)."""
        # evaluate() runs through the DevTools protocol, so the page's CSP stays in force.
        self.page.evaluate(AXE.read_text(encoding="utf-8"))
        result = self.page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
        )
        SHOTS.mkdir(parents=True, exist_ok=True)
        summary = {
            "page": self.page.url,
            "violations": [
                {
                    "id": v["id"],
                    "impact": v["impact"],
                    "help": v["help"],
                    "nodes": [n["target"] for n in v["nodes"]][:10],
                }
                for v in result["violations"]
            ],
            "passes": len(result["passes"]),
        }
        (SHOTS / f"{self.name}-{label}.axe.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        self.axe_checked.append(self.page.url)
        assert not summary["violations"], (
            f"axe found WCAG 2.1 AA violations on {self.page.url}: "
            + json.dumps(summary["violations"], ensure_ascii=False, indent=1)
        )

    def assert_no_console_errors(self) -> None:
        assert not self.console_errors, f"browser console errors: {self.console_errors}"


@pytest.fixture
def visit(
    chromium: Any, live_demo: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Visit]]:
    """`visit("agent1.muenchen")` → a page logged in through the login form;
    `visit(None)` → anonymous. `viewport=TABLET` for the tablet width."""
    contexts: list[Any] = []
    visits: list[Visit] = []

    def make(username: str | None, *, viewport: dict[str, int] = LAPTOP, lang: str = "de") -> Visit:
        context = chromium.new_context(viewport=viewport, locale="de-DE")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        name = f"{request.node.name}-{username or 'anon'}".replace("/", "_").replace("[", "_")
        v = Visit(page=page, base=live_demo.url, name=name.replace("]", ""))
        page.on(
            "console",
            lambda msg: v.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        visits.append(v)
        if lang == "en":
            v.go("/board/lang/en?next=/board/login")
        if username is not None:
            v.go("/board/login")
            page.get_by_label("Benutzername" if lang == "de" else "User name").fill(username)
            page.get_by_label("Passwort" if lang == "de" else "Password", exact=True).fill(
                DEMO_PASSWORD
            )
            page.get_by_role("button", name="Anmelden" if lang == "de" else "Log in").click()
            page.wait_for_load_state("networkidle")
            assert "/board/login" not in page.url, f"login as {username} failed"
        return v

    yield make
    for context in contexts:
        context.close()
