"""The supervisor behind `make run`, `make stop`, `make test` and `make bench`.

    python -m core.devrun run                 # migrate, seed, web + workers + dispatcher, banner
    python -m core.devrun stop                # stop a running `make run`, or what a killed one left
    python -m core.devrun test [pytest args]  # the whole suite
    python -m core.devrun exec -- CMD ...     # any command with the same database set-up

Without DATABASE_URL it starts (or reuses) the embedded PostgreSQL under var/ and passes its
URL to every child, so the children never manage the server; it stops the server when it
ends. `run` and `test` use separate data directories, so they never clash.

Nothing outlives it:
* `run`: Ctrl-C (SIGINT), SIGTERM and a closed terminal (SIGHUP, or a terminal that hung up
  without sending it) stop the children, each with SIGTERM, then the database. `test`/`exec`:
  the command stays in the terminal's process group and gets Ctrl-C itself; SIGTERM or SIGHUP
  to the supervisor reach it as SIGINT, then SIGTERM, then SIGKILL, until it ends.
* Each child is started with a parent-death signal (Linux PR_SET_PDEATHSIG): when the supervisor
  is killed outright (SIGKILL, out of memory), the kernel sends every child SIGTERM (`run`) or
  SIGINT (`test`, `exec`: what Ctrl-C would have sent); qcluster then stops its own worker
  processes. The embedded PostgreSQL is a daemon, not a child: its watchdog (core.embedded_db)
  stops it once the supervisor is gone.
* `run` records itself and its children in var/run.pid. If all of that failed too (everything
  killed with -9), the next `run`, or `stop`, stops what the dead run left: only processes
  whose start time, working directory and command line match the record, so a reused pid is
  never hit. A second `run` while one runs (it holds var/run.lock) says so instead of failing
  on the port; so does a web port taken by another program, before the slow set-up.

This module must not import Django.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil

from core import embedded_db

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var").resolve()  # the settings' VAR_DIR
RUN_FILE = VAR / "run.pid"
PYTHON = sys.executable
WEB_PORT = int(os.environ.get("PORT", "8000"))
STOP_TIMEOUT = 15  # seconds a child gets to end after SIGTERM before it is killed
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _log(message: str) -> None:
    _log_lines(f"[devrun] {message}")


def _log_lines(text: str) -> None:
    try:
        print(text, flush=True)
    except OSError:
        pass  # the terminal is gone (SIGHUP): keep stopping, silently


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
    verb = "adopted the" if server.adopted else "started" if server.owned else "reusing"
    _log(f"{verb} embedded PostgreSQL in {_shown(pgdata)} ({time.perf_counter() - started:.1f}s)")
    return server


def _parent_death_signal(signum: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel send `signum` to the child when the supervisor dies.

    Linux only (elsewhere var/run.pid and the next start clean up). The signal is tied to the
    thread that forks the child: the supervisor starts every child from its main thread. It is
    not inherited by the child's own children (qcluster's workers): those are stopped by their
    parent when it gets the signal."""
    if sys.platform != "linux":
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    supervisor = os.getpid()

    def preexec() -> None:
        # the command must act on the signal even if it was started ignoring it (a background
        # job of a non-interactive shell ignores SIGINT)
        signal.signal(signum, signal.SIG_DFL)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != supervisor:  # it died between fork and prctl: nobody will signal us
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class Recorded:
    """A process as var/run.pid records it: enough to recognise it after its parent is gone."""

    name: str
    pid: int
    started: float
    cwd: str
    cmdline: list[str]

    @classmethod
    def of(cls, name: str, pid: int) -> Recorded:
        started = embedded_db.process_start_time(pid)
        if started is None:
            raise psutil.NoSuchProcess(pid)
        process = psutil.Process(pid)
        return cls(name, pid, started, process.cwd(), process.cmdline())

    def alive(self) -> bool:
        return embedded_db.same_process(self.pid, self.started)

    def group(self) -> list[psutil.Process]:
        """The live processes of its process group (each child leads one) that are its own:
        same user, working directory and command line (forked workers), started after it."""
        members = []
        for pid in psutil.pids():
            try:
                if os.getpgid(pid) != self.pid:
                    continue
                started = embedded_db.process_start_time(pid)
                process = psutil.Process(pid)
                if (
                    started is not None
                    and started > self.started - 0.5
                    and process.uids().real == os.getuid()
                    and process.cwd() == self.cwd
                    and process.cmdline() == self.cmdline
                ):
                    members.append(process)
            except (OSError, psutil.Error):
                continue
        return members


class RunFile:
    """var/run.pid: the running `make run` supervisor, its web port and its children."""

    def __init__(self, path: Path = RUN_FILE) -> None:
        self.path = path

    def read(self) -> tuple[Recorded | None, list[Recorded], int | None]:
        try:
            data = json.loads(self.path.read_text())
            supervisor = Recorded(**data["supervisor"])
            children = [Recorded(**child) for child in data["children"]]
            return supervisor, children, data.get("port")
        except (OSError, ValueError, KeyError, TypeError):
            return None, [], None

    def write(self, supervisor: Recorded, children: list[Recorded]) -> None:
        data = {
            "supervisor": supervisor.__dict__,
            "port": WEB_PORT,
            "children": [child.__dict__ for child in children],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _stop_processes(processes: list[psutil.Process], timeout: float = STOP_TIMEOUT) -> None:
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)


