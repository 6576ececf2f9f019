"""The `kb` command line: match from stdin, check against a labelled file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kb import KBEntry, write_dir
from kb.cli import app

runner = CliRunner()


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    entries = [
        KBEntry(
            "bayernid-passwort-vergessen",
            "BayernID-Passwort vergessen",
            "bayernid",
            questions=["Ich habe mein Passwort für die BayernID vergessen."],
            answer="Klicken Sie auf „Passwort vergessen?“.",
        ),
        KBEntry(
            "parkausweis-muenchen",
            "Anwohnerparkausweis in München",
            "parken",
            city="muenchen",
            questions=["Wie beantrage ich einen Anwohnerparkausweis?"],
            answer="Online im Stadtportal.",
        ),
        KBEntry(
            "store-intern",
            "Formular im Store veröffentlichen",
            "store",
            audience="internal",
            questions=["Wie veröffentliche ich ein Formular im Store?"],
            answer="Über das Redaktionssystem.",
        ),
    ]
    write_dir(entries, tmp_path / "kb")
    return tmp_path / "kb"


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_match_writes_one_json_object_per_question(kb_dir: Path) -> None:
    stdin = "Kennwort für BayernID vergessen\n\nWie wird das Wetter?\nAnwohnerparkausweis\n"
    result = runner.invoke(app, ["match", "--kb", str(kb_dir), "--city", "muenchen"], input=stdin)
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert [o["question"] for o in out] == [
        "Kennwort für BayernID vergessen",
        "Wie wird das Wetter?",
        "Anwohnerparkausweis",
    ]
    assert out[0]["decision"] == "answer"
    assert out[0]["entry"] == "bayernid-passwort-vergessen"
    assert out[1]["decision"] == "handover"
    assert out[2]["entry"] == "parkausweis-muenchen"
    assert set(out[0]) == {"question", "decision", "entry", "score", "alternatives"}
    assert isinstance(out[0]["alternatives"], list)
    assert "für" in result.output  # ensure_ascii=False


def test_match_respects_city_and_audience(kb_dir: Path) -> None:
    stdin = "Anwohnerparkausweis beantragen\nFormular im Store veröffentlichen\n"
    external = lines(runner.invoke(app, ["match", "--kb", str(kb_dir)], input=stdin).output)
    assert all(o["entry"] not in ("parkausweis-muenchen", "store-intern") for o in external)
    for o in external:
        assert not {"parkausweis-muenchen", "store-intern"} & set(o["alternatives"])  # type: ignore[arg-type]
    staff = runner.invoke(
        app, ["match", "--kb", str(kb_dir), "--audience", "internal"], input=stdin
    )
    assert lines(staff.output)[1]["entry"] == "store-intern"
    bad = runner.invoke(app, ["match", "--kb", str(kb_dir), "--audience", "staff"], input=stdin)
    assert bad.exit_code != 0


def labelled(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    return path


ROWS: list[dict[str, object]] = [
    {
        "q": "BayernID Passwort vergessen",
        "city": None,
        "audience": "external",
        "expect": "bayernid-passwort-vergessen",
    },
    {
        "q": "Anwohnerparkausweis beantragen",
        "city": "muenchen",
        "audience": "external",
        "expect": "parkausweis-muenchen",
    },
    {"q": "Wie wird das Wetter?", "city": "augsburg", "audience": "external", "expect": None},
]


def test_check_prints_the_figures(kb_dir: Path, tmp_path: Path) -> None:
    path = labelled(tmp_path, ROWS)
    result = runner.invoke(app, ["check", "--kb", str(kb_dir), str(path)])
    assert result.exit_code == 0, result.output
    assert re.search(r"top-1 accuracy \(answerable\) +100.0 %", result.output)
    assert "wrong confident answers" in result.output
    as_json = runner.invoke(app, ["check", "--kb", str(kb_dir), str(path), "--json"])
    data = json.loads(as_json.output)
    assert (data["answerable"], data["unanswerable"], data["top1"]) == (2, 1, 1.0)
    base = runner.invoke(
        app, ["check", "--kb", str(kb_dir), str(path), "--baseline", "token_set", "--json"]
    )
    assert json.loads(base.output)["name"].startswith("rapidfuzz-token_set")
    both = runner.invoke(app, ["check", "--kb", str(kb_dir), str(path), "--compare", "--json"])
    assert len(json.loads(both.output)) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"q": "x", "expect": "nope"}\n', "questions.jsonl:1: unknown entry id 'nope'"),
        ('{"q": "x", "expect": null}\nnot json\n', "questions.jsonl:2: not valid JSON"),
    ],
)
def test_check_bad_input_names_file_and_line(
    kb_dir: Path, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "questions.jsonl"
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["check", "--kb", str(kb_dir), str(path)])
    assert result.exit_code == 1
    assert message in result.output


def test_check_missing_file_and_bad_kb(kb_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--kb", str(kb_dir), str(tmp_path / "none.jsonl")])
    assert result.exit_code == 1 and "none.jsonl" in result.output
    (kb_dir / "broken.md").write_text("---\nid: x\n---\nA\n", encoding="utf-8")
    result = runner.invoke(app, ["match", "--kb", str(kb_dir)], input="x\n")
    assert result.exit_code == 1 and "broken.md:2" in result.output


def test_familienlotse_command(tmp_path: Path) -> None:
    nlu = Path(__file__).parents[1] / "data" / "familienlotse" / "nlu.md"
    result = runner.invoke(app, ["familienlotse", str(nlu), "--json"])
    assert result.exit_code == 0, result.output
    assert [r["name"].split(" ")[0] for r in json.loads(result.output)] == [
        "matcher",
        "rapidfuzz-wratio",
        "rapidfuzz-token_set",
    ]
