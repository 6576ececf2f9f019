"""KB file format: loading, validation errors with file and line, dumping."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb import KBEntry, KBFormatError, dump_entry, load_dir, load_entry, parse_entry, write_dir

GOOD = """---
id: bayernid-passwort-vergessen
title: BayernID-Passwort vergessen
service: bayernid
city: muenchen
audience: external
questions:
  - Ich habe mein Passwort für die BayernID vergessen.
  - Wie setze ich mein BayernID-Passwort zurück?
---
Klicken Sie auf der Anmeldeseite auf „Passwort vergessen?“.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_entry_reads_all_fields(tmp_path: Path) -> None:
    entry = load_entry(write(tmp_path, "a.md", GOOD))
    assert entry == KBEntry(
        id="bayernid-passwort-vergessen",
        title="BayernID-Passwort vergessen",
        service="bayernid",
        city="muenchen",
        audience="external",
        questions=[
            "Ich habe mein Passwort für die BayernID vergessen.",
            "Wie setze ich mein BayernID-Passwort zurück?",
        ],
        answer="Klicken Sie auf der Anmeldeseite auf „Passwort vergessen?“.",
        status="published",
    )


def test_defaults_shared_external_published() -> None:
    text = GOOD.replace("city: muenchen\n", "").replace("audience: external\n", "")
    entry = parse_entry(text)
    assert (entry.city, entry.audience, entry.status) == (None, "external", "published")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (GOOD.replace("audience: external", "audience: staff"), 6, "audience"),
        (GOOD.replace("city: muenchen", "citty: muenchen"), 5, "unknown field 'citty'"),
        (GOOD.replace("service: bayernid\n", ""), 2, "missing required field 'service'"),
        (GOOD.replace("  - Wie setze", "  -  [Wie setze"), 9, "invalid YAML"),
        (GOOD.replace("questions:\n", "questions: 3\n").replace("  - ", "# "), 7, "questions"),
        (
            GOOD.replace("  - Wie setze ich", "  - 42\n  - Wie setze ich").replace(
                "  - 42", "  - ''"
            ),
            9,
            "question 2",
        ),
        (
            GOOD.replace("Klicken Sie auf der Anmeldeseite auf „Passwort vergessen?“.", ""),
            11,
            "answer",
        ),
        (GOOD.replace("---\nid", "id", 1), 1, "front matter"),
        (GOOD + "status: maybe\n", None, None),
    ],
)
def test_bad_file_names_line_and_reason(
    tmp_path: Path, text: str, line: int | None, reason: str | None
) -> None:
    path = write(tmp_path, "bad.md", text)
    if reason is None:  # text after the front matter is part of the answer, not a field
        assert "status: maybe" in load_entry(path).answer
        return
    with pytest.raises(KBFormatError) as info:
        load_entry(path)
    assert info.value.path == path
    assert info.value.line == line
    assert reason in info.value.reason
    assert f"bad.md:{line}" in str(info.value)


def test_bad_status_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "s.md", GOOD.replace("audience: external", "status: maybe"))
    with pytest.raises(KBFormatError) as info:
        load_entry(path)
    assert info.value.line == 6 and "status" in info.value.reason


def test_load_dir_validates_all_files_before_returning(tmp_path: Path) -> None:
    write(tmp_path, "a.md", GOOD)
    write(tmp_path, "b.md", GOOD.replace("id: bayernid-passwort-vergessen", "id: other"))
    write(tmp_path, "c.md", GOOD.replace("title: BayernID-Passwort vergessen\n", ""))
    write(tmp_path, "d.md", GOOD.replace("id: bayernid-passwort-vergessen", "id: other"))
    with pytest.raises(KBFormatError) as info:
        load_dir(tmp_path)
    reasons = [(e.path.name if e.path else None, e.line) for e in info.value.errors]
    assert reasons == [("c.md", 2), ("d.md", 2)]
    assert "duplicate id 'other'" in info.value.errors[1].reason
    assert "and 1 more" in str(info.value)


def test_load_dir_returns_entries_in_file_order(tmp_path: Path) -> None:
    write(tmp_path, "b.md", GOOD.replace("id: bayernid-passwort-vergessen", "id: bbb"))
    write(tmp_path, "a.md", GOOD.replace("id: bayernid-passwort-vergessen", "id: aaa"))
    (tmp_path / "notes.txt").write_text("not a KB file", encoding="utf-8")
    assert [e.id for e in load_dir(tmp_path)] == ["aaa", "bbb"]


def test_dump_round_trip_is_stable(tmp_path: Path) -> None:
    entry = parse_entry(GOOD)
    entry.status = "draft"
    entry.answer = "Zeile 1\n\n- Punkt: „mit Doppelpunkt“\n- zweiter Punkt"
    text = dump_entry(entry)
    again = parse_entry(text)
    assert again == entry
    assert dump_entry(again) == text
    write_dir([entry], tmp_path / "out")
    assert load_dir(tmp_path / "out") == [entry]
    assert (tmp_path / "out" / f"{entry.id}.md").read_text(encoding="utf-8") == text


def test_dump_of_a_typical_file_keeps_its_text() -> None:
    assert dump_entry(parse_entry(GOOD)) == GOOD


def test_dump_quotes_what_yaml_would_misread() -> None:
    entry = KBEntry(
        id="x",
        title="Ja: nein?",
        service="s",
        questions=["yes", "- 1", "null", "Frage #1"],
        answer="A",
    )
    assert parse_entry(dump_entry(entry)) == entry


def test_load_dir_skips_readme_and_hidden_files(tmp_path: Path) -> None:
    write(tmp_path, "a.md", GOOD)
    write(tmp_path, "README.md", "# Notes about this KB\n")
    write(tmp_path, "_template.md", "not an entry")
    (tmp_path / ".drafts").mkdir()
    write(tmp_path / ".drafts", "x.md", "not an entry")
    assert [e.id for e in load_dir(tmp_path)] == ["bayernid-passwort-vergessen"]
