"""Due times counted in a city's service hours, skipping weekends without hours and holidays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A city without configured hours is served around the clock (due times in calendar hours).
_MAX_DAYS = 800


def parse_service_hours(raw: Mapping[str, Any] | None) -> dict[int, list[tuple[time, time]]]:
    """`{"mon": [["08:00", "18:00"]], ...}` → weekday index → sorted (start, end) pairs.

    Raises ValueError naming the day and the interval that is wrong.
    """
    result: dict[int, list[tuple[time, time]]] = {}
    if not raw:
        return result
    for day, intervals in raw.items():
        if day not in WEEKDAYS:
            raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
        if not isinstance(intervals, Sequence) or isinstance(intervals, str):
            raise ValueError(f"{day}: expected a list of [start, end] pairs")
        pairs: list[tuple[time, time]] = []
        for interval in intervals:
            if (
                not isinstance(interval, Sequence)
                or isinstance(interval, str)
                or len(interval) != 2
            ):
                raise ValueError(f"{day}: {interval!r} is not a [start, end] pair")
            try:
                start, end = (time.fromisoformat(str(v)) for v in interval)
            except ValueError as exc:
                raise ValueError(f"{day}: {interval!r} is not of the form HH:MM") from exc
            if end <= start:
                raise ValueError(f"{day}: {interval[0]}–{interval[1]} ends before it starts")
            pairs.append((start, end))
        pairs.sort()
        for (_, prev_end), (next_start, _) in pairwise(pairs):
            if next_start < prev_end:
                raise ValueError(f"{day}: service hours overlap")
        result[WEEKDAYS.index(day)] = pairs
    return result


@lru_cache(maxsize=64)
def _holiday_calendar(state: str | None, year: int) -> frozenset[date]:
    if not state:
        return frozenset()
    try:
        return frozenset(holidays.country_holidays("DE", subdiv=state, years=year).keys())
    except NotImplementedError:
        return frozenset()


def add_service_hours(
    start: datetime,
    hours: float,
    *,
    service_hours: Mapping[str, Any] | None,
    tz: str = "Europe/Berlin",
    state: str | None = None,
) -> datetime:
    """The moment `hours` service hours after `start` (UTC in, UTC out)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    schedule = parse_service_hours(service_hours)
    if not schedule:
        return start + timedelta(hours=hours)
    zone = ZoneInfo(tz)
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(UTC)
    day = cursor.astimezone(zone).date()
    for _ in range(_MAX_DAYS):
        if day not in _holiday_calendar(state, day.year):
            for open_t, close_t in schedule.get(day.weekday(), []):
                opens = datetime.combine(day, open_t, tzinfo=zone).astimezone(UTC)
                closes = datetime.combine(day, close_t, tzinfo=zone).astimezone(UTC)
                begin = max(opens, cursor)
                if begin >= closes:
                    continue
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise ValueError("service hours too sparse to reach the due time")
