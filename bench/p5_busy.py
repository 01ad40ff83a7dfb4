"""P5 while every worker is busy with another tenant's large broadcast (bench.p5_schedule;
report entry P5_busy): a due broadcast must still start within a second."""

from __future__ import annotations

from bench import p5_schedule


def run(*, smoke: bool = False) -> dict[str, object]:
    return p5_schedule.run(smoke=smoke, busy=True)
