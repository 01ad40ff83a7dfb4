"""Apply every app's schedules (core.schedules) to django-q2's Schedule table; safe to run on every deploy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_q.models import Schedule

from core.schedules import PREFIX, schedules_collect


class Command(BaseCommand):
    help = "Create, update and prune the platform's periodic jobs."

    def handle(self, *args: Any, **options: Any) -> None:
        schedules = schedules_collect()
        wanted = {PREFIX + s.name for s in schedules}
        for item in schedules:
            _, created = Schedule.objects.update_or_create(
                name=PREFIX + item.name,
                defaults={
                    "func": item.func_path,
                    "kwargs": repr(item.kwargs) if item.kwargs else None,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": item.minutes,
                    "repeats": -1,
                },
            )
            if options["verbosity"]:
                self.stdout.write(f"{'created' if created else 'updated'} {item.name} (every {item.minutes} min)")
        stale = Schedule.objects.filter(name__startswith=PREFIX).exclude(name__in=wanted)
        for schedule in stale:
            self.stdout.write(f"removed {schedule.name}")
        stale.delete()
