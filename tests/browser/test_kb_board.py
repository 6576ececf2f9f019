"""The knowledge-base pages in the browser: search, edit with live preview, try-it, a11y."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from hotline.db import Database
from hotline.models import City, KBAsk, KBEntry
from hotline.services.learning import propose_candidate
from tests.browser.conftest import TABLET, Visit
from tests.conftest import LiveServer

Visitor = Callable[..., Visit]


def test_city_admin_searches_edits_with_preview_and_tries(visit: Visitor) -> None:
    v = visit("admin.muenchen")
    page = v.page
    v.go("/board/kb")
    assert page.get_by_role("heading", name="Wissensdatenbank", level=1).is_visible()
    v.check_accessible("kb-list")
    v.shot("kb-list")

    # Search through htmx: the results and the count change in place, the URL follows.
    page.get_by_label("Suchbegriff oder Frage").fill("Hundesteuer")
    page.get_by_role("button", name="Suchen").click()
    page.wait_for_url("**/board/kb?q=Hundesteuer*")
    results = page.locator("#kb-results")
    results.get_by_role("link", name="Hundesteuer in München").wait_for()
    assert "Hundesteuer in Augsburg" not in results.inner_text()
    assert "Einträge gefunden" in page.locator("#kb-count").inner_text()
    v.check_accessible("kb-search")
    v.shot("kb-search")

    # Try-it box beside the list.
    page.get_by_label("Frage, wie ein Bürger sie stellt").fill(
        "Wie hoch ist die Hundesteuer in München?"
    )
    page.get_by_role("button", name="Ausprobieren").click()
    verdict = page.locator("#kb-try-result")
    verdict.get_by_text("Der Bot würde direkt").wait_for()
    assert "Hundesteuer in München" in verdict.inner_text()
    v.check_accessible("kb-list-try")
    v.shot("kb-list-try")

    # Entry page, then the editor.
    results.get_by_role("link", name="Hundesteuer in München").click()
    page.wait_for_url("**/board/kb/hundesteuer-muenchen")
    assert page.get_by_role("heading", name="Hundesteuer in München", level=1).is_visible()
    v.check_accessible("kb-entry")
    v.shot("kb-entry")
    page.get_by_role("link", name="Bearbeiten").click()
    page.wait_for_url("**/board/kb/hundesteuer-muenchen/edit")
    city = page.get_by_label("Stadt")
    assert city.locator("option").all_inner_texts() == ["München"]
    v.check_accessible("kb-edit")

    # Live preview while typing: Markdown rendered, script and javascript: links defused.
    answer = page.get_by_label("Antwort (Markdown)")
    original = answer.input_value()
    answer.fill(
        original
        + "\n\n**Neu ab 2026:** Ermäßigung für Tierheimhunde. "
        + "[Mehr](https://www.muenchen.de) <script>alert(1)</script> [x](javascript:alert(2))"
    )
    preview = page.locator("#kb-preview")
    preview.locator("strong", has_text="Neu ab 2026:").wait_for()
    assert preview.locator("script").count() == 0
    assert preview.locator("a[href^='javascript']").count() == 0
    assert preview.locator("a[href='https://www.muenchen.de']").count() == 1
    v.check_accessible("kb-edit-preview")
    v.shot("kb-edit-preview")

    # Saved is the harmless part only (the demo data serves other tests as well).
    answer.fill(original + "\n\n**Neu ab 2026:** Ermäßigung für Tierheimhunde.")
    preview.get_by_role("link", name="Mehr").wait_for(state="detached")
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_url("**/board/kb/hundesteuer-muenchen")
    assert "Der Eintrag wurde gespeichert." in page.inner_text("#flash")
    rendered = page.locator(".kb-answer")
    assert rendered.locator("strong", has_text="Neu ab 2026:").is_visible()
    assert "Version 2" in page.inner_text("main")
    v.check_accessible("kb-entry-saved")
    v.shot("kb-entry-saved")

    # The try-it page on its own, and the editors' pages.
    v.go("/board/kb/try?q=Perso+verloren+was+tun&city=muenchen")
    assert page.locator("#kb-try-result .kb-decision").is_visible()
    v.check_accessible("kb-try")
    v.shot("kb-try")
    v.go("/board/kb/candidates")
    assert page.get_by_role("heading", name="Vorgeschlagene Fragevarianten").is_visible()
    v.check_accessible("kb-candidates")
    v.go("/board/kb/gaps")
    assert page.get_by_role("heading", name="Lücken der Wissensdatenbank").is_visible()
    v.check_accessible("kb-gaps")
    v.shot("kb-gaps")
    v.go("/board/kb/new?question=Wo+bekomme+ich+eine+Hundemarke%3F")
    assert page.get_by_label("Fragevarianten (eine je Zeile)").input_value() == (
        "Wo bekomme ich eine Hundemarke?"
    )
    v.assert_no_console_errors()
    page.get_by_role("button", name="Eintrag anlegen").click()
    page.get_by_text("Bitte geben Sie einen Schlüssel an.").first.wait_for()
    # The invalid form comes back with status 422, which Chromium logs; nothing else may.
    assert all("422" in message for message in v.console_errors)
    v.check_accessible("kb-new-errors")
    v.shot("kb-new-errors")


@pytest.mark.parametrize("viewport", [TABLET], ids=["tablet"])
def test_kb_pages_at_tablet_width(visit: Visitor, viewport: dict[str, int]) -> None:
    v = visit("agent1.muenchen", viewport=viewport)
    page = v.page
    v.go("/board/kb?q=Personalausweis+verloren&mode=question")
    assert page.locator("#kb-results tbody tr").count() > 0
    # Nothing is wider than the tablet screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    v.check_accessible("kb-list-tablet")
    v.shot("kb-list-tablet")
    v.go("/board/kb/ausweis-verlust")
    assert page.get_by_role("link", name="Bearbeiten").count() == 0  # agents read only
    v.check_accessible("kb-entry-tablet")
    v.shot("kb-entry-tablet")
    v.assert_no_console_errors()


@pytest.fixture
def demo_db(live_demo: LiveServer) -> Database:
    """The live server's own database, to set up what the learning loop would have made."""
    app: Any = live_demo.server.config.app
    db: Database = app.state.db
    return db


