"""The commands of core.devrun (run, stop, test, exec, bench) and what they set up first: the
development encryption key and the database (DATABASE_URL, or the embedded PostgreSQL).
The help text `main` prints is the package docstring."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from core import embedded_db
from core.devrun.processes import (
    BASE_DIR,
    PYTHON,
    STOP_TIMEOUT,
    VAR,
    WEB_PORT,
    Children,
    Recorded,
    RunFile,
    _log,
    _log_lines,
    _parent_death_signal,
    _port_taken,
    _run_lock,
    _shown,
    _Signals,
    _stop_leftovers,
)


def _fernet_key() -> None:
    if os.environ.get("FERNET_KEYS"):
        return
    key_file = VAR / "fernet.key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
        _log(f"generated a development encryption key in {_shown(key_file)}")
    os.environ["FERNET_KEYS"] = key_file.read_text().strip()


def _database(pgdata: Path, *, fast: bool) -> embedded_db.EmbeddedPostgres | None:
    if os.environ.get("DATABASE_URL"):
        _log("using DATABASE_URL")
        return None
    started = time.perf_counter()
    server = embedded_db.start_or_reuse(pgdata, fast=fast)
    os.environ["DATABASE_URL"] = server.database_url
    verb = "adopted the" if server.adopted else "started" if server.owned else "reusing"
    _log(f"{verb} embedded PostgreSQL in {_shown(pgdata)} ({time.perf_counter() - started:.1f}s)")
    return server


def _banner(setup_seconds: float) -> str:
    host = urlsplit(os.environ.get("PUBLIC_URL", f"http://localhost:{WEB_PORT}"))
    port = f":{host.port}" if host.port else ""
    base = os.environ.get("BASE_DOMAIN", "localhost")
    password = "demo-demo-2026"  # noqa: S105 - the published demo password (seed_demo.DEMO_PASSWORD)
    lines = [
        "",
        "=" * 78,
        f"  Messenger-Newsletter is running (set-up took {setup_seconds:.1f}s).",
        "  Ctrl-C (or `make stop` in another terminal) stops everything.",
        "",
        f"  Operator admin   {host.scheme}://{base}{port}/admin/      operator / {password}",
        f"  Stuttgart        {host.scheme}://stuttgart.{base}{port}/admin/",
        "                   admin (admin), redaktion (editor), oberbuergermeister (approver),",
        "                   buergerbuero (inbox agent)",
        f"  Hochbahn         {host.scheme}://hochbahn.{base}{port}/admin/",
        "                   admin, leitstelle (editor), pressestelle (approver), kundendialog",
        f"  SPD              {host.scheme}://spd.{base}{port}/admin/",
        "                   admin, autorin + autor (editors), vorstand (approver), team",
        f"  Every demo login uses the password {password}.",
        "  Demo mode: two-factor enrolment is optional for these demo users only (banner).",
        "",
        f"  REST API         {host.scheme}://hochbahn.{base}{port}/api/v1/docs/   (docs/api.md)",
        "                   demo API keys: var/demo-api-keys/hochbahn.txt, var/demo-api-keys/stuttgart.txt",
        f"  Health {host.scheme}://{base}{port}/healthz   Metrics {host.scheme}://{base}{port}/metrics",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)


def cmd_run() -> int:
    started = time.perf_counter()
    VAR.mkdir(parents=True, exist_ok=True)
    stop = _Signals()
    run_lock = _run_lock()  # held (never closed) until this process ends
    if run_lock is None:
        supervisor, _, port = RunFile().read()
        where = f" (pid {supervisor.pid}, http://localhost:{port}/)" if supervisor else ""
        _log(
            f"`make run` is already running from this directory{where}. "
            "Use it, or stop it first: `make stop` (or Ctrl-C in its terminal)."
        )
        return 1
    _stop_previous_run()
    taken = _port_taken(WEB_PORT)
    if taken:
        _log(
            f"port {WEB_PORT} is in use by {taken}. Stop that program, "
            f"or start the demo on another port: PORT={WEB_PORT + 1} make run"
        )
        return 1
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DEMO_MODE", "1")
    os.environ.setdefault("PUBLIC_URL", f"http://localhost:{WEB_PORT}")
    os.environ.setdefault("Q_LOG_LEVEL", "WARNING")
    run_file = RunFile()
    me = Recorded.of("supervisor", os.getpid())
    run_file.write(me, [])
    children = Children(on_change=lambda recorded: run_file.write(me, recorded))
    server = None
    exit_code = 0
    try:
        _fernet_key()
        server = _database(VAR / "postgres", fast=False)
        if not stop:
            exit_code = _run_children(children, stop, started)
    finally:
        _log("stopping …")
        children.stop()
        if server is not None:
            server.stop()
        run_file.remove()
        _log("stopped")
    return exit_code


def _run_children(children: Children, stop: _Signals, started: float) -> int:
    _log("migrating and seeding the demo …")
    children.start("setup", [PYTHON, "manage.py", "platform_setup", "--seed-demo"])
    code = children.wait("setup", stop)
    if code is None:
        return 0  # stopped during set-up
    if code != 0:
        _log(f"set-up failed: manage.py platform_setup --seed-demo (exit {code})")
        return code
    # the production web server (gunicorn + uvicorn workers serving config.asgi), so the demo
    # takes webhooks through the same fast ingest path as production and the benchmarks
    children.start(
        "web",
        [
            PYTHON,
            "-m",
            "gunicorn",
            "--config",
            "config/gunicorn_conf.py",
            "--bind",
            f"0.0.0.0:{WEB_PORT}",
            "--no-control-socket",  # one per user by default: would clash with another gunicorn
        ],
    )
    children.start("worker", [PYTHON, "manage.py", "qcluster"])
    children.start("dispatcher", [PYTHON, "manage.py", "run_dispatcher"])
    _wait_for_web(lambda: bool(stop) or children.first_exited() is not None)
    if not stop and children.first_exited() is None:
        _log_lines(_banner(time.perf_counter() - started))
    while not stop:
        exited = children.first_exited()
        if exited:
            name, code = exited
            _log(f"{name} exited with code {code}; stopping everything")
            return code or 1
        time.sleep(0.5)
    return 0


def _stop_previous_run() -> None:
    """Stop whatever a `run` killed with -9 left (its lock is free, its run.pid is not)."""
    supervisor, children, _ = RunFile().read()
    stopped = _stop_leftovers(children)
    if stopped:
        _log(
            f"the previous `make run` (pid {supervisor.pid if supervisor else '?'}) was killed; "
            f"stopped what it left: {'; '.join(stopped)}"
        )
    RunFile().remove()


def cmd_stop() -> int:
    """`make stop`: stop a running `make run` (as Ctrl-C would), or what a killed one left, and
    any embedded PostgreSQL under var/ whose owner has ended."""
    VAR.mkdir(parents=True, exist_ok=True)
    supervisor, children, _ = RunFile().read()
    done = []
    lock = _run_lock()
    if lock is None and supervisor is not None and supervisor.alive():
        _log(f"stopping `make run` (pid {supervisor.pid}) …")
        os.kill(supervisor.pid, signal.SIGTERM)
        deadline = time.monotonic() + 4 * STOP_TIMEOUT + 60  # its children, then the database
        while supervisor.alive() and time.monotonic() < deadline:
            time.sleep(0.3)
        if supervisor.alive():
            _log(f"`make run` (pid {supervisor.pid}) did not end; killing it")
            os.kill(supervisor.pid, signal.SIGKILL)
            while supervisor.alive():
                time.sleep(0.1)
        done.append(f"stopped `make run` (pid {supervisor.pid})")
    elif lock is None:
        _log("another `make run` is starting or stopping in this directory; try again in a moment")
        return 1
    stopped = _stop_leftovers(children)
    if stopped:
        done.append(f"stopped what a killed `make run` left: {'; '.join(stopped)}")
    if supervisor is None or not supervisor.alive():
        RunFile().remove()
    for name in ("postgres", "postgres-test", "postgres-bench"):
        state = embedded_db.stop_orphaned(VAR / name)
        if state == "stopped":
            done.append(f"stopped the embedded PostgreSQL in {_shown(VAR / name)} (whoever started it had ended)")
        elif state != "not running":
            _log(f"left the embedded PostgreSQL in {_shown(VAR / name)} running: {state}")
    for line in done:
        _log(line)
    if not done:
        _log("nothing was running")
    return 0


def _wait_for_web(give_up: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not give_up():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=2)  # noqa: S310
            return
        except urllib.error.HTTPError:
            return  # answering at all is enough (503 = a check failed, shown in /healthz)
        except OSError:
            time.sleep(0.3)
    if not give_up():
        _log("web server did not answer within 60s; see its output above")


def _call(command: list[str], stop: _Signals) -> int:
    """Run one command in the foreground and wait for it.

    It stays in the terminal's process group, so Ctrl-C and the terminal reach it directly
    (pytest tears down, an interactive shell stays); the supervisor does nothing on SIGINT.
    SIGTERM or SIGHUP to the supervisor reach the command as SIGINT, then SIGTERM, then SIGKILL
    until it ends. If the supervisor is killed, the kernel sends the command SIGINT."""
    if stop:
        return 130
    proc = subprocess.Popen(  # noqa: S603
        command,
        cwd=BASE_DIR,
        preexec_fn=_parent_death_signal(signal.SIGINT),  # safe: one thread
    )
    escalation = [(signal.SIGINT, 30.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)]
    next_at = 0.0
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if stop and stop.received in (signal.SIGTERM, signal.SIGHUP) and escalation and time.monotonic() >= next_at:
            signum, grace = escalation.pop(0)
            proc.send_signal(signum)
            next_at = time.monotonic() + grace


def cmd_test(pytest_args: list[str]) -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    stop = _Signals()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    server = _database(VAR / "postgres-test", fast=True)
    try:
        return _call([PYTHON, "-m", "pytest", *pytest_args], stop)
    finally:
        if server is not None:
            server.stop()


def cmd_exec(command: list[str], *, pgdata: str = "postgres") -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    stop = _Signals()
    _fernet_key()
    server = _database(VAR / pgdata, fast=pgdata == "postgres-test")
    try:
        return _call(command, stop)
    finally:
        if server is not None:
            server.stop()


def _usage() -> str | None:
    return sys.modules["core.devrun"].__doc__


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if command == "run":
        return cmd_run()
    if command == "stop":
        return cmd_stop()
    if command == "test":
        return cmd_test(rest)
    if command == "exec":
        return cmd_exec(rest)
    if command == "bench":
        return cmd_exec(rest, pgdata="postgres-bench")
    print(f"unknown command {command!r}\n{_usage()}", file=sys.stderr)
    return 2
