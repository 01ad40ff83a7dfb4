"""P3: three tenants send at once, each on its own WhatsApp number limited to 80 msg/s (one fake
Graph API limiting per phone number, as Meta does). Goal: every connection reaches >= 90 % of
its own limit; no tenant starves another."""

from __future__ import annotations

import time
from collections import defaultdict

from bench import harness


def run(*, smoke: bool = False, seconds: int | None = None) -> dict[str, object]:
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

        harness.wait_for(all_sent, timeout=seconds * 5 + 90, interval=1.0, what="three broadcasts sent")
        times: dict[str, list[float]] = defaultdict(list)
        for record in fake.sent():
            times[str(record["phone_number_id"])].append(float(record["at"]))
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
            }
        result = {
            "connections": per_connection,
            "start_spread_s": round(max(starts) - min(starts), 2),
            "min_share_of_limit": min(v["share_of_limit"] for v in per_connection.values()),
            "goal": "each connection >= 0.90 x its limit; no tenant starves another",
        }
        harness.log(f"P3 {result}")
        harness.write_report("P3" + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
