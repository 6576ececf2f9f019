"""The `hotline` command line as operators use it: clear messages and exit code 1 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hotline import migrate
from hotline.app import create_app
from hotline.cli import app
from hotline.db import Database
from hotline.demo.loader import DATA_DIR
from hotline.settings import Settings
from tests.conftest import World, settings_for

runner = CliRunner()


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("HOTLINE_ENV", "test")
    monkeypatch.chdir(tmp_path)  # demo tokens go to ./var
    return db_url


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_db_upgrade_on_a_fresh_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'sub' / 'new.db'}")
    code, out, _ = invoke("db", "upgrade")
    assert code == 0 and migrate.head_revision() in out
    assert (tmp_path / "sub" / "new.db").exists()


def test_db_upgrade_with_unreachable_server_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    code, _, err = invoke("db", "upgrade")
    assert code == 1 and "migration failed" in err


def test_token_create_prints_a_working_token_last(env: str, world: World) -> None:
    code, out, _ = invoke("token", "create", "--name", "Intranet Augsburg", "--city", "augsburg")
    assert code == 0
    token = out.strip().splitlines()[-1]
    assert token.startswith("hl_")
    settings = settings_for(env)
    db = Database.from_settings(settings)
    try:
        with TestClient(create_app(settings, db)) as client:
            r = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x"], "--network"),
        (["--name", "x", "--city", "muenchen", "--network"], "--network"),
        (["--name", "x", "--city", "berlin"], "berlin"),
        (["--name", "  ", "--network"], "name"),
    ],
)
def test_token_create_bad_input(env: str, world: World, args: list[str], message: str) -> None:
    code, _, err = invoke("token", "create", *args)
    assert code == 1 and message in err


def test_user_create(env: str, world: World) -> None:
    code, out, _ = invoke(
        "user",
        "create",
        "--username",
        "neu.muc",
        "--role",
        "agent",
        "--city",
        "muenchen",
        "--password",
        "ein-langes-passwort",
    )
    assert code == 0 and "neu.muc" in out
    code, _, err = invoke(
        "user",
        "create",
        "--username",
        "neu.muc",
        "--role",
        "agent",
        "--city",
        "muenchen",
        "--password",
        "ein-langes-passwort",
    )
    assert code == 1 and "taken" in err
    code, _, err = invoke(
        "user",
        "create",
        "--username",
        "kurz",
        "--role",
        "agent",
        "--city",
        "muenchen",
        "--password",
        "kurz",
    )
    assert code == 1 and "10 characters" in err
    code, _, err = invoke(
        "user", "create", "--username", "ohnestadt", "--role", "agent", "--password", "x" * 12
    )
    assert code == 1 and "needs a city" in err


def test_catalog_import_real_files(env: str, world: World, tmp_path: Path) -> None:
    code, out, err = invoke("catalog", "import", str(DATA_DIR / "munich_services_leika.csv"))
    assert code == 0, err
    assert "287 Dienste neu" in out
    ozg = (DATA_DIR / "ozg_leika_joined.csv").read_text(encoding="utf-8").splitlines()
    part = tmp_path / "ozg.csv"
    part.write_text("\n".join(ozg[:201]) + "\n", encoding="utf-8")
    code, out, err = invoke("catalog", "import", str(part))
    assert code == 0, err
    code, out, _ = invoke("catalog", "import", str(part))
    assert "0 Dienste neu, 200 aktualisiert" in out


def test_catalog_import_refuses_bad_files_whole(env: str, world: World, tmp_path: Path) -> None:
    code, _, err = invoke("catalog", "import", str(tmp_path / "missing.csv"))
    assert code == 1 and "missing.csv: no such file" in err
    odd = tmp_path / "odd.csv"
    odd.write_text("foo,bar\n1,2\n", encoding="utf-8")
    code, _, err = invoke("catalog", "import", str(odd))
    assert code == 1 and "odd.csv:1: unknown columns" in err
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "key,name,leika_key\nok-dienst,Guter Dienst,99050012104000\nschlecht,Schlecht,123\n",
        encoding="utf-8",
    )
    code, _, err = invoke("catalog", "import", str(bad))
    assert code == 1 and "bad.csv:3" in err and "14 digits" in err
    owner = tmp_path / "owner.csv"
    owner.write_text("key,name,owner\nx-dienst,X,berlin\n", encoding="utf-8")
    code, _, err = invoke("catalog", "import", str(owner))
    assert code == 1 and "owner.csv:2" in err
    code, out, _ = invoke("catalog", "import", str(DATA_DIR / "munich_services_leika.csv"))
    assert "287 Dienste neu" in out  # nothing of the refused files was written


def test_demo_loads_once_and_prints_logins(env: str) -> None:
    code, out, err = invoke("demo", "--if-empty")
    assert code == 0, err
    assert "Demodaten geladen" in out and "koordination" in out and "hotline-demo" in out
    network_token = next(
        line.split()[-1] for line in out.splitlines() if line.strip().startswith("network")
    )
    code, _, err = invoke("demo")
    assert code == 1 and "already holds data" in err
    code, out, _ = invoke("demo", "--if-empty")
    assert code == 0 and "bereits Daten" in out and network_token in out
    settings = settings_for(env)
    db = Database.from_settings(settings)
    try:
        with TestClient(create_app(settings, db)) as client:
            h = {"Authorization": f"Bearer {network_token}"}
            tickets = client.get("/api/v1/tickets", params={"limit": 200}, headers=h).json()[
                "items"
            ]
            assert len(tickets) >= 30
            assert {t["status"] for t in tickets} == {
                "new",
                "open",
                "waiting",
                "resolved",
                "closed",
                "reopened",
            }
            assert {t["responsible_city"] for t in tickets} == {"muenchen", "augsburg", "nuernberg"}
            assert any(t["merged_into"] for t in tickets)
            cities = {c["key"]: c["ags"] for c in client.get("/api/v1/cities", headers=h).json()}
            assert cities == {
                "muenchen": "09162000",
                "augsburg": "09761000",
                "nuernberg": "09564000",
            }
            gewerbe = client.get("/api/v1/services/99050012104000", headers=h).json()
            assert gewerbe["leika_key"] == "99050012104000"
            with_ozg = client.get(
                "/api/v1/services", params={"q": "Wohnsitzanmeldung"}, headers=h
            ).json()["items"]
            assert any(s["ozg_id"] for s in with_ozg)
    finally:
        db.dispose()


def test_demo_refuses_production(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ENV", "production")
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "p" * 40)
    code, _, err = invoke("demo")
    assert code == 1 and "development only" in err


def test_serve_refuses_default_secret_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ENV", "production")
    monkeypatch.delenv("HOTLINE_SECRET_KEY", raising=False)
    code, _, err = invoke("serve")
    assert code == 1 and "HOTLINE_SECRET_KEY" in err


def test_default_port_is_8000() -> None:
    assert Settings.model_fields["port"].default == 8000


DEMO_RULES = Path(__file__).resolve().parent.parent / "hotline" / "demo" / "rules.yml"


def test_rules_tools_on_the_demo_database(env: str, tmp_path: Path) -> None:
    assert invoke("demo")[0] == 0
    code, out, err = invoke("rules", "check", str(DEMO_RULES))
    assert code == 0, err
    assert "proposed_delegation" in out and "aug-hundesteuer-an-nuernberg" in out
    assert invoke("rules", "check", str(DEMO_RULES), "--strict")[0] == 1
    code, out, _ = invoke("rules", "coverage", str(DEMO_RULES))
    assert code == 0 and "epayment-alle" in out
    code, out, _ = invoke(
        "rules",
        "explain",
        str(DEMO_RULES),
        input='{"origin_city": "nuernberg", "service": "epayment"}\n{"origin_city": "augsburg"}\n',
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["city"], x["rule"], x["via"]) for x in lines] == [
        ("augsburg", "epayment-alle", "rule"),
        ("augsburg", None, "fallback"),
    ]
    code, exported, _ = invoke("rules", "export")
    assert code == 0 and "id: epayment-alle" in exported and "cities:" not in exported
    draft = tmp_path / "draft.yml"
    draft.write_text(
        exported.replace("route_to: augsburg", "route_to: nuernberg"), encoding="utf-8"
    )
    code, out, _ = invoke("rules", "replay", str(draft), "--days", "30")
    assert code == 0 and "augsburg → nuernberg (Regel epayment-alle)" in out
    code, out, _ = invoke("rules", "import", str(draft))
    assert code == 0 and "geändert" in out
    code, exported_again, _ = invoke("rules", "export")
    assert (
        "route_to: augsburg" not in exported_again.split("id: epayment-alle")[1].split("- id:")[0]
    )


def test_rules_import_refuses_a_bad_file_and_keeps_the_rules(env: str, tmp_path: Path) -> None:
    assert invoke("demo")[0] == 0
    before = invoke("rules", "export")[1]
    bad = tmp_path / "bad.yml"
    bad.write_text(before.replace("owner: augsburg", "owner: atlantis", 1), encoding="utf-8")
    code, _, err = invoke("rules", "import", str(bad))
    assert code == 1 and "bad.yml" in err and "atlantis" in err and "owner" in err
    assert invoke("rules", "export")[1] == before
    code, _, err = invoke("rules", "import", str(tmp_path / "none.yml"))
    assert code == 1 and "no such file" in err


def test_kb_commands_are_part_of_the_hotline_cli() -> None:
    kb_dir = Path(__file__).resolve().parent.parent / "kb" / "demo"
    code, out, _ = invoke(
        "kb",
        "match",
        "--kb",
        str(kb_dir),
        "--city",
        "nuernberg",
        input="Ich habe mein BayernID Passwort vergessen\n",
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["entry"] == "bayernid-passwort-vergessen" and answer["decision"] in (
        "answer",
        "suggest",
    )


KB_DEMO = Path(__file__).resolve().parent.parent / "kb" / "demo"


def test_kb_import_export_round_trip(env: str, tmp_path: Path) -> None:
    assert invoke("demo")[0] == 0  # loads the demo KB, too
    code, out, err = invoke("kb", "import", str(KB_DEMO))
    assert code == 0, err
    assert "0 Einträge neu, 0 geändert" in out
    code, out, _ = invoke("kb", "export", str(tmp_path / "out"))
    assert code == 0
    for path in KB_DEMO.glob("*.md"):
        if path.name != "README.md":
            assert (tmp_path / "out" / path.name).read_text(encoding="utf-8") == path.read_text(
                encoding="utf-8"
            )
    edited = tmp_path / "edited"
    edited.mkdir()
    text = (KB_DEMO / "bayernid-passwort-vergessen.md").read_text(encoding="utf-8")
    (edited / "bayernid-passwort-vergessen.md").write_text(
        text.replace("questions:\n", "questions:\n  - Kennwort weg\n", 1), encoding="utf-8"
    )
    code, out, _ = invoke("kb", "import", str(edited))
    assert code == 0 and "1 geändert" in out


def test_kb_import_refuses_bad_files_whole(env: str, tmp_path: Path) -> None:
    assert invoke("demo")[0] == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    good = (KB_DEMO / "bayernid-passwort-vergessen.md").read_text(encoding="utf-8")
    (bad / "neu-ok.md").write_text(
        good.replace("id: bayernid-passwort-vergessen", "id: neu-ok"), encoding="utf-8"
    )
    (bad / "kaputt.md").write_text(
        "---\nid: kaputt\ntitle: [unclosed\n---\nText\n", encoding="utf-8"
    )
    code, _, err = invoke("kb", "import", str(bad))
    assert code == 1 and "kaputt.md:" in err
    (bad / "kaputt.md").write_text(
        good.replace("id: bayernid-passwort-vergessen", "id: kaputt").replace(
            "service: bayernid", "service: raumschiff"
        ),
        encoding="utf-8",
    )
    code, _, err = invoke("kb", "import", str(bad))
    assert code == 1 and "kaputt.md" in err and "raumschiff" in err
    code, _, _ = invoke("kb", "export", str(tmp_path / "out"))
    assert not (tmp_path / "out" / "neu-ok.md").exists()  # nothing of the refused import
    assert invoke("kb", "import", str(tmp_path / "missing"))[0] == 1


def test_kb_gaps_and_candidates(env: str, world: World, db: Database) -> None:
    from hotline.demo.loader import add_digital_services
    from hotline.services.actors import Actor
    from hotline.services.asking import MatcherCache, ask, choose
    from hotline.services.kb import import_dir

    actor = Actor(label="test", city_id=None, network=True)
    cache = MatcherCache()
    with db.write() as session:
        add_digital_services(session)
        import_dir(session, Path(__file__).resolve().parents[1] / "kb" / "demo")
        for question in (
            "Angelschein online beantragen",
            "Wie beantrage ich den Angelschein online?",
            "Straßenlaterne kaputt melden",
        ):
            ask(session, actor, cache, question=question, city="augsburg", secret="s")
        offered = ask(session, actor, cache, question="BayernID Zugang weg", city=None, secret="s")
        assert offered.entry is not None
        choose(session, actor, offered.ask_id, entry=offered.entry.id)

    code, out, _ = invoke("kb", "gaps", "--city", "augsburg")
    assert code == 0
    first = out.splitlines()[0]
    assert first.lstrip().startswith("2 ×") and "Angelschein" in first
    code, out, _ = invoke("kb", "gaps", "--json")
    assert code == 0 and len(out.splitlines()) == 2

    code, out, _ = invoke("kb", "candidates")
    assert code == 0 and "BayernID Zugang weg" in out
    candidate_id = out.split()[0].lstrip("#")
    code, out, _ = invoke("kb", "candidates", "--accept", candidate_id)
    assert code == 0 and "angenommen" in out
    code, _, err = invoke("kb", "candidates", "--accept", candidate_id)
    assert code == 1 and "already" in err
    code, _, err = invoke("kb", "gaps", "--city", "atlantis")
    assert code == 1 and "atlantis" in err
