"""The update schedule: validation names the field; windows are zoneinfo-correct."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.system.errors import InvalidParams
from clgwd.system.schedule import WEEKDAYS, next_window, parse_schedule

UTC = dt.UTC
DAILY_PARIS = {"frequency": "daily", "time": "03:00", "timezone": "Europe/Paris"}


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("params", "field"), [
    ({**DAILY_PARIS, "timezone": "Mars/Olympus"}, "timezone: unknown time zone"),
    ({**DAILY_PARIS, "timezone": "../../etc/passwd"}, "timezone:"),
    ({**DAILY_PARIS, "time": "24:00"}, "time: must be HH:MM"),
    ({**DAILY_PARIS, "time": "3:00"}, "time: must be HH:MM"),
    ({**DAILY_PARIS, "frequency": "hourly"}, "frequency: must be daily or weekly"),
    ({**DAILY_PARIS, "frequency": "weekly"}, "weekdays: a weekly schedule needs"),
    ({**DAILY_PARIS, "weekdays": ["mon", "mon"]}, "weekdays: must be a list of distinct"),
    ({**DAILY_PARIS, "weekdays": ["monday"]}, "weekdays:"),
    ({**DAILY_PARIS, "extra": 1}, "unknown field(s) extra"),
    ({"frequency": "daily", "time": "03:00"}, "timezone: must be a time zone name"),
])
def test_bad_schedule_names_the_field(params: dict[str, Any], field: str) -> None:
    """Each invalid schedule is refused with a message starting at the bad field."""
    with pytest.raises(InvalidParams) as info:
        parse_schedule(params)
    assert field in info.value.message


def test_daily_window_keeps_local_time_across_spring_forward() -> None:
    """03:00 Paris is 02:00 UTC before the March 2026 change and 01:00 UTC after it."""
    schedule = parse_schedule(DAILY_PARIS)
    assert next_window(schedule, _utc(2026, 3, 27, 12)) == _utc(2026, 3, 28, 2)
    assert next_window(schedule, _utc(2026, 3, 28, 2)) == _utc(2026, 3, 29, 1)


def test_window_in_the_spring_gap_runs_right_after_it() -> None:
    """02:30 does not exist in Paris on 2026-03-29: the window is 03:30 CEST (01:30 UTC)."""
    schedule = parse_schedule({**DAILY_PARIS, "time": "02:30"})
    window = next_window(schedule, _utc(2026, 3, 28, 12))
    assert window == _utc(2026, 3, 29, 1, 30)
    assert window.astimezone(schedule.zone).strftime("%H:%M %Z") == "03:30 CEST"


def test_window_in_the_autumn_overlap_runs_once_at_the_first() -> None:
    """02:30 happens twice in Paris on 2026-10-25: the window is the first (CEST)."""
    schedule = parse_schedule({**DAILY_PARIS, "time": "02:30"})
    first = next_window(schedule, _utc(2026, 10, 24, 12))
    assert first == _utc(2026, 10, 25, 0, 30)
    assert next_window(schedule, first) == _utc(2026, 10, 26, 1, 30)


def test_weekly_window_picks_the_next_listed_day() -> None:
    """Weekly on Monday and Thursday at 23:15 Toronto, asked on a Friday (2026-11-20)."""
    schedule = parse_schedule({"frequency": "weekly", "weekdays": ["thu", "mon"],
                               "time": "23:15", "timezone": "America/Toronto"})
    assert schedule.weekdays == ("mon", "thu")
    assert next_window(schedule, _utc(2026, 11, 20, 12)) == _utc(2026, 11, 24, 4, 15)


ZONES = ("UTC", "Europe/Paris", "America/Toronto", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/Santiago", "Pacific/Chatham")


@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23), minute=st.integers(0, 59),
       days=st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
       after=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 1, 1),
                          timezones=st.just(UTC)))
def test_next_window_is_soon_after_and_on_a_listed_day(zone: str, hour: int, minute: int,
                                                       days: list[str],
                                                       after: dt.datetime) -> None:
    """Any weekly schedule: the window is after ``after``, within 8 days, on a listed
    local weekday, at the local time (or just after a DST gap)."""
    schedule = parse_schedule({"frequency": "weekly", "weekdays": days,
                               "time": f"{hour:02d}:{minute:02d}", "timezone": zone})
    window = next_window(schedule, after)
    assert after < window <= after + dt.timedelta(days=8)
    local = window.astimezone(schedule.zone)
    assert WEEKDAYS[local.weekday()] in days
    wanted = dt.datetime.combine(local.date(), schedule.time)
    assert dt.timedelta(0) <= local.replace(tzinfo=None) - wanted <= dt.timedelta(hours=1)
