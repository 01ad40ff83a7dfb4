"""Inbox figures for a period (issue 12, item 5): conversations opened, first-response time
(median and 90th percentile), resolution time, in total and per department.

Definitions (the cohort is the conversations *opened* in the period, [start, end)):
- opened: conversations whose first message arrived in the period (`Conversation.opened_at`);
- first response: `first_response_at - opened_at`, the first reply a person of the team sent
  (automatic out-of-office answers do not count, inbox/services.py `_queue_reply`); wall-clock
  time, office hours are not subtracted; conversations without an answer yet are left out of
  the times and counted as unanswered;
- resolution: `closed_at - opened_at` of the conversations of the cohort that are closed now
  (a reopened conversation counts again once it is closed);
- department: the department the conversation was last forwarded to; "" for none.

Why no roll-up: the figures are percentiles, which do not add up across days, so a roll-up
would have to keep every duration anyway. A tenant's inbox gets a few hundred to a few thousand
conversations a month (the bench's P8 list has 20,000 in all), so PostgreSQL's percentile_cont
over one period's conversations, found through `conversation_opened_idx`, takes milliseconds;
the page costs three queries whatever the period or number of departments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, FloatField, Func, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from inbox.models import Conversation

PERMISSION = "inbox.view_inbox_figures"
PERIODS = (7, 30, 90, 365)  # days the page offers
DEFAULT_PERIOD = 30


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression); NULLs are left out."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        super().__init__(expression, fraction=float(fraction), **extra)


def _seconds(end_field: str) -> Func:
    """Seconds from opening to `end_field` (NULL while that has not happened)."""
    interval = ExpressionWrapper(F(end_field) - F("opened_at"), output_field=DurationField())
    return Func(interval, template="EXTRACT(EPOCH FROM %(expressions)s)", output_field=FloatField())


@dataclass(frozen=True)
class InboxFigures:
    """The figures of one department (or of all: department_id None and `total` True)."""

    department_id: int | None
    department: str
    opened: int
    answered: int
    first_response_median: float | None  # seconds
    first_response_p90: float | None
    closed: int
    resolution_median: float | None
    resolution_p90: float | None
    total: bool = False

    @property
    def unanswered(self) -> int:
        return self.opened - self.answered


@dataclass(frozen=True)
class InboxReport:
    start: datetime
    end: datetime
    total: InboxFigures
    departments: list[InboxFigures]
    opened_per_day: list[tuple[date, int]]


def _figures() -> dict[str, Any]:
    response = _seconds("first_response_at")
    resolution = _seconds("closed_at")
    closed = Q(status=Conversation.Status.CLOSED, closed_at__isnull=False)
    return {
        "opened": Count("id"),
        "answered": Count("id", filter=Q(first_response_at__isnull=False)),
        "first_response_median": PercentileCont(response, 0.5),
        "first_response_p90": PercentileCont(response, 0.9),
        "closed": Count("id", filter=closed),
        "resolution_median": PercentileCont(resolution, 0.5, filter=closed),
        "resolution_p90": PercentileCont(resolution, 0.9, filter=closed),
    }


def period_bounds(days: int, *, today: date | None = None) -> tuple[datetime, datetime]:
    """The last `days` whole days up to and including today, in the tenant's time zone."""
    today = today or timezone.localdate()
    tz = timezone.get_current_timezone()
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=tz)
    return start, end


def inbox_figures(*, start: datetime, end: datetime) -> InboxReport:
    """The figures of the conversations opened in [start, end): three queries."""
    cohort = Conversation.objects.filter(opened_at__gte=start, opened_at__lt=end)
    total = cohort.aggregate(**_figures())
    per_department = (
        cohort.values("department_id", "department__name").annotate(**_figures()).order_by("department__name")
    )
    departments = [
        InboxFigures(
            department_id=row["department_id"],
            department=row["department__name"] or "",
            **{name: row[name] for name in _figures()},
        )
        for row in per_department
    ]
    # departments by name, conversations without one last
    departments.sort(key=lambda f: (f.department_id is None, f.department.casefold()))
    tz = timezone.get_current_timezone()
    counts = {
        row["day"]: row["n"]
        for row in cohort.annotate(day=TruncDate("opened_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    }
    first_day = timezone.localtime(start, tz).date()
    last_day = timezone.localtime(end - timedelta(microseconds=1), tz).date()
    opened_per_day = [
        (first_day + timedelta(days=i), counts.get(first_day + timedelta(days=i), 0))
        for i in range((last_day - first_day).days + 1)
    ]
    return InboxReport(
        start=start,
        end=end,
        total=InboxFigures(department_id=None, department="", total=True, **total),
        departments=departments,
        opened_per_day=opened_per_day,
    )
