"""Embedded PostgreSQL for `make run` and `make test` when DATABASE_URL is unset.

Uses the PostgreSQL binaries shipped in the `pgserver` wheel, but not pgserver's own
lifetime handling (it keeps a list of client pids and never stops a server whose last
client was SIGKILLed). Our rule is simpler and matches what a developer expects:

* the process that *starts* the server owns it and stops it when it ends;
* any other process finding it running reuses it and leaves it alone;
* a server whose owner died (SIGKILL, power cut) is adopted by the next process, so it
  is never orphaned for longer than until the next `make run` / `make test`.

The server listens on a Unix socket only (no TCP port), so `make run` and `make test`
(separate data directories) can never clash on a port.

This module must not import Django: it runs before settings are loaded.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import logging
import os
import platform
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger("core.embedded_db")

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = BASE_DIR / "var" / "postgres"
DATABASE_NAME = "messenger"
SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root; pgserver's convention
SOCKET_NAME_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


def _import_pgserver() -> None:
    import warnings

    with warnings.catch_warnings():
        # importing pgserver touches platformdirs, which warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


def _pgserver_bin_path() -> Path:
    _import_pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _bin(name: str) -> str:
    return str(_pgserver_bin_path() / name)


def _run_as() -> dict[str, object]:
    """subprocess kwargs that drop to the unprivileged system user when we are root."""
    if platform.system() == "Windows" or os.geteuid() != 0:
        return {}
    _import_pgserver()
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return {"user": SYSTEM_USER}


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    socket_dir: Path
    owned: bool
    owner_pid: int = field(default_factory=os.getpid)
    _stopped: bool = False

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@{quote(str(self.socket_dir), safe='')}/{DATABASE_NAME}"

    def stop(self) -> None:
        """Stop the server if this process owns it (forked children never do)."""
        if not self.owned or self._stopped or os.getpid() != self.owner_pid:
            return
        self._stopped = True
        _pg_ctl(self.pgdata, ["-m", "fast", "-w", "stop"], check=False)
        _owner_file(self.pgdata).unlink(missing_ok=True)
        logger.debug("embedded PostgreSQL stopped (%s)", self.pgdata)


def _owner_file(pgdata: Path) -> Path:
    return pgdata.parent / f".{pgdata.name}.owner"


def _lock_file(pgdata: Path) -> Path:
    return pgdata.parent / f".{pgdata.name}.lock"


def _socket_dir(pgdata: Path) -> Path:
    candidate = pgdata
    if len(str(candidate / ".s.PGSQL.5432")) > SOCKET_NAME_MAX:
        digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
        candidate = Path("/tmp") / f"mnl-pg-{digest}"  # noqa: S108 - short path for the socket, mode 0777 like /tmp itself
    return candidate


def _pg_ctl(pgdata: Path, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Output goes to a file, not a pipe: a (re)started postmaster inherits pg_ctl's stdout, and
    # reading a pipe would wait for the server to exit.
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(  # noqa: S603 - fixed binary, arguments we build
            [_bin("pg_ctl"), "-D", str(pgdata), *args],
            check=False,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=90,
            **_run_as(),  # type: ignore[call-overload]
        )
        out.seek(0)
        output = out.read()
    result = subprocess.CompletedProcess(done.args, done.returncode, output, "")
    if check and done.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed ({done.returncode}):\n{output[-2000:]}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_postmaster(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    try:
        lines = pidfile.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if not _pid_alive(pid):
        return None
    if len(lines) >= 8 and lines[7].strip() not in ("ready", ""):
        # starting or stopping; let the caller wait
        return pid
    return pid


def _prepare_dirs(pgdata: Path, socket_dir: Path) -> None:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(exist_ok=True)
    socket_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _import_pgserver()
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

        bin_path = _pgserver_bin_path()

        entry = pwd.getpwnam(SYSTEM_USER) if _run_as() else None
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(bin_path)
        ensure_folder_permissions(bin_path, 0o055)
        ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        if entry is not None:
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            pgdata.chmod(0o700)
            if socket_dir != pgdata:
                ensure_prefix_permissions(socket_dir)
                socket_dir.chmod(0o777)


def _initdb(pgdata: Path) -> None:
    logger.info("initialising embedded PostgreSQL in %s", pgdata)
    subprocess.run(  # noqa: S603
        [_bin("initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        **_run_as(),  # type: ignore[call-overload]
    )


def _start(pgdata: Path, socket_dir: Path, fast: bool) -> None:
    options = ["-h ''", f"-k {socket_dir}", "-c max_connections=200", "-c shared_buffers=128MB"]
    if fast:
        # test server: durability is worthless, speed is not
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    log = pgdata / "server.log"
    result = _pg_ctl(pgdata, ["-w", "-t", "60", "-l", str(log), "-o", " ".join(options), "start"], check=False)
    if result.returncode != 0:
        tail = log.read_text()[-3000:] if log.exists() else result.stdout
        raise RuntimeError(f"embedded PostgreSQL did not start in {pgdata}:\n{tail}")


def _wait_ready(socket_dir: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(  # noqa: S603
            [_bin("pg_isready"), "-h", str(socket_dir), "-U", "postgres", "-q"], check=False, timeout=10
        )
        if done.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"embedded PostgreSQL at {socket_dir} did not become ready in {timeout:.0f}s")


def _ensure_database(socket_dir: Path) -> None:
    import psycopg

    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def start_or_reuse(pgdata: Path | str = DEFAULT_PGDATA, *, fast: bool = False) -> EmbeddedPostgres:
    """Return a running embedded server for `pgdata`, starting it if needed.

    The returned object's `stop()` is registered with atexit; it only acts if this
    process started (or adopted) the server.
    """
    pgdata = Path(pgdata).resolve()
    socket_dir = _socket_dir(pgdata)
    _prepare_dirs(pgdata, socket_dir)
    with open(_lock_file(pgdata), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        owned = False
        running = _running_postmaster(pgdata)
        if running is not None:
            owner = _owner_file(pgdata)
            owner_pid = int(owner.read_text() or 0) if owner.exists() else 0
            if not owner_pid or not _pid_alive(owner_pid):
                # the process that started it is gone: adopt it, so it still gets stopped
                owned = True
                logger.info("adopting embedded PostgreSQL left running by pid %s", owner_pid or "?")
        else:
            if not (pgdata / "PG_VERSION").exists():
                if any(pgdata.iterdir()):
                    raise RuntimeError(f"{pgdata} is not empty and is not a PostgreSQL data directory")
                _initdb(pgdata)
            stale = pgdata / "postmaster.pid"
            if stale.exists():
                stale.unlink()
            _start(pgdata, socket_dir, fast)
            owned = True
        if owned:
            _owner_file(pgdata).write_text(str(os.getpid()))
        _wait_ready(socket_dir)
        _ensure_database(socket_dir)
    server = EmbeddedPostgres(pgdata=pgdata, socket_dir=socket_dir, owned=owned)
    atexit.register(server.stop)
    return server


def restart(pgdata: Path | str = DEFAULT_PGDATA) -> None:
    """Restart a running embedded server in place (reliability scenario R3)."""
    pgdata = Path(pgdata).resolve()
    _pg_ctl(pgdata, ["-m", "fast", "-w", "-t", "60", "-l", str(pgdata / "server.log"), "restart"])


def remove(pgdata: Path | str) -> None:
    """Delete a stopped data directory (used by `make clean`)."""
    pgdata = Path(pgdata).resolve()
    if _running_postmaster(pgdata) is not None:
        raise RuntimeError(f"{pgdata} is still running; stop it first")
    shutil.rmtree(pgdata, ignore_errors=True)
