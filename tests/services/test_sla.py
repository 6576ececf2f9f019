"""Due times in service hours: opening hours, weekends, public holidays, time zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hotline.services.sla import add_service_hours, parse_service_hours

WEEKDAYS_8_16 = {d: [["08:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def berlin(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)


def test_counts_only_service_hours_across_a_weekend() -> None:
    # Friday 2026-11-20, 15:00 → 1 h on Friday, 8 h Mon, 8 h Tue, 7 h Wed → Wed 15:00.
    due = add_service_hours(berlin(2026, 11, 20, 15), 24, service_hours=WEEKDAYS_8_16)
    assert due == berlin(2026, 11, 25, 15)


def test_request_outside_hours_starts_at_next_opening() -> None:
    due = add_service_hours(berlin(2026, 11, 21, 11), 2, service_hours=WEEKDAYS_8_16)  # Saturday
    assert due == berlin(2026, 11, 23, 10)


def test_public_holidays_of_the_state_are_skipped() -> None:
    # Wed 2026-12-23 15:00: 1 h Wed, 8 h Thu 24th (a working day), Fri 25th is Christmas,
    # then the weekend → the 10th hour ends Monday 28th at 09:00.
    due = add_service_hours(berlin(2026, 12, 23, 15), 10, service_hours=WEEKDAYS_8_16, state="BY")
    assert due == berlin(2026, 12, 28, 9)
    due = add_service_hours(berlin(2027, 1, 5, 15), 2, service_hours=WEEKDAYS_8_16, state="BY")
    assert due == berlin(2027, 1, 7, 9)  # Heilige Drei Könige, Wed 6 Jan, is no service day
    assert add_service_hours(
        berlin(2027, 1, 5, 15), 2, service_hours=WEEKDAYS_8_16, state=None
    ) == berlin(2027, 1, 6, 9)


def test_split_hours_and_daylight_saving_change() -> None:
    hours = {"fri": [["08:00", "12:00"]], "mon": [["07:30", "12:00"], ["13:00", "16:00"]]}
    # Friday 2026-10-23 11:00 → 1 h Fri; DST ends on Sunday 25 Oct; Mon 07:30+4.5 h, 13:00+0.5 h.
    due = add_service_hours(berlin(2026, 10, 23, 11), 6, service_hours=hours)
    assert due == berlin(2026, 10, 26, 13, 30)


def test_no_service_hours_means_calendar_hours() -> None:
    start = datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert add_service_hours(start, 24, service_hours=None) == datetime(
        2026, 11, 22, 10, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"monday": [["08:00", "12:00"]]}, "unknown weekday"),
        ({"mon": [["12:00", "08:00"]]}, "ends before it starts"),
        ({"mon": [["8 Uhr", "12:00"]]}, "HH:MM"),
        ({"mon": [["08:00", "12:00"], ["11:00", "13:00"]]}, "overlap"),
        ({"mon": "08:00-12:00"}, "list"),
    ],
)
def test_bad_service_hours_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_service_hours(raw)
