"""The supervisor's process handling: children in process groups of their own that die with it
(parent-death signal), their record in var/run.pid to recognise what a killed run left, the
run lock, the web port check, and signals and a hung-up terminal turned into a stop request.
No Django here (see core.devrun)."""

from __future__ import annotations

import ctypes
import fcntl
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

BASE_DIR = Path(__file__).resolve().parent.parent.parent
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


def _parent_death_signal(signum: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel send `signum` to the child when the supervisor dies.

    Linux only (elsewhere var/run.pid and the next start clean up). The signal is tied to the
    thread that forks the child: the supervisor starts every child from its main thread. It is
    not inherited by the child's own children (qcluster's workers): those are stopped by their
    parent when it gets the signal."""
    if sys.platform != "linux":
        return None
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
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - the web server listens on every interface
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
    fd = os.open(VAR / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
