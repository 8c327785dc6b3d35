"""The automatic update schedule: validation and the next window, time-zone correct.

A schedule is ``{"frequency": "daily"|"weekly", "weekdays": [...], "time": "HH:MM",
"timezone": "<IANA name>"}``. Windows are wall-clock times in that zone (zoneinfo), so
"03:00 Europe/Paris" stays 03:00 local across DST changes. A local time that does not
exist (the spring-forward gap) runs at the first instant after the gap; one that exists
twice (fall back) runs once, at its first occurrence (PEP 495 ``fold=0``).

The cloud path validates here; the web API validates the same shape with its pydantic
model first. Pure functions except ``load_zone`` (reads tzdata: call it in a thread).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from clgwd.system.errors import InvalidParams as InvalidSchedule

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}")
_KEYS: Final = frozenset({"frequency", "weekdays", "time", "timezone"})


@dataclass(frozen=True)
class UpdateSchedule:
    frequency: str
    weekdays: tuple[str, ...]
    time: dt.time
    zone: zoneinfo.ZoneInfo

    def as_json(self) -> dict[str, Any]:
        return {"frequency": self.frequency, "weekdays": list(self.weekdays),
                "time": self.time.strftime("%H:%M"), "timezone": self.zone.key}


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """The named IANA zone; blocking (tzdata files)."""
    if not _ZONE.fullmatch(name):
        raise InvalidSchedule(f"timezone: {name!r} is not a time zone name such as "
                              "America/Toronto or UTC")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"timezone: unknown time zone {name!r}; use a name such as "
                              "America/Toronto or UTC") from None


def parse_schedule(params: Mapping[str, Any]) -> UpdateSchedule:
    """Validate a schedule; every error names the field. Blocking (``load_zone``)."""
    unknown = sorted(str(k) for k in params if k not in _KEYS)
    if unknown:
        raise InvalidSchedule(f"unknown field(s) {', '.join(unknown)}; expected "
                              "frequency, weekdays, time, timezone")
    frequency = params.get("frequency")
    if frequency not in ("daily", "weekly"):
        raise InvalidSchedule("frequency: must be daily or weekly")
    weekdays = params.get("weekdays", [])
    if not isinstance(weekdays, list) or not all(d in WEEKDAYS for d in weekdays) \
            or len(set(weekdays)) != len(weekdays):
        raise InvalidSchedule(f"weekdays: must be a list of distinct days from "
                              f"{', '.join(WEEKDAYS)}")
    if frequency == "weekly" and not weekdays:
        raise InvalidSchedule("weekdays: a weekly schedule needs at least one weekday")
    time_text = params.get("time")
    match = _TIME.fullmatch(time_text) if isinstance(time_text, str) else None
    if match is None:
        raise InvalidSchedule("time: must be HH:MM (24-hour clock), such as 02:30")
    zone_name = params.get("timezone")
    if not isinstance(zone_name, str):
        raise InvalidSchedule("timezone: must be a time zone name such as America/Toronto")
    ordered = tuple(d for d in WEEKDAYS if d in weekdays)
    return UpdateSchedule(frequency, ordered if frequency == "weekly" else (),
                          dt.time(int(match[1]), int(match[2])), load_zone(zone_name))


def next_window(schedule: UpdateSchedule, after: dt.datetime) -> dt.datetime:
    """The first window strictly after ``after`` (aware), as an aware UTC datetime."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    local_day = after.astimezone(schedule.zone).date()
    for offset in range(8):
        day = local_day + dt.timedelta(days=offset)
        if schedule.frequency == "weekly" and WEEKDAYS[day.weekday()] not in schedule.weekdays:
            continue
        at = dt.datetime.combine(day, schedule.time, tzinfo=schedule.zone)
        at_utc = at.astimezone(dt.UTC)  # fold=0: a gap time maps past the gap
        if at_utc > after:
            return at_utc
    raise AssertionError("a daily or weekly schedule has a window within 8 days")
