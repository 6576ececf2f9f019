"""Routing rules over the API: read and change rules, delegations, and the tools to check them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from hotline.api.deps import ActorDep, DatabaseDep, SettingsDep
from hotline.errors import InvalidInput
from hotline.models import RoutingRule
from hotline.routing import (
    Facts,
    Router,
    RuleSet,
    coverage,
    coverage_csv,
    delegation_target,
    lint,
    replay,
)
from hotline.schemas import ErrorOut
from hotline.services import rules as svc
from hotline.services.catalog import city_keys

router = APIRouter(prefix="/routing", tags=["routing"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut, "description": "Not an admin of the owning (or receiving) city"},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut, "description": "Stale version, duplicate id, not proposed"},
    422: {"model": ErrorOut, "description": "The rule or rule file does not validate"},
}
YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"yaml": {"type": "string"}},
                    "required": ["yaml"],
                }
            },
        },
    }
}


class RuleOut(BaseModel):
    id: str
    owner: str
    priority: int
    position: int
    status: str
    when: dict[str, Any]
    route_to: str
    sla_hours: int | None
    description: str | None
    version: int
    delegation_to: str | None
    updated_at: datetime


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=120)
    owner: str = Field(min_length=1, max_length=64)
    priority: int = Field(default=100, ge=-1_000_000, le=1_000_000)
    status: Literal["active", "proposed", "rejected"] = "active"
    when: dict[str, Any] = Field(default_factory=dict)
    route_to: str = Field(min_length=1, max_length=64)
    sla_hours: int | None = Field(default=None, gt=0, le=10_000)
    description: str | None = Field(default=None, max_length=2000)


class RuleUpdate(RuleIn):
    version: int = Field(ge=1)


class FactsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin_city: str | None = None
    service: str | None = None
    topic: str | None = None
    audience: Literal["external", "internal"] | None = None
    channel: str | None = None
    text: str | None = Field(default=None, max_length=20_000)


class RuleEventOut(BaseModel):
    version: int
    kind: str
    actor: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


def _rules_out(session: Session, rows: list[RoutingRule]) -> list[RuleOut]:
    keys = city_keys(session)
    out = []
    for row in rows:
        rule = svc.rule_from_row(row, keys)
        out.append(
            RuleOut(
                id=row.rule_key,
                owner=keys[row.owner_city_id],
                priority=row.priority,
                position=row.position,
                status=row.status,
                when=row.conditions or {},
                route_to=row.route_to,
                sla_hours=row.sla_hours,
                description=row.description,
                version=row.version,
                delegation_to=delegation_target(rule),
                updated_at=row.updated_at,
            )
        )
    return out


async def _yaml_text(request: Request, limit: int) -> str:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw or b"null")
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidInput("The body is not valid JSON.", code="invalid_json") from exc
        if not isinstance(data, dict) or not isinstance(data.get("yaml"), str):
            raise InvalidInput(
                'Send the rule file as {"yaml": "..."} or as application/yaml.',
                code="invalid_rules",
            )
        return str(data["yaml"])
    return svc.load_yaml_text(raw, limit=limit)


# --- rules ------------------------------------------------------------------------------------


@router.get("/rules", response_model=list[RuleOut], responses=ERRORS)
def list_rules(_: ActorDep, db: DatabaseDep) -> list[RuleOut]:
    """Every rule of the network in evaluation order (partners see each other's rules)."""
    with db.read() as session:
        return _rules_out(session, svc.ordered_rules(session))


@router.get("/rules/{key}", response_model=RuleOut, responses=ERRORS)
def get_rule(key: str, _: ActorDep, db: DatabaseDep) -> RuleOut:
    with db.read() as session:
        return _rules_out(session, [svc.get_rule(session, key)])[0]


@router.get("/rules/{key}/history", response_model=list[RuleEventOut], responses=ERRORS)
def rule_history(key: str, _: ActorDep, db: DatabaseDep) -> list[RuleEventOut]:
    """Every change of the rule: version, actor, before and after."""
    with db.read() as session:
        return [
            RuleEventOut(
                version=e.version,
                kind=e.kind,
                actor=e.actor,
                before=e.before,
                after=e.after,
                created_at=e.created_at,
            )
            for e in svc.rule_history(session, key)
        ]


@router.post(
    "/rules", status_code=status.HTTP_201_CREATED, response_model=RuleOut, responses=ERRORS
)
def create_rule(data: RuleIn, actor: ActorDep, db: DatabaseDep, settings: SettingsDep) -> RuleOut:
    """Add a rule of a city you administer; a delegation to another city starts as proposed."""
    with db.write() as session:
        row = svc.save_rule(
            session, actor, data.model_dump(exclude_none=True), default_city=settings.default_city
        )
        return _rules_out(session, [row])[0]


@router.put("/rules/{key}", response_model=RuleOut, responses=ERRORS)
def update_rule(
    key: str, data: RuleUpdate, actor: ActorDep, db: DatabaseDep, settings: SettingsDep
) -> RuleOut:
    """Replace a rule; `version` must be its current version."""
    with db.write() as session:
        row = svc.save_rule(
            session,
            actor,
            data.model_dump(exclude_none=True, exclude={"version"}),
            default_city=settings.default_city,
            version=data.version,
            key=key,
        )
        return _rules_out(session, [row])[0]


@router.delete("/rules/{key}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_rule(
    key: str,
    version: Annotated[int, Query(ge=1)],
    actor: ActorDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    with db.write() as session:
        svc.delete_rule(session, actor, key, version=version, default_city=settings.default_city)
    return Response(status_code=204)


@router.post("/rules/{key}/accept", response_model=RuleOut, responses=ERRORS)
def accept_rule(key: str, actor: ActorDep, db: DatabaseDep, settings: SettingsDep) -> RuleOut:
    """The receiving city accepts a proposed delegation; from now on it routes."""
    with db.write() as session:
        row = svc.decide_delegation(
            session, actor, key, accept=True, default_city=settings.default_city
        )
        return _rules_out(session, [row])[0]


@router.post("/rules/{key}/reject", response_model=RuleOut, responses=ERRORS)
def reject_rule(key: str, actor: ActorDep, db: DatabaseDep, settings: SettingsDep) -> RuleOut:
    """The receiving city rejects a proposed delegation."""
    with db.write() as session:
        row = svc.decide_delegation(
            session, actor, key, accept=False, default_city=settings.default_city
        )
        return _rules_out(session, [row])[0]


# --- tools ------------------------------------------------------------------------------------


def _current(session: Session, settings: Any) -> RuleSet:
    return svc.current_ruleset(session, default_city=settings.default_city)


@router.post("/dry-run", responses=ERRORS)
def dry_run(facts: FactsIn, _: ActorDep, db: DatabaseDep, settings: SettingsDep) -> dict[str, Any]:
    """Who would answer this question under the current rules, with the full trace."""
    with db.read() as session:
        decision = Router(_current(session, settings)).decide(
            Facts(**facts.model_dump()), full_trace=True
        )
    return decision.to_dict()


@router.get("/coverage", responses=ERRORS)
def coverage_matrix(
    _: ActorDep,
    db: DatabaseDep,
    settings: SettingsDep,
    by: Literal["service", "topic"] = "service",
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Origin city × service (or topic) × audience → responsible city, by which rule."""
    with db.read() as session:
        ruleset = _current(session, settings)
    rows = coverage(ruleset, by=by)
    if format == "csv":
        return PlainTextResponse(coverage_csv(rows, by), media_type="text/csv")
    return [row.model_dump(mode="json") for row in rows]


@router.get("/lint", responses=ERRORS)
def lint_current(_: ActorDep, db: DatabaseDep, settings: SettingsDep) -> list[dict[str, Any]]:
    """Warnings about the current rules: shadowed, overlapping, proposed, inactive targets, gaps."""
    with db.read() as session:
        ruleset = _current(session, settings)
    return [w.model_dump(mode="json") for w in lint(ruleset)]


@router.post("/check", responses=ERRORS, openapi_extra=YAML_BODY)
async def check_file(
    request: Request, _: ActorDep, db: DatabaseDep, settings: SettingsDep
) -> dict[str, Any]:
    """Validate and lint a rule file against the database's catalogue; nothing is saved."""
    text = await _yaml_text(request, settings.max_body_bytes)

    def run() -> RuleSet:
        with db.read() as session:
            return svc.parse_against_db(
                session, text, source="upload", default_city=settings.default_city
            )

    ruleset = await run_in_threadpool(run)
    return {
        "valid": True,
        "rules": len(ruleset.rules),
        "warnings": [w.model_dump(mode="json") for w in lint(ruleset)],
    }


@router.post("/replay", responses=ERRORS, openapi_extra=YAML_BODY)
async def replay_draft(
    request: Request,
    actor: ActorDep,
    db: DatabaseDep,
    settings: SettingsDep,
    days: Annotated[int, Query(ge=1, le=3650)] = 30,
) -> dict[str, Any]:
    """Re-route the recent tickets you may see under a draft rule file: which would move?"""
    text = await _yaml_text(request, settings.max_body_bytes)

    def run() -> tuple[RuleSet, list[Any]]:
        with db.read() as session:
            draft = svc.parse_against_db(
                session, text, source="draft", default_city=settings.default_city
            )
            return draft, list(svc.recent_tickets(session, actor, days=days))

    draft, tickets = await run_in_threadpool(run)
    moves = replay(draft, tickets)
    return {"tickets": len(tickets), "moves": [m.model_dump(mode="json") for m in moves]}


@router.get("/export", responses=ERRORS)
def export(_: ActorDep, db: DatabaseDep, settings: SettingsDep) -> PlainTextResponse:
    """The network's rule set as a YAML rule file."""
    with db.read() as session:
        text = svc.export_rules(session, default_city=settings.default_city)
    return PlainTextResponse(text, media_type="application/yaml")


@router.post("/import", responses=ERRORS, openapi_extra=YAML_BODY)
async def import_file(
    request: Request, actor: ActorDep, db: DatabaseDep, settings: SettingsDep
) -> dict[str, Any]:
    """Replace the rule set (coordinators) or your city's rules (its admin); all or nothing."""
    text = await _yaml_text(request, settings.max_body_bytes)

    def run() -> svc.ImportSummary:
        with db.write() as session:
            return svc.import_rules(
                session, actor, text, source="upload", default_city=settings.default_city
            )

    summary = await run_in_threadpool(run)
    return {
        "created": summary.created,
        "updated": summary.updated,
        "deleted": summary.deleted,
        "proposed": summary.proposed,
    }
