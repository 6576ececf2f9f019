"""The knowledge-base pages of the board: list, search, entry, editor, variants, gaps, try-it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlmodel import select

from hotline.db import Database
from hotline.models import CandidateStatus, KBAsk, KBCandidate, KBEntry
from hotline.services.kb import EntryDraft, kb_generation
from hotline.services.learning import propose_candidate
from kb._confidence import shipped_model
from tests.board.conftest import BoardClient
from tests.conftest import World

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]
MUC = "hundesteuer-muenchen"
AUX = "hundesteuer-augsburg"
SHARED = "bayernid-passwort-vergessen"


def _entry(db: Database, key: str) -> KBEntry:
    with db.read() as session:
        return session.exec(select(KBEntry).where(KBEntry.key == key)).one()


def _generation(db: Database) -> int:
    with db.read() as session:
        return kb_generation(session)


def _form(db: Database, key: str, **changes: str) -> dict[str, str]:
    """The edit form of an entry as the page sends it, with some fields changed."""
    with db.read() as session:
        row = session.exec(select(KBEntry).where(KBEntry.key == key)).one()
        draft = EntryDraft.of(session, row)
    page_values = {
        "version": str(row.version),
        "title": draft.title,
        "service": draft.service,
        "city": draft.city or "",
        "audience": draft.audience,
        "status": draft.status,
        "questions": "\n".join(draft.questions),
        "answer": draft.answer,
        "action": "save",
    }
    return {**page_values, **changes}


def _version_field(html: str) -> int:
    match = re.search(r'name="version" value="(\d+)"', html)
    assert match, "edit form without version"
    return int(match.group(1))


# --- list, search, filters ----------------------------------------------------------------------


def test_list_shows_shared_and_own_city_entries_only(board: Board, demo_kb_world: World) -> None:
    agent = board("agent.muc")
    page = agent.get("/board/kb", params={"q": "Hundesteuer"})
    assert page.status_code == 200
    assert "Hundesteuer in München" in page.text
    assert "Hundesteuer in Augsburg" not in page.text
    assert "Hundesteuer in Nürnberg" not in page.text
    assert re.search(r"\d+ Einträge gefunden", page.text)
    # The coordination sees every city's entries.
    coordinator = board("koordination").get("/board/kb", params={"q": "Hundesteuer"})
    assert "Hundesteuer in Augsburg" in coordinator.text
    assert "Hundesteuer in München" in coordinator.text
    # Another city's filter is refused for a city's staff, not silently widened.
    refused = agent.get("/board/kb", params={"city": "augsburg"})
    assert refused.status_code == 422
    assert "Hundesteuer in Augsburg" not in refused.text


def test_text_search_folds_umlauts_and_searches_questions(
    board: Board, demo_kb_world: World
) -> None:
    agent = board("agent.muc")
    # "Kampfhund" is only in a question variant and the answer, not in the title.
    page = agent.get("/board/kb", params={"q": "kampfhund muenchen"})
    assert "Hundesteuer in München" in page.text
    assert "1 Einträge gefunden" in page.text
    nothing = agent.get("/board/kb", params={"q": "quantenverschraenkung"})
    assert "0 Einträge gefunden" in nothing.text
    assert "Keine Einträge passen" in nothing.text


def test_find_by_question_uses_the_matcher(board: Board, demo_kb_world: World) -> None:
    agent = board("agent.muc")
    # Different words and a typo: the text search finds nothing, the matcher does.
    question = "was zahlt man für nen hund in münchn im jahr"
    assert "0 Einträge gefunden" in agent.get("/board/kb", params={"q": question}).text
    page = agent.get("/board/kb", params={"q": question, "mode": "question"})
    assert page.status_code == 200
    assert "sortiert nach Treffergüte" in page.text
    first = re.search(r'<tbody>\s*<tr>\s*<td><a href="/board/kb/([^"]+)"', page.text)
    assert first and first.group(1) == MUC
    assert "Hundesteuer in Augsburg" not in page.text


def test_filters_and_pagination(board: Board, demo_kb_world: World) -> None:
    agent = board("agent.muc")
    internal = agent.get("/board/kb", params={"audience": "internal"})
    assert "ePayment für eine Dienststelle einrichten" in internal.text  # staff see internal
    assert "Hundesteuer in München" not in internal.text
    city = agent.get("/board/kb", params={"city": "muenchen"})
    assert "Hundesteuer in München" in city.text
    assert "BayernID" not in city.text.split("<tbody>")[1]
    shared = agent.get("/board/kb", params={"city": "-", "q": "Hundesteuer"})
    assert "Hundesteuer in München" not in shared.text
    drafts = agent.get("/board/kb", params={"status": "draft"})
    assert "0 Einträge gefunden" in drafts.text
    everything = agent.get("/board/kb")
    assert "Seite 1 von" in everything.text
    second = agent.get("/board/kb", params={"page": 2})
    assert "Seite 2 von" in second.text
    # htmx gets only the results (and the count, out of band).
    fragment = agent.htmx("GET", "/board/kb?q=Hundesteuer")
    assert "<html" not in fragment.text and "Hundesteuer in München" in fragment.text
    assert 'id="kb-count"' in fragment.text


# --- entry page ---------------------------------------------------------------------------------


def test_entry_page_renders_the_answer_and_variants(board: Board, demo_kb_world: World) -> None:
    agent = board("agent.muc")
    page = agent.get(f"/board/kb/{MUC}")
    assert page.status_code == 200
    assert "<h1>Hundesteuer in München</h1>" in page.text
    assert "Wie hoch ist die Hundesteuer in München?" in page.text
    assert "Version" in page.text and "Veröffentlicht" in page.text
    # Agents read but do not edit.
    assert f"/board/kb/{MUC}/edit" not in page.text
    # Another city's entry does not exist for them.
    assert agent.get(f"/board/kb/{AUX}").status_code == 404
    assert board("admin.aux").get(f"/board/kb/{MUC}").status_code == 404


# --- who edits ----------------------------------------------------------------------------------


def test_agent_cannot_edit_create_or_delete(
    board: Board, demo_kb_world: World, db: Database
) -> None:
    agent = board("agent.muc")
    assert agent.get(f"/board/kb/{MUC}/edit").status_code == 403
    assert agent.post(f"/board/kb/{MUC}/edit", _form(db, MUC, title="Gekapert")).status_code == 403
    assert agent.get("/board/kb/new").status_code == 403
    assert agent.post(f"/board/kb/{MUC}/delete", {"confirm": "yes"}).status_code == 403
    assert agent.get("/board/kb/candidates").status_code == 403
    assert _entry(db, MUC).title == "Hundesteuer in München"


def test_city_admin_edits_own_city_entry_only(
    board: Board, demo_kb_world: World, db: Database
) -> None:
    admin = board("admin.muc")
    form = admin.get(f"/board/kb/{MUC}/edit")
    assert form.status_code == 200
    # The city field offers only München: no shared entries, no other city.
    city_select = form.text.split('id="kb-city"')[1].split("</select>")[0]
    assert 'value="muenchen"' in city_select and 'value="augsburg"' not in city_select
    assert 'value=""' not in city_select
    before = _generation(db)
    saved = admin.post(
        f"/board/kb/{MUC}/edit",
        _form(db, MUC, title="Hundesteuer in München (2026)", answer="Neu: **100 Euro**."),
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"/board/kb/{MUC}"
    row = _entry(db, MUC)
    assert row.title == "Hundesteuer in München (2026)" and row.version == 2
    assert _generation(db) == before + 1
    page = admin.get(f"/board/kb/{MUC}")
    assert (
        "<strong>100 Euro</strong>" in page.text and "Der Eintrag wurde gespeichert." in page.text
    )
    # A shared entry and another city's entry are not theirs.
    assert admin.get(f"/board/kb/{SHARED}/edit").status_code == 403
    assert admin.post(f"/board/kb/{SHARED}/edit", _form(db, SHARED)).status_code == 403
    assert admin.get(f"/board/kb/{AUX}/edit").status_code == 404
    # Nor may they move their entry to be shared by all cities.
    moved = admin.post(f"/board/kb/{MUC}/edit", _form(db, MUC, city=""))
    assert moved.status_code == 403
    assert _entry(db, MUC).city_id is not None


def test_coordinator_edits_a_shared_entry(board: Board, demo_kb_world: World, db: Database) -> None:
    coordinator = board("koordination")
    form = coordinator.get(f"/board/kb/{SHARED}/edit")
    assert form.status_code == 200 and "Alle Städte (gemeinsamer Eintrag)" in form.text
    questions = "\n".join([*_entry(db, SHARED).questions, "BayernID Kennwort weg"])
    saved = coordinator.post(f"/board/kb/{SHARED}/edit", _form(db, SHARED, questions=questions))
    assert saved.status_code == 303
    assert "BayernID Kennwort weg" in _entry(db, SHARED).questions


def test_version_conflict_keeps_the_typed_text(
    board: Board, demo_kb_world: World, db: Database
) -> None:
    first, second = board("admin.muc"), board("admin.muc")
    stale = _form(db, MUC)  # both opened the form at version 1
    assert (
        first.post(f"/board/kb/{MUC}/edit", {**stale, "title": "Erste Fassung"}).status_code == 303
    )
    mine = "Meine lange Antwort, die nicht verloren gehen darf."
    conflict = second.post(f"/board/kb/{MUC}/edit", {**stale, "answer": mine, "title": "Zweite"})
    assert conflict.status_code == 409
    assert "inzwischen geändert" in conflict.text
    assert mine in conflict.text and 'value="Zweite"' in conflict.text
    assert "Aktuelle gespeicherte Fassung (Version 2)" in conflict.text
    assert _entry(db, MUC).title == "Erste Fassung"
    # Saving again from the conflict page deliberately replaces the other change.
    again = {
        **stale,
        "answer": mine,
        "title": "Zweite",
        "version": str(_version_field(conflict.text)),
    }
    assert second.post(f"/board/kb/{MUC}/edit", again).status_code == 303
    assert _entry(db, MUC).answer == mine


def test_validation_messages_at_the_fields(
    board: Board, demo_kb_world: World, db: Database
) -> None:
    admin = board("admin.muc")
    bad = admin.post(
        f"/board/kb/{MUC}/edit", _form(db, MUC, title=" ", questions="\n \n", answer="")
    )
    assert bad.status_code == 422
    assert 'id="err-title"' in bad.text and "Bitte geben Sie einen Titel an." in bad.text
    assert 'id="err-questions"' in bad.text and "mindestens eine Frage" in bad.text
    assert 'id="err-answer"' in bad.text
    assert 'aria-invalid="true"' in bad.text
    assert _entry(db, MUC).version == 1  # nothing half-written
    base = {
        "title": "Neuer Eintrag",
        "service": "hundesteuer-online",
        "city": "muenchen",
        "audience": "external",
        "status": "draft",
        "questions": "Eine Frage?",
        "answer": "Eine Antwort.",
    }
    duplicate = admin.post("/board/kb/new", {**base, "key": MUC})
    assert (
        duplicate.status_code == 422
        and "Einen Eintrag mit diesem Schlüssel gibt es schon." in duplicate.text
    )
    reserved = admin.post("/board/kb/new", {**base, "key": "gaps"})
    assert reserved.status_code == 422 and "reserviert" in reserved.text
    badkey = admin.post("/board/kb/new", {**base, "key": "Große Frage"})
    assert badkey.status_code == 422 and "Kleinbuchstaben" in badkey.text
    twice = admin.post("/board/kb/new", {**base, "key": "zweimal", "questions": "A?\nA?"})
    assert twice.status_code == 422 and "doppelt" in twice.text
    # A city admin cannot create a shared entry.
    assert admin.post("/board/kb/new", {**base, "key": "geteilt", "city": ""}).status_code == 403


def test_create_publish_try_and_delete(board: Board, demo_kb_world: World, db: Database) -> None:
    admin = board("admin.muc")
    form = admin.get(
        "/board/kb/new", params={"question": "Darf mein Hund in den Englischen Garten?"}
    )
    assert form.status_code == 200
    assert "Darf mein Hund in den Englischen Garten?" in form.text
    created = admin.post(
        "/board/kb/new",
        {
            "key": "hund-englischer-garten",
            "title": "Hunde im Englischen Garten",
            "service": "hundesteuer-online",
            "city": "muenchen",
            "audience": "external",
            "status": "published",
            "questions": "Darf mein Hund in den Englischen Garten?\nHundeverbot Englischer Garten",
            "answer": "Ja, **angeleint**.",
        },
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/board/kb/hund-englischer-garten"
    tried = admin.get(
        "/board/kb/try",
        params={"q": "Darf mein Hund in den Englischen Garten?", "city": "muenchen"},
    )
    assert "Hunde im Englischen Garten" in tried.text
    unconfirmed = admin.post("/board/kb/hund-englischer-garten/delete", {"version": "1"})
    assert unconfirmed.status_code == 303
    assert admin.get("/board/kb/hund-englischer-garten").status_code == 200
    deleted = admin.post(
        "/board/kb/hund-englischer-garten/delete", {"version": "1", "confirm": "yes"}
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/board/kb"
    assert admin.get("/board/kb/hund-englischer-garten").status_code == 404
    after = admin.get(
        "/board/kb/try",
        params={"q": "Darf mein Hund in den Englischen Garten?", "city": "muenchen"},
    )
    assert "Hunde im Englischen Garten" not in after.text


# --- preview ------------------------------------------------------------------------------------


def test_markdown_preview_is_sanitised(board: Board, demo_kb_world: World) -> None:
    admin = board("admin.muc")
    source = (
        "**fett** <script>alert(1)</script>\n\n"
        "[klick](javascript:alert(2)) [gut](https://example.org) <img src=x onerror=alert(3)>"
    )
    preview = admin.htmx("POST", "/board/kb/preview", {"answer": source})
    assert preview.status_code == 200
    assert "<strong>fett</strong>" in preview.text
    assert "<script>" not in preview.text and "&lt;script&gt;" in preview.text
    # The link is not made (its text stays, harmless); no href runs script.
    assert not re.search(r"href=\"\s*javascript", preview.text, re.I)
    assert "<img" not in preview.text
    assert 'href="https://example.org"' in preview.text
    # The no-JS "Vorschau" button re-renders the form with the same preview, nothing saved.
    page = admin.post(
        f"/board/kb/{MUC}/edit", {"version": "1", "answer": source, "action": "preview"}
    )
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "noch nicht gespeichert" in page.text
    # The preview needs the session's CSRF token like every other post.
    forged = admin.client.post(
        "/board/kb/preview", data={"answer": "x"}, headers={"HX-Request": "true"}
    )
    assert forged.status_code == 403


# --- candidate variants ---------------------------------------------------------------------------


def _propose(db: Database, key: str, question: str) -> int:
    with db.write() as session:
        entry = session.exec(select(KBEntry).where(KBEntry.key == key)).one()
        candidate = propose_candidate(session, entry, question, source="choice")
        assert candidate is not None
        return candidate.id or 0


def test_accepting_a_candidate_adds_the_variant_and_bumps_the_generation(
    board: Board, demo_kb_world: World, db: Database
) -> None:
    muc = _propose(db, MUC, "Was kostet mein Dackel im Jahr?")
    aux = _propose(db, AUX, "Dackel Steuer Augsburg")
    admin = board("admin.muc")
    page = admin.get("/board/kb/candidates")
    assert page.status_code == 200
    assert "Was kostet mein Dackel im Jahr?" in page.text
    assert "Dackel Steuer Augsburg" not in page.text  # not theirs to decide
    before = _generation(db)
    accepted = admin.post(
        f"/board/kb/candidates/{muc}/accept", {"question": "Was kostet mein Dackel im Jahr?"}
    )
    assert accepted.status_code == 303
    assert "Was kostet mein Dackel im Jahr?" in _entry(db, MUC).questions
    assert _generation(db) == before + 1
    assert "Variante" in admin.get("/board/kb/candidates").text  # the flash
    # The matcher uses it at once.
    tried = admin.get(
        "/board/kb/try", params={"q": "Was kostet mein Dackel im Jahr?", "city": "muenchen"}
    )
    assert "Hundesteuer in München" in tried.text
    # Another city's candidate cannot be decided from München.
    assert admin.post(f"/board/kb/candidates/{aux}/accept").status_code in (403, 404)
    with db.read() as session:
        assert session.get(KBCandidate, aux).status == CandidateStatus.pending  # type: ignore[union-attr]


def test_rejecting_a_candidate_with_htmx_replaces_its_card(
    board: Board, demo_kb_world: World, db: Database
) -> None:
    cid = _propose(db, SHARED, "BayernID Passwort klappt nicht mehr")
    assert (
        "BayernID Passwort klappt nicht mehr"
        not in board("admin.muc").get("/board/kb/candidates").text
    )
    coordinator = board("koordination")
    response = coordinator.htmx("POST", f"/board/kb/candidates/{cid}/reject")
    assert response.status_code == 200
    assert f'id="cand-{cid}"' in response.text and "verworfen" in response.text
    assert 'hx-swap-oob="innerHTML:#flash"' in response.text
    with db.read() as session:
        assert session.get(KBCandidate, cid).status == CandidateStatus.rejected  # type: ignore[union-attr]
    again = coordinator.htmx("POST", f"/board/kb/candidates/{cid}/reject")
    assert again.status_code == 409 and "schon entschieden" in again.text


# --- gaps ---------------------------------------------------------------------------------------


def test_gaps_report_groups_unanswered_questions(board: Board, demo_kb_world: World) -> None:
    admin = board("admin.muc")
    for question in (
        "Wo kann ich mein Raumschiff anmelden?",
        "Raumschiff anmelden wo?",
        "Wie melde ich ein Raumschiff an",
    ):
        asked = admin.client.post(
            "/api/v1/kb/ask",
            json={"question": question, "city": "muenchen"},
            headers=demo_kb_world.headers("muenchen"),
        )
        assert asked.status_code == 200 and asked.json()["decision"] == "handover"
    page = admin.get("/board/kb/gaps")
    assert page.status_code == 200
    assert "Raumschiff" in page.text
    row = page.text.split("<tbody>")[1].split("</tr>")[0]
    assert '<td class="kb-num">3</td>' in row
    link = re.search(r'href="(/board/kb/new\?[^"]+)"', row)
    assert link, "no 'Eintrag anlegen' link"
    form = admin.get(link.group(1).replace("&amp;", "&"))
    assert form.status_code == 200
    assert "Raumschiff" in form.text.split('id="kb-questions"')[1].split("</textarea>")[0]
    # Augsburg does not see München's unanswered questions; agents see no create link.
    assert "Raumschiff" not in board("admin.aux").get("/board/kb/gaps").text
    agent_view = board("agent.muc").get("/board/kb/gaps")
    assert "Raumschiff" in agent_view.text and "/board/kb/new?" not in agent_view.text


# --- try it -------------------------------------------------------------------------------------


def test_try_it_shows_the_decision_in_words(
    board: Board, demo_kb_world: World, db: Database
) -> None:
    agent = board("agent.muc")
    page = agent.get(
        "/board/kb/try",
        params={"q": "Wie hoch ist die Hundesteuer in München?", "city": "muenchen"},
    )
    assert page.status_code == 200
    assert "Der Bot würde direkt mit „Hundesteuer in München“ antworten." in page.text
    assert "von 100 Punkten" in page.text
    unknown = agent.htmx(
        "GET", "/board/kb/try?q=Wo+parke+ich+mein+Raumschiff+auf+dem+Mond&city=muenchen"
    )
    assert "<html" not in unknown.text
    assert "an einen Menschen übergeben" in unknown.text
    # One suggestion is "einem Vorschlag", not "1 Vorschlägen".
    unsure = agent.get(
        "/board/kb/try",
        params={
            "q": "ich will bei meinem gewerbe noch ne weitere tätigkeit dazunehmen",
            "city": "muenchen",
        },
    )
    assert "mit einem Vorschlag fragen" in unsure.text and "1 Vorschlägen" not in unsure.text
    # The learned decision: the page shows how sure the bot is and from where it answers.
    bar = f"(direkte Antwort ab {100 * shipped_model().threshold:.0f} %)"
    assert "Geschätzte Sicherheit" in unsure.text and bar in unsure.text
    assert "Direkte Antwort, wenn die geschätzte Sicherheit die Schwelle erreicht" in unsure.text
    # Without a direct answer the page says why; a direct answer needs no reason.
    one_word = agent.get("/board/kb/try", params={"q": "wie spät ist es", "city": "muenchen"})
    assert "Warum keine direkte Antwort" in one_word.text
    assert "nur ein einziges inhaltliches Wort, und es steht nicht im Titel" in one_word.text
    assert "Warum keine direkte Antwort" not in page.text
    # A question about another body: the page names it as the list writes it.
    bank = agent.get(
        "/board/kb/try",
        params={"q": "PIN meiner Sparkassen-Karte dreimal falsch eingegeben", "city": "muenchen"},
    )
    assert "Die Frage nennt eine andere Stelle" in bank.text
    assert "Genannt: „Sparkasse“." in bank.text
    # Staff of a city ask as their city only; trying is never logged as an ask.
    other = agent.get("/board/kb/try", params={"q": "Hundesteuer", "city": "augsburg"})
    assert other.status_code == 403 and "eigene Stadt" in other.text
    with db.read() as session:
        assert session.exec(select(KBAsk)).all() == []
    # The list page carries the try-it box.
    assert 'id="kb-try-q"' in agent.get("/board/kb").text


def test_pages_speak_english_when_asked(board: Board, demo_kb_world: World) -> None:
    coordinator = board("koordination")
    coordinator.get("/board/lang/en?next=/board/kb")
    page = coordinator.get("/board/kb", params={"city": "augsburg", "q": "Hundesteuer"})
    assert "Knowledge base" in page.text and "entries found" in page.text
    assert "Hundesteuer in Augsburg" in page.text  # the coordination filters any city
    tried = coordinator.get(
        "/board/kb/try",
        params={"q": "Wie hoch ist die Hundesteuer in Augsburg?", "city": "augsburg"},
    )
    assert "The bot would answer directly" in tried.text
    held = coordinator.get("/board/kb/try", params={"q": "wie spät ist es", "city": "augsburg"})
    assert "Why no direct answer" in held.text and "a single content word" in held.text
    bank = coordinator.get(
        "/board/kb/try", params={"q": "PIN der Sparkassen-Karte gesperrt", "city": "augsburg"}
    )
    assert "Named: „Sparkasse“." in bank.text
    form = coordinator.get(f"/board/kb/{AUX}/edit")
    assert "Question variants (one per line)" in form.text
