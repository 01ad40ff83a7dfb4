"""Office hours as people write them, one rule per line:

    Mo-Do 08:00-16:00
    Fr 08:00-12:00
    Sa, So geschlossen        (optional: days not named are closed anyway)

Days in German (Mo Di Mi Do Fr Sa So) or English (Mon Tue Wed Thu Fri Sat Sun), single, as
ranges (Mo-Fr) or lists (Mo, Mi); several time ranges per line are allowed ("Mo 8-12, 13-16").
Holidays: one date per line (2026-12-24 or 24.12.2026). `parse_hours` and `parse_holidays` raise
HoursError with a message that names the line; nothing here touches the database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils.translation import gettext as _

DAY_NAMES = {
    "mo": 0, "mon": 0, "montag": 0, "monday": 0,
    "di": 1, "tue": 1, "dienstag": 1, "tuesday": 1, "tu": 1,
    "mi": 2, "wed": 2, "mittwoch": 2, "wednesday": 2, "we": 2,
    "do": 3, "thu": 3, "donnerstag": 3, "thursday": 3, "th": 3,
    "fr": 4, "fri": 4, "freitag": 4, "friday": 4,
    "sa": 5, "sat": 5, "samstag": 5, "saturday": 5,
    "so": 6, "sun": 6, "sonntag": 6, "sunday": 6, "su": 6,
}  # fmt: skip
CLOSED_WORDS = {"geschlossen", "closed", "zu"}
_TIME = r"(\d{1,2})(?:[:.](\d{2}))?"
_RANGE = re.compile(rf"^{_TIME}\s*(?:-|–|bis|to)\s*{_TIME}(?:\s*uhr)?$")
MAX_LINES = 50


class HoursError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Hours:
    """Opening intervals per weekday (0 = Monday), sorted, non-overlapping."""

    days: tuple[tuple[tuple[time, time], ...], ...]  # 7 entries

    @property
    def always_open(self) -> bool:
        return not any(self.days)


def _day(token: str, line_no: int) -> int:
    day = DAY_NAMES.get(token.strip().strip(".").lower())
    if day is None:
        raise HoursError(_("Line %(line)d: “%(token)s” is not a weekday (Mo, Di, Mi, Do, Fr, Sa, So).")
                         % {"line": line_no, "token": token.strip()[:40]})  # fmt: skip
    return day


def _days(spec: str, line_no: int) -> set[int]:
    found: set[int] = set()
    for part in re.split(r"\s*,\s*|\s+und\s+|\s+and\s+", spec.strip()):
        if not part:
            continue
        if "-" in part or "–" in part:
            first, _sep, last = re.split(r"(-|–)", part, maxsplit=1)
            start, end = _day(first, line_no), _day(last, line_no)
            day = start
            found.add(day)
            while day != end:
                day = (day + 1) % 7
                found.add(day)
        else:
            found.add(_day(part, line_no))
    return found


def _clock(hour: str, minute: str | None, line_no: int) -> time:
    h, m = int(hour), int(minute or 0)
    if h == 24 and m == 0:
        return time.max
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise HoursError(_("Line %(line)d: %(value)s is not a time of day.")
                         % {"line": line_no, "value": f"{h}:{m:02d}"})  # fmt: skip
    return time(h, m)


def parse_hours(text: str) -> Hours:
    days: list[list[tuple[time, time]]] = [[] for _ in range(7)]
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    if len([line for line in lines if line]) > MAX_LINES:
        raise HoursError(_("At most %(count)d lines of office hours.") % {"count": MAX_LINES})
    for line_no, line in enumerate(lines, start=1):
        if not line:
            continue
        match = re.match(r"^(.*?[a-zäöüß.])\s+(?=\d|geschlossen|closed|zu\b)(.*)$", line, flags=re.IGNORECASE)
        if match is None:
            raise HoursError(_("Line %(line)d: write the days, then the times, e.g. “Mo-Fr 08:00-16:00”.")
                             % {"line": line_no})  # fmt: skip
        day_spec, time_spec = match.group(1), match.group(2).strip().lower()
        weekdays = _days(day_spec, line_no)
        if time_spec in CLOSED_WORDS:
            for day in weekdays:
                days[day] = []
            continue
        for part in re.split(r"\s*,\s*|\s+und\s+|\s+and\s+", time_spec):
            found = _RANGE.match(part.strip())
            if found is None:
                raise HoursError(_("Line %(line)d: “%(part)s” is not a time range like 08:00-16:00.")
                                 % {"line": line_no, "part": part[:40]})  # fmt: skip
            start = _clock(found.group(1), found.group(2), line_no)
            end = _clock(found.group(3), found.group(4), line_no)
            if end <= start:
                raise HoursError(_("Line %(line)d: the end of %(part)s is not after its start.")
                                 % {"line": line_no, "part": part[:40]})  # fmt: skip
            for day in weekdays:
                days[day].append((start, end))
    merged: list[tuple[tuple[time, time], ...]] = []
    for intervals in days:
        result: list[tuple[time, time]] = []
        for start, end in sorted(intervals):
            if result and start <= result[-1][1]:
                result[-1] = (result[-1][0], max(end, result[-1][1]))
            else:
                result.append((start, end))
        merged.append(tuple(result))
    return Hours(days=tuple(merged))


def parse_holidays(text: str) -> list[date]:
    found: set[date] = set()
    for line_no, raw in enumerate(text.replace("\r", "\n").replace(",", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        for pattern in ("%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y"):
            try:
                found.add(datetime.strptime(line[:20], pattern).date())  # noqa: DTZ007 - a calendar date
                break
            except ValueError:
                continue
        else:
            raise HoursError(_("Line %(line)d: “%(value)s” is not a date (24.12.2026 or 2026-12-24).")
                             % {"line": line_no, "value": line[:40]})  # fmt: skip
    if len(found) > 400:
        raise HoursError(_("At most 400 holidays."))
    return sorted(found)


def is_open(hours: Hours, holidays: set[date], at: datetime) -> bool:
    """`at` is local time in the tenant's zone."""
    if hours.always_open:
        return True
    if at.date() in holidays:
        return False
    now = at.time()
    return any(start <= now < end for start, end in hours.days[at.weekday()])


def next_opening(hours: Hours, holidays: set[date], at: datetime) -> datetime | None:
    """The next moment the office opens after `at` (local), or None if it never does."""
    if hours.always_open:
        return None
    for offset in range(0, 400):
        day = at.date() + timedelta(days=offset)
        if day in holidays:
            continue
        for start, _end in hours.days[day.weekday()]:
            moment = datetime.combine(day, start, tzinfo=at.tzinfo)
            if moment > at:
                return moment
    return None
