"""Shared machinery for `make bench`: real processes (workers, dispatcher, web server, fake
providers), bulk test data, the loopback reference, and the report.

Everything runs on this machine against the database `core.devrun bench` provides
(var/postgres-bench unless DATABASE_URL is set). Figures are reported as ratios against a
reference measured in the same run (quality.md: machines here are noisy).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django

BASE_DIR = Path(__file__).resolve().parent.parent
REPORT_JSON = BASE_DIR / "bench" / "report.json"
REPORT_MD = BASE_DIR / "bench" / "report.md"
PYTHON = sys.executable

WA_TOKEN = "bench-access-token"
WA_SECRET = "bench-app-secret"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.dummy.EmailBackend")
    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    logfile: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 8) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout=10)

    def rss_mb(self) -> list[float]:
        """Resident memory of every process in the group (the master and its workers)."""
        import psutil

        try:
            root = psutil.Process(self.popen.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        sizes = []
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                sizes.append(process.memory_info().rss / 1e6)
        return sizes


def start(name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
    logdir = BASE_DIR / "bench" / "out"
    logdir.mkdir(parents=True, exist_ok=True)
    logfile = logdir / f"{name}.log"
    handle = logfile.open("ab")
    popen = subprocess.Popen(  # noqa: S603
        args,
        cwd=BASE_DIR,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return Proc(name, popen, logfile)


def start_workers(count: int = 2, *, name: str = "worker", extra_env: dict[str, str] | None = None) -> Proc:
    env = {
        "Q_WORKERS": str(count),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    return start(name, [PYTHON, "manage.py", "qcluster"], env)


def start_dispatcher(extra_env: dict[str, str] | None = None) -> Proc:
    return start(
        "dispatcher",
        [PYTHON, "manage.py", "run_dispatcher"],
        {"DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "0", **(extra_env or {})},
    )


def start_web(port: int, workers: int = 2, threads: int = 8, extra_env: dict[str, str] | None = None) -> Proc:
    """The production web server (config/gunicorn_conf.py: gunicorn + uvicorn workers serving
    config.asgi, the fast webhook path in front of Django), without access lines."""
    proc = start(
        "web",
        [
            PYTHON,
            "-m",
            "gunicorn",
            "--config",
            "config/gunicorn_conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-control-socket",  # one per user by default: would clash with another gunicorn
        ],
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "*",
            "WEB_THREADS": str(threads),
            "WEB_ACCESS_LOG": "",
            **(extra_env or {}),
        },
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", headers={"Host": "localhost"})
    return proc


def wait_http(url: str, timeout: float = 60, headers: dict[str, str] | None = None) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, headers=headers or {})
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Fake:
    """A fake provider in its own process, driven through its /_fake/ control API."""

    def __init__(self, kind: str, *args: str, name: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = start(
            name or f"fake-{kind}",
            [PYTHON, "-m", f"tests.fakes.{kind}", "--port", str(self.port), "--record-cap", "0", *args],
        )
        wait_http(self.url + "/_fake/health")

    def get(self, path: str) -> Any:
        import requests

        return requests.get(self.url + "/_fake/" + path, timeout=30).json()

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        import requests

        return requests.post(self.url + "/_fake/" + path, json=payload or {}, timeout=60).json()

    def configure(self, **settings: Any) -> Any:
        return self.post("config", settings)

    def stats(self) -> dict[str, Any]:
        return dict(self.get("stats"))

    def sent(self) -> list[dict[str, Any]]:
        return list(self.get("sent").get("messages", []))

    def stop(self) -> None:
        self.proc.stop()


def whatsapp_fake(*args: str, name: str | None = None) -> Fake:
    """The fake Graph API with the bench app secret and token, answering at once (`--speed 0`);
    `args` add options such as `--rate 80`."""
    return Fake("whatsapp", "--app-secret", WA_SECRET, "--access-token", WA_TOKEN, "--speed", "0", *args, name=name)


# --------------------------------------------------------------------------------------------
# Tenants and data
# --------------------------------------------------------------------------------------------
def fresh_tenant(label: str) -> Any:
    """A new tenant for one scenario (old bench tenants are dropped first, keeping the DB small)."""
    from core.tenancy import connection
    from tenants.models import Tenant
    from tenants.services import tenant_onboard

    connection.set_schema_to_public()
    suffix = uuid.uuid4().hex[:6]
    schema = f"bench_{label}_{suffix}"
    result = tenant_onboard(
        schema_name=schema,
        name=f"Bench {label}",
        domain=f"{schema.replace('_', '-')}.localhost",
        admin_email=f"admin@{suffix}.example",
    )
    assert isinstance(result.tenant, Tenant)
    return result.tenant


def drop_bench_tenants() -> None:
    from core.tenancy import connection
    from tenants.models import Tenant

    connection.set_schema_to_public()
    for tenant in Tenant.objects.filter(schema_name__startswith="bench_"):
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        tenant.delete()


def whatsapp_connection(
    fake: Fake, *, rate: float, phone_number_id: str = "106540352242922", name: str = "WhatsApp Bench"
) -> Any:
    from messengers.services import connection_create

    return connection_create(
        provider="whatsapp",
        name=name,
        external_id=phone_number_id,
        account_id="102290129340398",
        credentials={"access_token": WA_TOKEN, "app_secret": WA_SECRET, "verify_token": "bench"},
        api_base=fake.url,
        by_operator=True,  # the fake on loopback: only operators may point connections there
        rate_limit_per_second=rate,
        whatsapp_tier=0,
        public_address="+49 711 000000",
    )


def bulk_subscribers(
    tenant: Any,
    count: int,
    channel_ids: list[int],
    connection_id: int,
    *,
    recent_inbound: bool = False,
    prefix: str = "49170",
    telegram: bool = False,
) -> int:
    """COPY `count` subscribers, one contact each on the connection, subscribed to the channels."""
    from django.utils import timezone

    from core.tenancy import connection

    schema = tenant.schema_name
    now = timezone.now().isoformat()
    inbound = now if recent_inbound else r"\N"
    raw = connection.connection if connection.connection is not None else None
    if raw is None:
        connection.ensure_connection()
        raw = connection.connection
    with raw.cursor() as cursor:
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{schema}".subscribers_subscriber')
        first = int(cursor.fetchone()[0]) + 1
        ids = range(first, first + count)
        buffer = io.StringIO()
        for i in ids:
            buffer.write(f"{i}\t{now}\t{now}\t\tde\t\\N\t{{}}\tactive\t\\N\tbench{i:08d}\t\n")
        with cursor.copy(
            f'COPY "{schema}".subscribers_subscriber (id, created_at, updated_at, name, language, '
            "district_id, tags, status, erased_at, link_secret, external_ref) FROM STDIN"
        ) as copy:
            copy.write(buffer.getvalue())
        buffer = io.StringIO()
        for i in ids:
            address = f"{700000000 + i}" if telegram else f"+{prefix}{i:08d}"
            buffer.write(f"{now}\t{now}\t{connection_id}\t{i}\t{address}\t\tactive\t\t\\N\t{inbound}\n")
        with cursor.copy(
            f'COPY "{schema}".messengers_contact (created_at, updated_at, connection_id, subscriber_id, '
            "address, display_name, status, status_reason, status_changed_at, last_inbound_at) "
            "FROM STDIN"
        ) as copy:
            copy.write(buffer.getvalue())
        for channel_id in channel_ids:
            buffer = io.StringIO()
            for i in ids:
                buffer.write(f"{now}\t{now}\t{i}\t{channel_id}\tactive\timport\tbench\t{now}\t\\N\t\\N\n")
            with cursor.copy(
                f'COPY "{schema}".subscribers_subscription (created_at, updated_at, subscriber_id, '
                "channel_id, status, source, source_detail, subscribed_at, confirmed_at, unsubscribed_at) "
                "FROM STDIN"
            ) as copy:
                copy.write(buffer.getvalue())
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{schema}\".subscribers_subscriber', 'id'), %s)", [first + count]
        )
        cursor.execute(f'ANALYZE "{schema}".subscribers_subscriber')
        cursor.execute(f'ANALYZE "{schema}".messengers_contact')
        cursor.execute(f'ANALYZE "{schema}".subscribers_subscription')
    raw.commit()
    return count


def telegram_connection(
    fake: Fake,
    *,
    rate: float,
    token: str = "7172552019:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    name: str = "Telegram Bench",
) -> Any:
    from messengers.services import connection_create

    return connection_create(
        provider="telegram",
        name=name,
        credentials={"bot_token": token},
        api_base=fake.url,
        by_operator=True,
        rate_limit_per_second=rate,
        public_address="@city_alerts_bot",
    )


def channel(name: str, connection_ids: list[int], *, requires_approval: bool = True) -> Any:
    from channels.models import Channel

    item = Channel.objects.create(
        name=name,
        slug=f"{name.lower()}-{uuid.uuid4().hex[:4]}",
        keywords=[name.upper()],
        requires_approval=requires_approval,
    )
    item.connections.set(connection_ids)
    return item


def approved_broadcast(
    channel_obj: Any,
    *,
    text: str = "Bench",
    template: tuple[str, str] | None = None,
    scheduled_at: Any = None,
    approve: bool = True,
) -> Any:
    """A broadcast by an editor, approved by an approver (the approval makes it due)."""
    from accounts import roles
    from accounts.services import user_create
    from broadcasts import services

    suffix = uuid.uuid4().hex[:6]
    editor = user_create(username=f"ed{suffix}", email=f"ed{suffix}@x.example", role_names=[roles.EDITOR])
    approver = user_create(username=f"ap{suffix}", email=f"ap{suffix}@x.example", role_names=[roles.APPROVER])
    broadcast = services.broadcast_create(
        author=editor,
        title=f"bench {suffix}",
        channels=[channel_obj],
        variants={"de": text},
        wa_template_name=template[0] if template else "",
        wa_template_language=template[1] if template else "",
        scheduled_at=scheduled_at,
    )
    services.broadcast_submit(broadcast=broadcast, actor=editor)
    if approve:
        services.broadcast_approve(broadcast=broadcast, actor=approver)
    return broadcast


@dataclass(frozen=True)
class WriteCounters:
    tenant_rows: int  # rows inserted, updated or deleted in the tenant's schema so far
    db_rows: int  # the same over the whole database (the task queue and public tables too)
    wal_lsn: int  # the WAL position, in bytes


def db_write_counters(schema: str) -> WriteCounters:
    """PostgreSQL's cumulative write counters; the difference of two readings is what happened in
    between. Backends report their table statistics when idle or when they end, so read the
    second one after the processes that wrote have stopped."""
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables WHERE schemaname = %s",
            [schema],
        )
        tenant_rows = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()"
        )
        db_rows = int(cursor.fetchone()[0])
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        wal_lsn = int(cursor.fetchone()[0])
    return WriteCounters(tenant_rows, db_rows, wal_lsn)


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.2, what: str = "condition") -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f}s")


@dataclass
class Sampler:
    """Samples a process group's memory in the background; `peak_mb` per process."""

    proc: Proc
    interval: float = 0.5
    peak_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        def run() -> None:
            while not self._stop.is_set():
                sizes = self.proc.rss_mb()
                if sizes:
                    self.peak_mb = max(self.peak_mb, max(sizes))
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


