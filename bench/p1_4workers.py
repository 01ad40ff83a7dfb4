"""P1 with four worker processes (eight senders) instead of two: how the send path's throughput
grows with worker processes on this machine (bench.p1_throughput; report entry P1_4workers)."""

from __future__ import annotations

from bench import p1_throughput


def run(*, smoke: bool = False) -> dict[str, object]:
    return p1_throughput.run(smoke=smoke, workers=4, key="P1_4workers")