def test_editor_accepts_a_variant_and_opens_a_gap(visit: Visitor, demo_db: Database) -> None:
    with demo_db.write() as session:
        entry = session.exec(select(KBEntry).where(KBEntry.key == "bewohnerparken-muenchen")).one()
        candidate = propose_candidate(
            session, entry, "Parkausweis für meine Straße in Schwabing beantragen", source="choice"
        )
        assert candidate is not None
        muc = session.exec(select(City).where(City.key == "muenchen")).one()
        for question in ("Darf ich ein Hausboot auf der Isar anmelden?", "Hausboot Isar anmelden"):
            session.add(KBAsk(question=question, city_id=muc.id, decision="handover", score=12.0))
    v = visit("admin.muenchen")
    page = v.page
    v.go("/board/kb/candidates")
    card = page.locator(f"#cand-{candidate.id}")
    assert "Bewohnerparkausweis" in card.inner_text()
    v.check_accessible("kb-candidates-open")
    v.shot("kb-candidates-open")
    card.get_by_role("button", name="Übernehmen").click()
    page.locator(f"#cand-{candidate.id}.kb-cand-done").wait_for()
    assert "ist jetzt eine Variante" in page.inner_text("#flash")
    v.check_accessible("kb-candidates-accepted")
    v.shot("kb-candidates-accepted")
    v.go("/board/kb/bewohnerparken-muenchen")
    assert "Parkausweis für meine Straße in Schwabing beantragen" in page.inner_text("main")

    v.go("/board/kb/gaps")
    row = page.locator("tbody tr", has_text="Hausboot")
    assert row.locator("td.kb-num").inner_text() == "2"
    v.check_accessible("kb-gaps-open")
    v.shot("kb-gaps-open")
    row.get_by_role("link", name="Eintrag anlegen").click()
    page.wait_for_url("**/board/kb/new?*")
    assert "Hausboot" in page.get_by_label("Fragevarianten (eine je Zeile)").input_value()
    assert page.get_by_label("Stadt").input_value() == "muenchen"
    v.check_accessible("kb-new-from-gap")
    v.assert_no_console_errors()
