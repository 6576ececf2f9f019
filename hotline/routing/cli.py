"""Command line for rule files (`hotline rules check | explain | coverage`), catalogue pluggable."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from pydantic import ValidationError

from hotline.routing._coverage import coverage, coverage_csv, coverage_table
from hotline.routing._engine import Router
from hotline.routing._lint import lint
from hotline.routing._models import CityInfo, Facts, RuleSet, RuleStatus, ServiceInfo
from hotline.routing._parse import RuleSetError, catalog_from_yaml, parse_ruleset

CatalogProvider = Callable[[], tuple[list[CityInfo], list[ServiceInfo]]]
"""Returns the database's cities and services; called only when a file lacks them."""


class By(StrEnum):
    service = "service"
    topic = "topic"


FileArg = Annotated[Path, typer.Argument(help="The rule file (YAML).", show_default=False)]
CitiesOpt = Annotated[
    Path | None,
    typer.Option(
        "--cities",
        help="Cities in the layout of hotline/demo/cities.yml, for files without 'cities:'.",
    ),
]
ServicesOpt = Annotated[
    Path | None,
    typer.Option(
        "--services",
        help="Services in the layout of hotline/demo/services.yml, for files without 'services:'.",
    ),
]


class _Failed(Exception):
    def __init__(self, lines: list[str], payload: dict[str, Any] | None = None) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.payload = payload or {"errors": [{"message": line} for line in lines]}


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _Failed([f"{path}: cannot read the {what}: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise _Failed([f"{path}: the {what} is not UTF-8 text ({exc.reason})"]) from None


def _sections(text: str) -> set[str] | None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # parse_ruleset reports the syntax error with its line
    return {str(k) for k in data} if isinstance(data, dict) else None


def _load(
    file: Path,
    cities_file: Path | None,
    services_file: Path | None,
    provider: CatalogProvider | None,
) -> RuleSet:
    text = _read(file, "rule file")
    cities: list[CityInfo] | None = None
    services: list[ServiceInfo] | None = None
    sections = _sections(text)
    missing = sections is not None and not {"cities", "services"} <= sections
    if cities_file is not None or services_file is not None:
        if cities_file is None or services_file is None:
            raise _Failed(["--cities and --services must be given together"])
        try:
            cities, services = catalog_from_yaml(
                _read(cities_file, "cities file"), _read(services_file, "services file")
            )
        except (ValueError, yaml.YAMLError) as exc:
            raise _Failed([f"{cities_file} / {services_file}: invalid catalogue: {exc}"]) from None
    elif missing and provider is not None:
        cities, services = provider()
    elif missing:
        raise _Failed(
            [
                f"{file}: no cities/services in the file and no database: add 'cities:' and "
                "'services:' sections, pass --cities and --services, or run `hotline rules` "
                "with a database"
            ]
        )
    try:
        return parse_ruleset(text, source=str(file), cities=cities, services=services)
    except RuleSetError as exc:
        raise _Failed(
            str(exc).splitlines(),
            {"errors": [p.model_dump() for p in exc.problems], "source": str(file)},
        ) from None


def _fail(exc: _Failed, as_json: bool = False) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"ok": False, **exc.payload}, ensure_ascii=False))
    else:
        for line in exc.lines:
            typer.echo(line, err=True)
    raise typer.Exit(1)


def build_app(catalog_provider: CatalogProvider | None = None) -> typer.Typer:
    """The `rules` command group; `catalog_provider` supplies the database's catalogue for
    rule files without `cities:` / `services:` sections."""
    app = typer.Typer(
        help="Routing rules: validate and lint, explain decisions, show coverage.",
        no_args_is_help=True,
        add_completion=False,
    )

    @app.command()
    def check(
        file: FileArg,
        strict: Annotated[bool, typer.Option(help="Exit 1 on lint warnings too.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
        cities: CitiesOpt = None,
        services: ServicesOpt = None,
    ) -> None:
        """Validate a rule file (exit 1 on errors) and lint it (exit 1 with --strict)."""
        try:
            ruleset = _load(file, cities, services, catalog_provider)
        except _Failed as exc:
            _fail(exc, as_json)
        warnings = lint(ruleset)
        failed = strict and bool(warnings)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "ok": not failed,
                        "errors": [],
                        "warnings": [w.model_dump(mode="json") for w in warnings],
                        "rules": len(ruleset.rules),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            counts = {s: sum(r.status is s for r in ruleset.rules) for s in RuleStatus}
            summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            typer.echo(f"{file}: valid, {len(ruleset.rules)} rules ({summary or 'none'})")
            for w in warnings:
                where = f" {w.rule}" if w.rule else ""
                typer.echo(f"warning [{w.kind}]{where}: {w.message}")
            typer.echo(f"{len(warnings)} warning(s)")
        if failed:
            raise typer.Exit(1)

    @app.command()
    def explain(
        file: FileArg,
        full_trace: Annotated[
            bool, typer.Option(help="List every rule tried, not only the index's candidates.")
        ] = False,
        cities: CitiesOpt = None,
        services: ServicesOpt = None,
    ) -> None:
        """Facts as JSON lines on stdin, one decision as a JSON line out per line in."""
        try:
            router = Router(_load(file, cities, services, catalog_provider))
        except _Failed as exc:
            _fail(exc)
        bad = 0
        for number, line in enumerate(sys.stdin, start=1):
            if not line.strip():
                continue
            try:
                facts = Facts.model_validate_json(line)
            except ValidationError as exc:
                bad += 1
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}"
                    for e in exc.errors()
                )
                typer.echo(json.dumps({"line": number, "error": problems}, ensure_ascii=False))
                continue
            decision = router.decide(facts, full_trace=full_trace)
            typer.echo(json.dumps(decision.to_dict(), ensure_ascii=False))
        if bad:
            typer.echo(f"stdin: {bad} line(s) could not be read as facts", err=True)
            raise typer.Exit(1)

    @app.command("coverage")
    def coverage_command(
        file: FileArg,
        csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
        by: Annotated[By, typer.Option(help="Rows per service or per topic.")] = By.service,
        cities: CitiesOpt = None,
        services: ServicesOpt = None,
    ) -> None:
        """Origin city × service (or topic) × audience → responsible city, rule, via."""
        try:
            ruleset = _load(file, cities, services, catalog_provider)
        except _Failed as exc:
            _fail(exc)
        rows = coverage(ruleset, by.value)
        render = coverage_csv if csv else coverage_table
        typer.echo(render(rows, by.value), nl=False)

    return app


app = build_app()
"""The command group without a database: rule files must carry their catalogue (or pass
--cities/--services). The full CLI mounts build_app(provider) instead."""
