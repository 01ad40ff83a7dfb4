"""The supervisor behind `make run`, `make test` and `make bench`.

    python -m core.devrun run                 # migrate, seed, web + workers + dispatcher, banner
    python -m core.devrun test [pytest args]  # the whole suite
    python -m core.devrun exec -- CMD ...     # any command with the same database set-up

Without DATABASE_URL it starts (or reuses) the embedded PostgreSQL under var/ and passes its
URL to every child, so the children never manage the server; it stops the server when it
ends, Ctrl-C included. `run` and `test` use separate data directories, so they never clash.
This module must not import Django.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from core import embedded_db

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var")  # the settings' VAR_DIR
PYTHON = sys.executable
WEB_PORT = int(os.environ.get("PORT", "8000"))


def _log(message: str) -> None:
    print(f"[devrun] {message}", flush=True)


def _shown(path: Path) -> str:
    return str(path.relative_to(BASE_DIR)) if path.is_relative_to(BASE_DIR) else str(path)


def _fernet_key() -> None:
    if os.environ.get("FERNET_KEYS"):
        return
    key_file = VAR / "fernet.key"
    if not key_file.exists():
        from cryptography.fernet import Fernet

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
    verb = "started" if server.owned else "reusing"
    _log(f"{verb} embedded PostgreSQL in {_shown(pgdata)} ({time.perf_counter() - started:.1f}s)")
    return server


def _manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, check=True)


class Children:
    """Child processes in their own process groups, stopped together."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.procs[name] = subprocess.Popen(  # noqa: S603
            args, cwd=BASE_DIR, start_new_session=True, env={**os.environ, **(env or {})}
        )

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def _banner(setup_seconds: float) -> str:
    from urllib.parse import urlsplit

    host = urlsplit(os.environ.get("PUBLIC_URL", f"http://localhost:{WEB_PORT}"))
    port = f":{host.port}" if host.port else ""
    base = os.environ.get("BASE_DOMAIN", "localhost")
    password = "demo-demo-2026"  # noqa: S105 - the published demo password (seed_demo.DEMO_PASSWORD)
    lines = [
        "",
        "=" * 78,
        f"  Messenger-Newsletter is running (set-up took {setup_seconds:.1f}s). Ctrl-C stops everything.",
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
        f"  Health {host.scheme}://{base}{port}/healthz   Metrics {host.scheme}://{base}{port}/metrics",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)


def cmd_run() -> int:
    started = time.perf_counter()
    VAR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DEMO_MODE", "1")
    os.environ.setdefault("PUBLIC_URL", f"http://localhost:{WEB_PORT}")
    os.environ.setdefault("Q_LOG_LEVEL", "WARNING")
    _fernet_key()
    server = _database(VAR / "postgres", fast=False)
    children = Children()
    stop_requested = False

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    exit_code = 0
    try:
        _log("migrating and seeding the demo …")
        _manage("platform_setup", "--seed-demo")
        children.start("web", [PYTHON, "manage.py", "runserver", f"0.0.0.0:{WEB_PORT}", "--noreload"])
        children.start("worker", [PYTHON, "manage.py", "qcluster"])
        for name, args in _extra_processes():
            children.start(name, args)
        _wait_for_web()
        print(_banner(time.perf_counter() - started), flush=True)
        while not stop_requested:
            exited = children.first_exited()
            if exited:
                name, code = exited
                _log(f"{name} exited with code {code}; stopping everything")
                exit_code = code or 1
                break
            time.sleep(0.5)
    except subprocess.CalledProcessError as exc:
        _log(f"set-up failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})")
        exit_code = exc.returncode or 1
    finally:
        _log("stopping …")
        children.stop()
        if server is not None:
            server.stop()
        _log("stopped")
    return exit_code


def _extra_processes() -> list[tuple[str, list[str]]]:
    """Processes later apps need in the demo (dispatcher, fake providers), if they exist."""
    extra: list[tuple[str, list[str]]] = []
    if (BASE_DIR / "broadcasts" / "management" / "commands" / "run_dispatcher.py").exists():
        extra.append(("dispatcher", [PYTHON, "manage.py", "run_dispatcher"]))
    return extra


def _wait_for_web(timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=2)  # noqa: S310
            return
        except urllib.error.HTTPError:
            return  # answering at all is enough (503 = a check failed, shown in /healthz)
        except OSError:
            time.sleep(0.3)
    _log("web server did not answer within 60s; see its output above")


def cmd_test(pytest_args: list[str]) -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    server = _database(VAR / "postgres-test", fast=True)
    try:
        return subprocess.call([PYTHON, "-m", "pytest", *pytest_args], cwd=BASE_DIR)  # noqa: S603
    finally:
        if server is not None:
            server.stop()


def cmd_exec(command: list[str], *, pgdata: str = "postgres") -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    _fernet_key()
    server = _database(VAR / pgdata, fast=pgdata == "postgres-test")
    try:
        return subprocess.call(command, cwd=BASE_DIR)  # noqa: S603
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if command == "run":
        return cmd_run()
    if command == "test":
        return cmd_test(rest)
    if command == "exec":
        return cmd_exec(rest)
    if command == "bench":
        return cmd_exec(rest, pgdata="postgres-bench")
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
