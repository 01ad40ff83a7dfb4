"""P2: pacing. A WhatsApp connection limited to 80 msg/s and a Telegram bot at 30 msg/s send at
the same time; the fakes enforce those limits the way the real APIs do and count what arrives.
Goal: never more than the limit in any 1-second window, >= 95 % of it on average, and no
429 / 130429 caused by us."""

from __future__ import annotations

import time

from bench import harness

TG_TOKEN = "7172552019:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def run(*, smoke: bool = False, seconds: int | None = None) -> dict[str, object]:
    from broadcasts.models import Broadcast, Delivery
    from core.tenancy import connection

    seconds = seconds or (6 if smoke else 30)
    harness.drop_bench_tenants()
    wa = harness.whatsapp_fake(
        "--rate",
        "80",
        name="fake-wa-p2",
    )
    tg = harness.Fake(
        "telegram", "--bot-token", TG_TOKEN, "--any-chat", "--rate", "30", "--speed", "0", name="fake-tg-p2"
    )
    procs: list[harness.Proc] = []
    try:
        tenant = harness.fresh_tenant("p2")
        connection.set_tenant(tenant)
        wa_conn = harness.whatsapp_connection(wa, rate=80)
        tg_conn = harness.telegram_connection(tg, rate=30, token=TG_TOKEN)
        wa_channel = harness.channel("WA", [wa_conn.pk])
        tg_channel = harness.channel("TG", [tg_conn.pk])
        harness.bulk_subscribers(tenant, 80 * seconds, [wa_channel.pk], wa_conn.pk)
        harness.bulk_subscribers(tenant, 30 * seconds, [tg_channel.pk], tg_conn.pk, telegram=True)
        workers = harness.start_workers(2)
        dispatcher = harness.start_dispatcher()
        procs += [workers, dispatcher]
        time.sleep(3)
        first = harness.approved_broadcast(wa_channel, template=("hello_world", "en_US"))
        second = harness.approved_broadcast(tg_channel, text="Bench Telegram")
        harness.wait_for(
            lambda: Broadcast.objects.filter(pk__in=[first.pk, second.pk], status="sent").count() == 2,
            timeout=seconds * 4 + 60,
            interval=1.0,
            what="both broadcasts sent",
        )
        result: dict[str, object] = {}
        for label, fake, limit in (("whatsapp", wa, 80), ("telegram", tg, 30)):
            stats = fake.stats()
            sends = stats["sends"]
            limited = sum(v for k, v in stats["outcomes"].items() if "rate" in k)
            result[label] = {
                "limit": limit,
                "accepted": sends["accepted"],
                "max_in_any_second": sends["max_in_any_second"],
                "max_per_calendar_second": sends["max_per_calendar_second"],
                "mean_per_s": sends["mean_per_s"],
                "mean_share_of_limit": round(float(sends["mean_per_s"]) / limit, 3),
                "rate_limited_by_fake": limited,
            }
        failed = Delivery.objects.filter(broadcast__in=[first, second], status="failed").count()
        result["failed_deliveries"] = failed
        result["ok"] = failed == 0 and all(
            v["max_in_any_second"] <= v["limit"] and not v["rate_limited_by_fake"]  # type: ignore[index]
            for k, v in result.items()
            if k in ("whatsapp", "telegram")
        )
        result["goal"] = "max_in_any_second <= limit; mean >= 0.95 x limit; no 429/130429"
        harness.log(f"P2 {result}")
        harness.write_report("P2" + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        wa.stop()
        tg.stop()
        connection.set_schema_to_public()