# --------------------------------------------------------------------------------------------
# The loopback reference: a bare aiohttp client against the same fake endpoint
# --------------------------------------------------------------------------------------------
def loopback_reference(
    fake: Fake, *, seconds: float = 8.0, concurrency: int = 64, phone_number_id: str = "106540352242922"
) -> float:
    """Requests/s a minimal aiohttp client achieves against the fake's send endpoint: the
    physical ceiling of this box for the send path (quality.md's ~3,200/s)."""
    import aiohttp

    url = f"{fake.url}/v23.0/{phone_number_id}/messages"
    headers = {"Authorization": f"Bearer {WA_TOKEN}", "Content-Type": "application/json"}

    async def main() -> int:
        done = 0
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def worker(n: int) -> None:
                nonlocal done
                i = 0
                while time.monotonic() < deadline:
                    body = {
                        "messaging_product": "whatsapp",
                        "to": f"49171{n:03d}{i:06d}",
                        "type": "template",
                        "template": {"name": "hello_world", "language": {"code": "en_US"}},
                    }
                    async with session.post(url, data=json.dumps(body), headers=headers) as response:
                        await response.read()
                    done += 1
                    i += 1

            await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return done

    started = time.monotonic()
    count = asyncio.run(main())
    return count / (time.monotonic() - started)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def write_report(key: str, data: dict[str, Any], *, notes: str = "") -> None:
    entry = {**data, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), **({"notes": notes} if notes else {})}
    if key.endswith("_smoke"):
        # smoke runs (CI) check correctness only; they never overwrite the measured report
        out = BASE_DIR / "bench" / "out" / "report-smoke.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        smoke: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        smoke[key] = entry
        out.write_text(json.dumps(smoke, indent=2, sort_keys=True, default=str) + "\n")
        return
    report: dict[str, Any] = {}
    if REPORT_JSON.exists():
        with contextlib.suppress(json.JSONDecodeError):
            report = json.loads(REPORT_JSON.read_text())
    report = {k: v for k, v in report.items() if not k.endswith("_smoke")}
    report[key] = entry
    REPORT_JSON.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    lines = [
        "# Benchmark report",
        "",
        "Written by `make bench` (`python -m bench`). Speeds are compared with a reference measured in the same",
        "run on the same machine (2 cores, shared and noisy). Raw figures: `bench/report.json`.",
        "",
    ]
    for name in sorted(report):
        lines.append(f"## {name}")
        lines.append("")
        for k, v in sorted(report[name].items()):
            if k == "notes":
                continue
            lines.append(f"- **{k}**: {json.dumps(v, default=str) if isinstance(v, dict | list) else v}")
        if report[name].get("notes"):
            lines += ["", str(report[name]["notes"])]
        lines.append("")
    REPORT_MD.write_text("\n".join(lines))


@contextlib.contextmanager
def processes(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in reversed(procs):
            proc.stop()
