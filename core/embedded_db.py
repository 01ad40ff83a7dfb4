"""Embedded PostgreSQL for `make run` and `make test` when DATABASE_URL is unset.

Uses the PostgreSQL binaries shipped in the `pgserver` wheel, but not pgserver's own
lifetime handling (it keeps a list of client pids and never stops a server whose last
client was SIGKILLed). Our rule is simpler and matches what a developer expects:

* the process that *starts* the server owns it and stops it when it ends;
* any other process finding it running reuses it and leaves it alone;
* the owner starts a watchdog (`python -m core.embedded_db watch`, its own session) that
  holds one end of a pipe whose other end only the owner has: when the owner ends in any way,
  SIGKILL included, the watchdog sees end-of-file and stops the server if no other process
  has adopted it in the meantime;
* a server whose owner died and whose watchdog died too (`kill -9` of both, power cut) is
  adopted by the next process, so it is never orphaned for longer than until the next
  `make run` / `make test` / `make stop`.

The owner is recorded as "pid start-time" in `.<datadir>.owner` next to the data directory,
so a reused pid is never taken for the owner.

The server listens on a Unix socket only (no TCP port), so `make run` and `make test`
(separate data directories) can never clash on a port.

This module must not import Django: it runs before settings are loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg

logger = logging.getLogger("core.embedded_db")

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = BASE_DIR / "var" / "postgres"
DATABASE_NAME = "messenger"
SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root; pgserver's convention
SOCKET_NAME_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


def _import_pgserver() -> None:
    # pgserver (and each of its names below) is imported only when an embedded server is
    # actually used: `make run`/`make test` with DATABASE_URL set never load it.
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
    owner: str = ""  # the identity written to the owner file when this process owns the server
    adopted: bool = False  # owned, but started by a process that has ended
    watchdog: subprocess.Popen[bytes] | None = None
    _watchdog_fd: int | None = None
    _stopped: bool = False

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@{quote(str(self.socket_dir), safe='')}/{DATABASE_NAME}"

    def stop(self) -> None:
        """Stop the server if this process owns it (forked children never do)."""
        if not self.owned or self._stopped or os.getpid() != self.owner_pid:
            return
        self._stopped = True
        with _locked(self.pgdata):
            owner_file = _owner_file(self.pgdata)
            recorded = owner_file.read_text().strip() if owner_file.exists() else ""
            if recorded in ("", self.owner):  # not adopted by another process
                _stop_server(self.pgdata)
                owner_file.unlink(missing_ok=True)
                logger.debug("embedded PostgreSQL stopped (%s)", self.pgdata)
        if self._watchdog_fd is not None:
            os.close(self._watchdog_fd)  # the watchdog sees end-of-file, finds no owner, ends
            self._watchdog_fd = None
        if self.watchdog is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.watchdog.wait(timeout=30)


def _stop_server(pgdata: Path) -> None:
    """Fast shutdown through pg_ctl. If pg_ctl cannot do it (run as the unprivileged user, it
    fails when a parent directory has lost the permissions _prepare_dirs gave it), signal the
    postmaster directly, as pg_ctl would: SIGINT (fast shutdown), then SIGQUIT (immediate)."""
    if _run_as():
        with contextlib.suppress(OSError, AssertionError):
            from pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(pgdata)
    result = _pg_ctl(pgdata, ["-m", "fast", "-w", "stop"], check=False)
    for signum in (signal.SIGINT, signal.SIGQUIT):
        pid = _running_postmaster(pgdata)
        if pid is None:
            return
        logger.warning("pg_ctl did not stop %s (%s); sending %s to pid %s", pgdata, result.stdout.strip(), signum, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + 60
        while _running_postmaster(pgdata) is not None and time.monotonic() < deadline:
            time.sleep(0.2)


def _owner_file(pgdata: Path) -> Path:
    return pgdata.parent / f".{pgdata.name}.owner"


def _lock_file(pgdata: Path) -> Path:
    return pgdata.parent / f".{pgdata.name}.lock"


@contextlib.contextmanager
def _locked(pgdata: Path) -> Iterator[None]:
    """Serialises start, adoption and stop of one data directory across processes."""
    with open(_lock_file(pgdata), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def process_start_time(pid: int) -> float | None:
    """When process `pid` started, or None when it no longer runs (zombies included).

    On Linux in seconds since boot, from the kernel's own clock ticks (exact, and not moved by
    changes of the wall clock, unlike an epoch time derived from it); elsewhere since the epoch."""
    if sys.platform == "linux":
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            return None
        fields = stat[stat.rindex(")") + 2 :].split()  # the command may contain spaces and ")"
        if fields[0] in ("Z", "X"):
            return None
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.NoSuchProcess:
        return None


def same_process(pid: int, started: float) -> bool:
    """Whether `pid` is still the process that started at `started` (and not a reused pid)."""
    now = process_start_time(pid)
    return now is not None and abs(now - started) < 0.5


def _identity(pid: int) -> str:
    """Names one process as "pid start-time", even after its pid is reused."""
    return f"{pid} {process_start_time(pid) or 0:.2f}"


def _owner_alive(owner: str) -> bool:
    """Whether the process named in an owner file still runs (a bare pid: a file written
    before the start time was recorded)."""
    parts = owner.split()
    try:
        pid = int(parts[0])
        if len(parts) < 2:
            return process_start_time(pid) is not None
        return same_process(pid, float(parts[1]))
    except (IndexError, ValueError):
        return False


def _socket_dir(pgdata: Path) -> Path:
    candidate = pgdata
    if len(str(candidate / ".s.PGSQL.5432")) > SOCKET_NAME_MAX:
        digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
        candidate = Path("/tmp") / f"mnl-pg-{digest}"  # noqa: S108 - short path for the socket, mode 0777 like /tmp itself
    return candidate


def _pg_ctl(pgdata: Path, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Output goes to a file, not a pipe: a (re)started postmaster inherits pg_ctl's stdout, and
    # reading a pipe would wait for the server to exit. Its own session: a Ctrl-C in the terminal
    # must not kill pg_ctl half-way (the caller decides what to do after it returns).
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(  # noqa: S603 - fixed binary, arguments we build
            [_bin("pg_ctl"), "-D", str(pgdata), *args],
            check=False,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=90,
            start_new_session=True,
            **_run_as(),  # type: ignore[call-overload]
        )
        out.seek(0)
        output = out.read()
    result = subprocess.CompletedProcess(done.args, done.returncode, output, "")
    if check and done.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed ({done.returncode}):\n{output[-2000:]}")
    return result


def _running_postmaster(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    try:
        lines = pidfile.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if process_start_time(pid) is None:  # gone, or a zombie nobody has reaped yet
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


def _ctype_locale() -> str:
    """A UTF-8 character-class locale when the system has one, else "C".

    With LC_CTYPE=C, PostgreSQL's lower()/ILIKE fold ASCII only, so a search for "ÅSTRÖM" or
    "müller" misses "Åström" and "Müller". Collation stays "C" (fast, stable sort order)."""
    try:
        names = subprocess.run(  # noqa: S603
            ["locale", "-a"],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "C"
    for wanted in ("C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8", "de_DE.UTF-8", "de_DE.utf8"):
        if wanted in names:
            return wanted
    return "C"


def _initdb(pgdata: Path) -> None:
    logger.info("initialising embedded PostgreSQL in %s", pgdata)
    ctype = _ctype_locale()
    subprocess.run(  # noqa: S603
        [_bin("initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C"]
        + [f"--lc-ctype={ctype}", "-U", "postgres"],
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
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def start_or_reuse(
    pgdata: Path | str = DEFAULT_PGDATA, *, fast: bool = False, watchdog: bool = True
) -> EmbeddedPostgres:
    """Return a running embedded server for `pgdata`, starting it if needed.

    The returned object's `stop()` is registered with atexit; it only acts if this
    process started (or adopted) the server. An owner also gets a watchdog process that
    stops the server once the owner has ended without doing so (`watchdog=False`: none,
    for tests of what happens when the watchdog is gone too).
    """
    pgdata = Path(pgdata).resolve()
    socket_dir = _socket_dir(pgdata)
    _prepare_dirs(pgdata, socket_dir)
    me = _identity(os.getpid())
    with _locked(pgdata):
        owned = adopted = False
        running = _running_postmaster(pgdata)
        if running is not None:
            owner_file = _owner_file(pgdata)
            owner = owner_file.read_text().strip() if owner_file.exists() else ""
            if not owner or not _owner_alive(owner):
                # the process that started it is gone: adopt it, so it still gets stopped
                owned = adopted = True
                logger.info("adopting embedded PostgreSQL left running by pid %s", owner.split(" ")[0] or "?")
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
            _owner_file(pgdata).write_text(me)
        _wait_ready(socket_dir)
        _ensure_database(socket_dir)
    server = EmbeddedPostgres(
        pgdata=pgdata, socket_dir=socket_dir, owned=owned, owner=me if owned else "", adopted=adopted
    )
    if owned and watchdog:
        server.watchdog, server._watchdog_fd = _start_watchdog(pgdata, me)
    atexit.register(server.stop)
    return server


def _start_watchdog(pgdata: Path, owner: str) -> tuple[subprocess.Popen[bytes], int]:
    """A process that stops the server once this (owning) process has ended, however it ended.

    It reads a pipe whose write end only this process holds (not inheritable: children started
    with exec never get it; forked children do, and keep the server up while they live)."""
    read_end, write_end = os.pipe()
    try:
        watchdog = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "core.embedded_db", "watch", str(pgdata), owner],
            cwd=BASE_DIR,
            stdin=read_end,
            start_new_session=True,  # neither Ctrl-C nor a closed terminal reaches it
        )
    finally:
        os.close(read_end)
    return watchdog, write_end


def _watch(pgdata: Path, owner: str) -> int:
    """The watchdog: wait for the owner to end, then stop the server unless it was adopted."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    while os.read(0, 1024):
        pass  # the owner never writes; end-of-file means it has ended
    with _locked(pgdata):
        owner_file = _owner_file(pgdata)
        if not owner_file.exists() or owner_file.read_text().strip() != owner:
            return 0  # stopped by its owner, or adopted by another process
        if _running_postmaster(pgdata) is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone
                sys.stderr.write(
                    f"[embedded_db] the process that owned {pgdata} (pid {owner.split()[0]}) ended "
                    "without stopping it; stopping it\n"
                )
                sys.stderr.flush()
            _stop_server(pgdata)
        owner_file.unlink(missing_ok=True)
    return 0


def stop_orphaned(pgdata: Path | str) -> str:
    """Stop the server of `pgdata` if it runs and its owner has ended (`make stop`).

    Returns what was found: "stopped", "not running", or "in use by pid N" (left alone)."""
    pgdata = Path(pgdata).resolve()
    if not (pgdata / "PG_VERSION").exists():
        return "not running"
    with _locked(pgdata):
        if _running_postmaster(pgdata) is None:
            return "not running"
        owner_file = _owner_file(pgdata)
        owner = owner_file.read_text().strip() if owner_file.exists() else ""
        if owner and _owner_alive(owner):
            return f"in use by pid {owner.split()[0]}"
        _stop_server(pgdata)
        owner_file.unlink(missing_ok=True)
        return "stopped"


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


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        sys.exit(_watch(Path(sys.argv[2]), sys.argv[3]))
    sys.stderr.write("usage: python -m core.embedded_db watch PGDATA 'OWNER-PID START-TIME'\n")
    sys.exit(2)
