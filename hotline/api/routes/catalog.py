"""Cities and services of the cooperation: list and get (any valid token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import col, or_, select

from hotline.api.deps import ActorDep, DatabaseDep
from hotline.api.presenters import city_out, services_out
from hotline.models import City, Service
from hotline.schemas import CityOut, ErrorOut, ServiceOut, ServicePage
from hotline.services import tickets as ticket_svc
from hotline.services.catalog import city_or_404, get_city, service_or_404

router = APIRouter(tags=["catalogue"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
    422: {"model": ErrorOut},
}


@router.get("/cities", response_model=list[CityOut], responses=ERRORS)
def list_cities(_: ActorDep, db: DatabaseDep) -> list[CityOut]:
    with db.read() as session:
        return [city_out(c) for c in session.exec(select(City).order_by(col(City.name))).all()]


@router.get("/cities/{key}", response_model=CityOut, responses=ERRORS)
def get_city_(key: str, _: ActorDep, db: DatabaseDep) -> CityOut:
    with db.read() as session:
        return city_out(city_or_404(session, key))


@router.get("/services", response_model=ServicePage, responses=ERRORS)
def list_services(
    _: ActorDep,
    db: DatabaseDep,
    q: Annotated[str | None, Query(max_length=200, description="Part of the name or key")] = None,
    owner: Annotated[str | None, Query(max_length=120, description="Owner city key")] = None,
    topic: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ServicePage:
    """The service catalogue in key order, paginated with `next_cursor`."""
    with db.read() as session:
        stmt = select(Service)
        if q and q.strip():
            pattern = f"%{q.strip()}%"
            stmt = stmt.where(
                or_(
                    col(Service.name).ilike(pattern),
                    col(Service.key).ilike(pattern),
                    Service.leika_key == q.strip(),
                )
            )
        if owner:
            stmt = stmt.where(Service.owner_city_id == get_city(session, owner).id)
        if topic:
            stmt = stmt.where(Service.topic == topic)
        if cursor:
            stmt = stmt.where(col(Service.id) > ticket_svc.decode_cursor(cursor))
        rows = list(session.exec(stmt.order_by(col(Service.id)).limit(limit + 1)).all())
        next_cursor = (
            ticket_svc.encode_cursor(rows[limit - 1].id or 0) if len(rows) > limit else None
        )
        return ServicePage(items=services_out(session, rows[:limit]), next_cursor=next_cursor)


@router.get("/services/{key}", response_model=ServiceOut, responses=ERRORS)
def get_service_(key: str, _: ActorDep, db: DatabaseDep) -> ServiceOut:
    """A service by key or LeiKa key."""
    with db.read() as session:
        return services_out(session, [service_or_404(session, key)])[0]
