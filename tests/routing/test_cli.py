"""The `rules` command group: check, explain and coverage, with and without a catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotline.routing import CityInfo, ServiceInfo
from hotline.routing.cli import app, build_app
from tests.routing.builders import DEMO, rules_yaml

runner = CliRunner()
DEMO_CATALOG = ["--cities", str(DEMO / "cities.yml"), "--services", str(DEMO / "services.yml")]


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "rules.yml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def test_check_valid_file(write):
    result = runner.invoke(
        app, ["check", write(rules_yaml("- {id: a, owner: muenchen, route_to: origin_city}"))]
    )
    assert result.exit_code == 0, result.output
    assert "valid, 1 rules (1 active)" in result.output
    assert "0 warning(s)" in result.output


def test_check_invalid_file_names_rule_field_and_line(write):
    path = write(rules_yaml("- {id: a, owner: muenchen, route_to: berlin}"))
    result = runner.invoke(app, ["check", path])
    assert result.exit_code == 1
    assert (
        f"{path}: line 15: rule 'a', field 'route_to': target city does not exist" in result.output
    )


def test_check_json(write):
    path = write(rules_yaml("- {id: a, owner: muenchen, route_to: berlin}"))
    result = runner.invoke(app, ["check", path, "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["errors"][0] == {**data["errors"][0], "rule": "a", "field": "route_to", "line": 15}


def test_check_warnings_exit_1_only_with_strict(write):
    path = write(rules_yaml("- {id: d, owner: augsburg, status: proposed, route_to: nuernberg}"))
    result = runner.invoke(app, ["check", path])
    assert result.exit_code == 0
    assert "warning [proposed_delegation] d:" in result.output
    assert runner.invoke(app, ["check", path, "--strict"]).exit_code == 1
    data = json.loads(runner.invoke(app, ["check", path, "--json"]).stdout)
    assert data["ok"] is True
    assert {w["kind"] for w in data["warnings"]} >= {"proposed_delegation"}


def test_file_without_catalogue_and_no_database_is_an_error(write):
    path = write("default_city: muenchen\nrules: []\n")
    result = runner.invoke(app, ["check", path])
    assert result.exit_code == 1
    assert "no cities/services in the file and no database" in result.output


def test_catalogue_provider_is_used_for_files_without_catalogue(write):
    calls = []

    def provider() -> tuple[list[CityInfo], list[ServiceInfo]]:
        calls.append(1)
        return [CityInfo(key="passau", name="Passau")], [ServiceInfo(key="x", name="X")]

    path = write("default_city: passau\nrules:\n  - {id: a, owner: passau, route_to: passau}\n")
    result = runner.invoke(build_app(provider), ["check", path])
    assert result.exit_code == 0, result.output
    assert calls == [1]
    # A file with its own catalogue never asks the database.
    runner.invoke(build_app(provider), ["check", write(rules_yaml(""), "full.yml")])
    assert calls == [1]


def test_missing_file(tmp_path):
    result = runner.invoke(app, ["check", str(tmp_path / "nope.yml")])
    assert result.exit_code == 1
    assert "nope.yml: cannot read the rule file" in result.output


def test_explain_one_json_line_per_input_line(write):
    path = write(
        rules_yaml("- {id: pay, owner: augsburg, when: {service: epayment}, route_to: augsburg}")
    )
    lines = [
        {"origin_city": "nuernberg", "service": "epayment"},
        {"origin_city": "nuernberg", "audience": "internal", "text": "Hallo"},
        {},
    ]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\n\n"
    result = runner.invoke(app, ["explain", path], input=stdin)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(o["city"], o["rule"], o["via"]) for o in out] == [
        ("augsburg", "pay", "rule"),
        ("nuernberg", None, "fallback"),
        ("muenchen", None, "default"),
    ]
    assert all(isinstance(o["trace"], list) and o["trace"] for o in out)


def test_explain_full_trace(write):
    path = write(
        rules_yaml("- {id: pay, owner: augsburg, when: {service: epayment}, route_to: augsburg}")
    )
    result = runner.invoke(
        app, ["explain", path, "--full-trace"], input='{"service": "bayernid"}\n'
    )
    trace = json.loads(result.stdout)["trace"]
    assert trace[0]["rule"] == "pay" and trace[0]["condition"] == "service"


def test_explain_bad_lines_are_reported_and_exit_1(write):
    path = write(rules_yaml(""))
    stdin = '{"origin_city": "augsburg"}\nnot json\n{"audience": "buerger"}\n{"colour": 1}\n'
    result = runner.invoke(app, ["explain", path], input=stdin)
    assert result.exit_code == 1
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out[0]["city"] == "augsburg"
    assert [o.get("line") for o in out[1:]] == [2, 3, 4]
    assert "audience" in out[2]["error"]
    assert "3 line(s)" in result.stderr


def test_explain_with_invalid_rules(write):
    result = runner.invoke(app, ["explain", write("rules: [")], input="{}\n")
    assert result.exit_code == 1
    assert "YAML syntax error" in result.output


def test_coverage_table_and_csv(write):
    path = write(
        rules_yaml("- {id: pay, owner: augsburg, when: {service: epayment}, route_to: augsburg}")
    )
    table = runner.invoke(app, ["coverage", path])
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == [
        "origin_city",
        "service",
        "audience",
        "city",
        "rule",
        "via",
    ]
    csv_out = runner.invoke(app, ["coverage", path, "--csv", "--by", "topic"])
    assert csv_out.exit_code == 0
    assert csv_out.stdout.splitlines()[0] == "origin_city,topic,audience,city,rule,via"
    # By topic there is no service, so the service rule cannot decide.
    assert "nuernberg,zahlung,external,nuernberg,,fallback" in csv_out.stdout


def test_demo_rules_check_with_the_demo_catalogue():
    result = runner.invoke(app, ["check", str(DEMO / "rules.yml"), *DEMO_CATALOG])
    assert result.exit_code == 0, result.output
    assert "1 proposed" in result.output
