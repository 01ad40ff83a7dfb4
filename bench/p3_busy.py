"""P3_BUSY: P3 (three tenants at 80 msg/s each) while the machine is busy with what a busy
production machine does besides sending: taking status webhooks. Report entry P3_BUSY.

The load: the production web server (two processes, as `make run` and P4) takes a stream of
signed WhatsApp status notifications for another tenant's deliveries from wrk (P4's client and
Lua script, cycling through the bodies), and P3's own workers apply them while they send. It
runs from before the three broadcasts are approved until they are sent, started and stopped by
the scenario. Unthrottled, it keeps both cores busy (web processes, PostgreSQL, the applying
workers), which is the worst case of the runs on a shared machine in which P3 fell to 0.85;
figures a CPU hog would not give (database and event-loop contention) come with it. The report
has the load's figures: webhooks accepted per second, the run queue (runnable processes,
sampled) and the load average at the end.

Goal as P3: each connection >= 0.90 x its limit, never above it in any second.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import harness, p3_tenants, p4_webhooks

LOAD_MESSAGES = 20_000  # 60,000 distinct events; after them wrk replays them (stored once, no-ops)
LOAD_CONNECTIONS = int(os.environ.get("P3_BUSY_CONNECTIONS", "32"))


def _run_queue() -> int:
    """Runnable processes right now (the fourth field of /proc/loadavg, minus this reader)."""
    with open("/proc/loadavg") as handle:
        return int(handle.read().split()[3].split("/")[0]) - 1


@contextlib.contextmanager
def webhook_load(fake: harness.Fake) -> Iterator[dict[str, Any]]:
    from core.tenancy import connection

    if not shutil.which("wrk"):
        raise RuntimeError("P3_BUSY needs Debian's wrk (make bench installs it)")
    figures: dict[str, Any] = {
        "kind": f"signed WhatsApp status webhooks from wrk ({LOAD_CONNECTIONS} connections, unthrottled) "
        "to 2 web processes, applied by the same workers",
    }
    workdir = Path(tempfile.mkdtemp(prefix="p3busy-"))
    web: harness.Proc | None = None
    proc = None
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append(_run_queue())

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        tenant, conn, broadcast = p4_webhooks._sending_broadcast(fake)
        run_id = base64.b32encode(os.urandom(5)).decode()
        wamids = [f"wamid.P3B{run_id}{i:08d}" for i in range(LOAD_MESSAGES)]
        p4_webhooks._seed_deliveries(tenant, broadcast.pk, conn.pk, wamids)
        connection.set_schema_to_public()
        bodies = workdir / "bodies.txt"
        p4_webhooks._bodies(bodies, wamids)
        port = harness.free_port()
        web = harness.start_web(port, workers=2)
        proc = p4_webhooks._wrk(
            f"http://127.0.0.1:{port}/webhooks/whatsapp/", bodies, connections=LOAD_CONNECTIONS, cycle=True
        )
        started = time.monotonic()
        sampler.start()
        time.sleep(5)  # the load is in its stride before the broadcasts become due
        figures["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
        yield figures
    finally:
        stop.set()
        if proc is not None:
            wrk = p4_webhooks._wrk_figures(proc)
            seconds = max(time.monotonic() - started, 1e-9)
            figures["webhooks_per_s"] = round(wrk["requests"] / seconds, 1)
            figures["webhook_p99_ms"] = wrk["p99_ms"]
            figures["non_2xx"] = wrk["non_2xx"]
        if samples:
            figures["run_queue_mean"] = round(sum(samples) / len(samples), 2)
            figures["run_queue_max"] = max(samples)
        figures["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if web is not None:
            web.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        connection.set_schema_to_public()


def run(*, smoke: bool = False) -> dict[str, object]:
    return p3_tenants.run(smoke=smoke, load=webhook_load, key="P3_BUSY")