def _stop_leftovers(children: list[Recorded]) -> list[str]:
    """Stop what children of a dead supervisor left; returns a description of each."""
    stopped = []
    for child in children:
        members = child.group()
        if members:
            _stop_processes(members)
            stopped.append(f"{child.name} ({', '.join(str(m.pid) for m in members)})")
    return stopped


def _port_taken(port: int) -> str | None:
    """Who listens on the web port, if anyone (checked before the slow set-up, not after it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver does
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - runserver listens on every interface
            return None
        except OSError:
            pass
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                command = " ".join(psutil.Process(conn.pid).cmdline())
                return f"pid {conn.pid} ({command[:120]})"
    except psutil.Error:
        pass
    return "another program"


class Children:
    """Child processes, each in a process group of its own (a terminal's Ctrl-C reaches only
    the supervisor, which stops them in order), each dying with the supervisor, all recorded
    in var/run.pid."""

    def __init__(self, on_change: Callable[[list[Recorded]], None] | None = None) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.recorded: list[Recorded] = []
        self.on_change = on_change

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        proc = subprocess.Popen(  # noqa: S603
            args,
            cwd=BASE_DIR,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            preexec_fn=_parent_death_signal(signal.SIGTERM),  # safe: the supervisor has one thread
        )
        self.procs[name] = proc
        try:
            self.recorded.append(Recorded.of(name, proc.pid))
        except psutil.Error:
            return  # it has already ended; first_exited() reports it
        if self.on_change:
            self.on_change(self.recorded)

    def wait(self, name: str, stop: _Signals) -> int | None:
        """Wait for one child (the set-up) to end: its exit code, or None when a stop was
        requested first (the child is then left to stop())."""
        proc = self.procs[name]
        while proc.poll() is None:
            if stop:
                return None
            time.sleep(0.3)
        del self.procs[name]
        self.recorded = [child for child in self.recorded if child.name != name]
        if self.on_change:
            self.on_change(self.recorded)
        return proc.returncode

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        # SIGTERM to each child only, not to its process group: qcluster stops its own worker
        # processes in order (they finish their task); a group-wide signal kills them under it,
        # and qcluster then waits for a sentinel that is already gone.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log(f"{name} did not stop within {STOP_TIMEOUT}s of SIGTERM; killing it")
        # whatever is still running (a stuck child, or a worker its parent did not stop)
        leftovers = [member for child in self.recorded for member in child.group()]
        if leftovers:
            _log(f"killing what is left: {', '.join(str(p.pid) for p in leftovers)}")
            _stop_processes(leftovers, timeout=5)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
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
        f"  Health {host.scheme}://{base}{port}/healthz   Metrics {host.scheme}://{base}{port}/metrics",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)


class _Signals:
    """SIGINT, SIGTERM and SIGHUP become a request to stop: a flag the supervisor checks, never
    an exception in the middle of starting or stopping something.

    A closed terminal counts as SIGHUP even when the signal never comes: the kernel sends it only
    to the session leader, and a `make` that leads the session (`xterm -e make run`, an IDE's
    task) waits for its children instead of passing it on."""

    def __init__(self) -> None:
        self.received: int | None = None
        ignored = set()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) == signal.SIG_IGN:
                ignored.add(signum)  # `nohup make run &`: the user asked to outlive the terminal
            else:
                signal.signal(signum, self._on_signal)
        terminals = [fd for fd in (0, 1, 2) if _isatty(fd)]
        self._terminal = terminals[0] if terminals and signal.SIGHUP not in ignored else None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    def __bool__(self) -> bool:
        if self.received is None and self._terminal is not None and _hung_up(self._terminal):
            self.received = signal.SIGHUP
        return self.received is not None


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _hung_up(fd: int) -> bool:
    """Whether the terminal on `fd` has gone away (a hung-up terminal polls as POLLHUP)."""
    poller = select.poll()
    poller.register(fd, 0)
    return any(events & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, events in poller.poll(0))


def _run_lock() -> int | None:
    """Hold var/run.lock for the life of this `run` (the kernel drops it when the process ends,
    however it ends); None when another `run` holds it."""
    import fcntl

    fd = os.open(VAR / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


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
    children.start("web", [PYTHON, "manage.py", "runserver", f"0.0.0.0:{WEB_PORT}", "--noreload"])
    children.start("worker", [PYTHON, "manage.py", "qcluster"])
    for name, args in _extra_processes():
        children.start(name, args)
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


def _extra_processes() -> list[tuple[str, list[str]]]:
    """Processes later apps need in the demo (dispatcher, fake providers), if they exist."""
    extra: list[tuple[str, list[str]]] = []
    if (BASE_DIR / "broadcasts" / "management" / "commands" / "run_dispatcher.py").exists():
        extra.append(("dispatcher", [PYTHON, "manage.py", "run_dispatcher"]))
    return extra


def _wait_for_web(give_up: Callable[[], bool], timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

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


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
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
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
