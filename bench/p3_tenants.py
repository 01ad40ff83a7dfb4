"""P3: three tenants send at once, each on its own WhatsApp number limited to 80 msg/s (one fake
Graph API limiting per phone number, as Meta does). Goal: every connection reaches >= 90 % of
its own limit; no tenant starves another.

Besides the share, each connection reports where time was lost (from the fake's timestamp of
every accepted request): the gaps longer than GAP_SECONDS between two requests (the pipeline
stalled: claim, batch turn, task pick-up) and the mean rate outside them (the pacer's own
pace). bench.p3_busy runs the same scenario while a background load occupies the machine."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench import harness

GAP_SECONDS = 0.05  # four slots at 78/s: longer pauses between two requests are stalls


def gap_figures(stamps: list[float], interval: float) -> dict[str, float | int]:
    """Stalls between consecutive requests (longer than GAP_SECONDS): how many, the time they
    cost beyond one slot each, the longest, and the rate of the requests outside them."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    stalls = [g for g in gaps if g > GAP_SECONDS]
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    steady = span - sum(stalls)
    return {
        "stalls": len(stalls),
        "stalled_s": round(sum(g - interval for g in stalls), 2),
        "longest_stall_s": round(max(stalls, default=0.0), 3),
        "steady_per_s": round((len(gaps) - len(stalls)) / steady, 2) if steady > 0 else 0.0,
    }


def run(
    *,
    smoke: bool = False,
    seconds: int | None = None,
    load: Callable[[harness.Fake], contextlib.AbstractContextManager[dict[str, Any]]] | None = None,
    key: str = "P3",
) -> dict[str, object]:
    """`load`, given the fake, is a context manager that keeps a background load running while
    the broadcasts send and fills its dict with figures about it (P3_BUSY)."""
    from broadcasts.models import Broadcast
    from core.tenancy import connection

    seconds = seconds or (6 if smoke else 30)
    limit = 80
    harness.drop_bench_tenants()
    fake = harness.whatsapp_fake(
        "--rate",
        str(limit),
        name="fake-wa-p3",
    )
    fake.configure(sent_cap=limit * seconds * 4)
    procs: list[harness.Proc] = []
    numbers = ["110000000000001", "110000000000002", "110000000000003"]
    try:
        setups = []
        for index, number in enumerate(numbers):
            tenant = harness.fresh_tenant(f"p3{index}")
            connection.set_tenant(tenant)
            conn = harness.whatsapp_connection(fake, rate=limit, phone_number_id=number)
            ch = harness.channel("P3", [conn.pk])
            harness.bulk_subscribers(tenant, limit * seconds, [ch.pk], conn.pk, prefix=f"4917{index}")
            setups.append((tenant, ch))
            connection.set_schema_to_public()
        workers = harness.start_workers(4)
        dispatcher = harness.start_dispatcher()
        procs += [workers, dispatcher]
        busy = contextlib.ExitStack()
        load_figures = busy.enter_context(load(fake)) if load is not None else {}
        time.sleep(3)
        broadcasts = []
        for tenant, ch in setups:  # approved back to back: they all become due at once
            connection.set_tenant(tenant)
            broadcasts.append((tenant, harness.approved_broadcast(ch, template=("hello_world", "en_US"))))
        connection.set_schema_to_public()

        def all_sent() -> bool:
            done = 0
            for tenant, broadcast in broadcasts:
                connection.set_tenant(tenant)
                done += Broadcast.objects.filter(pk=broadcast.pk, status="sent").exists()
            connection.set_schema_to_public()
            return done == len(broadcasts)

        try:
            harness.wait_for(all_sent, timeout=seconds * 5 + 90, interval=1.0, what="three broadcasts sent")
        finally:
            busy.close()
        times: dict[str, list[float]] = defaultdict(list)
        for record in fake.sent():
            times[str(record["phone_number_id"])].append(float(record["at"]))
        # every accepted request's time, for a closer look at the stalls
        stamps_file = harness.BASE_DIR / "bench" / "out" / f"{key}-stamps.json"
        stamps_file.write_text(json.dumps({number: sorted(times[number]) for number in numbers}))
        per_connection = {}
        starts = []
        for index, number in enumerate(numbers):
            stamps = sorted(times[number])
            span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
            mean = (len(stamps) - 1) / span if span else 0.0
            starts.append(stamps[0] if stamps else 0.0)
            window_max = 0
            j = 0
            for i, t in enumerate(stamps):
                while stamps[j] <= t - 1.0:
                    j += 1
                window_max = max(window_max, i - j + 1)
            per_connection[f"tenant_{index + 1}"] = {
                "limit": limit,
                "accepted": len(stamps),
                "mean_per_s": round(mean, 2),
                "share_of_limit": round(mean / limit, 3),
                "max_in_any_second": window_max,
                **(gap_figures(stamps, 1 / (limit * 0.975)) if len(stamps) > 1 else {}),
            }
        result = {
            "connections": per_connection,
            "start_spread_s": round(max(starts) - min(starts), 2),
            "min_share_of_limit": min(v["share_of_limit"] for v in per_connection.values()),
            "rejected_as_too_fast": fake.stats().get("outcomes", {}).get("error:130429", 0),
            "goal": "each connection >= 0.90 x its limit; no tenant starves another",
            "goal_met": min(v["share_of_limit"] for v in per_connection.values()) >= 0.90
            and max(v["max_in_any_second"] for v in per_connection.values()) <= limit,
            **({"load": load_figures} if load is not None else {}),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        }
        harness.log(f"{key} {result}")
        harness.write_report(key + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
