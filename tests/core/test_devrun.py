"""The supervisor behind `make run` and `make test` leaves nothing running behind it.

Closing the terminal, SIGHUP, `kill` (SIGTERM) and `kill -9` (SIGKILL) of the supervisor must
each end with no web server (gunicorn and its workers), no qcluster (nor its worker processes), no dispatcher and no embedded
PostgreSQL left, and the next `make run` must start. These tests start the real supervisor
(`python -m core.devrun run`: migrations, demo seed, web, workers, dispatcher) in a scratch
VAR_DIR on a free port, so they never touch a developer's running demo.
"""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.supervisor

BASE_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT = 600  # the first start migrates and seeds the demo; generous for a loaded 2-core machine
GONE_TIMEOUT = 120
_logs = itertools.count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - make run's web server listens on every interface
        except OSError:
            return False
        return True


def _env(var_dir: Path, port: int) -> dict[str, str]:
    """A developer's shell: none of the settings this pytest process runs with (test settings,
    the test database's URL, TEST_RUN_ID …)."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME"}
    env = {key: value for key, value in os.environ.items() if key in keep or key.startswith("XDG_")}
    return {**env, "VAR_DIR": str(var_dir), "PORT": str(port), "PYTHONUNBUFFERED": "1"}


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _command(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # ended (or a zombie) meanwhile
        return ""


def _describe(procs: list[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} {' '.join(proc.cmdline())[:150]}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "\n".join(lines)


def _wait_gone(procs: list[psutil.Process], timeout: float = GONE_TIMEOUT) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    left = [p for p in procs if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in left if _alive(p)]
    return left


def _postmaster(pgdata: Path) -> list[psutil.Process]:
    """The embedded PostgreSQL of a data directory and its backends (a daemon, not our child)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return []


@dataclass
class Scratch:
    var_dir: Path
    port: int
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    seen: list[psutil.Process] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return _env(self.var_dir, self.port)

    def devrun(self, *args: str, log_name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.var_dir.parent / f"{next(_logs):02d}-{log_name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "core.devrun", *args],
                cwd=BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append(proc)
        return proc, log

    def snapshot(self, pid: int, pgdata: str = "postgres") -> list[psutil.Process]:
        """Every process this supervisor (or the make above it) is responsible for, right now."""
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        procs += _postmaster(self.var_dir / pgdata)
        self.seen += procs
        return procs

    def cleanup(self) -> None:
        """Whatever a failed test left running (never needed when the tests pass)."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for proc in self.seen:
            if _alive(proc):
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        for pgdata in ("postgres", "postgres-test"):
            for proc in _postmaster(self.var_dir / pgdata):
                try:
                    proc.kill()
                except psutil.Error:
                    pass


@pytest.fixture(scope="module")
def var_dir() -> Iterator[Path]:
    # One scratch var/ for the module: only the first start migrates and seeds the demo. Not
    # under pytest's tmp root, which every new pytest session of this user closes to 0700.
    root = Path(tempfile.mkdtemp(prefix="devrun-test-"))
    yield root / "var"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(var_dir: Path) -> Iterator[Scratch]:
    scratch = Scratch(var_dir=var_dir, port=_free_port())
    yield scratch
    scratch.cleanup()


class Run:
    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self.proc, self.log = scratch.devrun("run", log_name="run")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_running(self) -> list[psutil.Process]:
        deadline = time.monotonic() + START_TIMEOUT
        while "Messenger-Newsletter is running" not in self.output():
            assert self.proc.poll() is None, f"make run ended early:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"make run did not start:\n{self.output()[-4000:]}"
            time.sleep(0.5)
        return _everything(self.scratch, self.proc.pid)

    def ended(self, timeout: float = GONE_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make run did not end:\n{self.output()[-4000:]}")


def _everything(scratch: Scratch, pid: int) -> list[psutil.Process]:
    procs = scratch.snapshot(pid)
    commands = " ".join(_command(p) for p in procs)
    # the test is only worth something if the processes it checks were there
    for expected in ("gunicorn", "qcluster", "run_dispatcher", "postgres -D"):
        assert expected in commands, f"{expected} not running:\n{_describe(procs)}"
    assert sum("qcluster" in _command(p) for p in procs) > 1, "qcluster's worker processes"
    assert sum("gunicorn" in _command(p) for p in procs) > 1, "gunicorn's worker processes"
    return procs


def _assert_nothing_left(scratch: Scratch, procs: list[psutil.Process]) -> None:
    left = _wait_gone(procs)
    assert not left, f"still running:\n{_describe(left)}"
    assert _port_free(scratch.port), f"port {scratch.port} is still taken"


def test_closing_the_terminal_of_make_run_stops_everything(scratch: Scratch) -> None:
    """`make run` in a terminal window of its own (`xterm -e make run`, an IDE task): make leads
    the session, so only make gets the kernel's SIGHUP, and make waits for its children."""
    pid, terminal = pty.fork()
    if pid == 0:  # the terminal's program
        try:
            os.chdir(BASE_DIR)
            os.execvpe("make", ["make", "--no-print-directory", "run"], scratch.env)  # noqa: S606, S607
        finally:
            os._exit(127)
    output = b""
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while b"Messenger-Newsletter is running" not in output:
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), output.decode(errors="replace")[-4000:]
            assert time.monotonic() < deadline, output.decode(errors="replace")[-4000:]
            if select.select([terminal], [], [], 0.5)[0]:
                output += os.read(terminal, 65536)
        procs = _everything(scratch, pid)

        os.close(terminal)  # the window is closed
        terminal = -1
        _assert_nothing_left(scratch, procs)
    finally:
        if terminal >= 0:
            os.close(terminal)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def test_kill_9_leaves_nothing_a_second_run_explains_and_make_stop_stops(scratch: Scratch) -> None:
    first = Run(scratch)
    procs = first.wait_until_running()

    first.proc.kill()
    first.ended()
    # no new start needed: the children die with the supervisor, the database's watchdog stops it
    _assert_nothing_left(scratch, procs)

    second = Run(scratch)
    procs = second.wait_until_running()

    # a second `make run` on the same var/ explains instead of failing on the port later
    third, third_log = scratch.devrun("run", log_name="third")
    assert third.wait(timeout=GONE_TIMEOUT) != 0
    assert "make stop" in third_log.read_text(), third_log.read_text()[-4000:]
    assert second.proc.poll() is None, "the running demo must be left alone"

    stop, stop_log = scratch.devrun("stop", log_name="stop")
    assert stop.wait(timeout=GONE_TIMEOUT + 60) == 0, stop_log.read_text()
    assert second.ended() == 0, second.output()[-4000:]
    _assert_nothing_left(scratch, procs)
    assert not (scratch.var_dir / "run.pid").exists()
    # every child stopped in order (qcluster stops its own workers), none had to be killed
    stopping = second.output().split("[devrun] stopping …")[-1]
    assert not [line for line in stopping.splitlines() if line.startswith("[devrun]") and "kill" in line], stopping

    stop, stop_log = scratch.devrun("stop", log_name="stop")
    assert stop.wait(timeout=GONE_TIMEOUT) == 0, stop_log.read_text()
    assert "nothing was running" in stop_log.read_text(), stop_log.read_text()


def test_leftovers_of_a_run_killed_with_all_its_helpers_are_stopped_by_the_next_start(scratch: Scratch) -> None:
    """`kill -9` of the supervisor, qcluster's parent and the database's watchdog at once (so
    neither the parent-death signal nor the watchdog can help): the next start finds what the
    killed run left through var/run.pid and stops it."""
    first = Run(scratch)
    procs = first.wait_until_running()
    supervisor = psutil.Process(first.proc.pid)
    qcluster = next(p for p in supervisor.children() if "qcluster" in _command(p))
    watchdogs = [p for p in supervisor.children() if "core.embedded_db" in _command(p)]
    assert watchdogs
    for proc in (qcluster, *watchdogs):
        proc.kill()
    first.proc.kill()
    first.ended()
    left_behind = [p for p in procs if _alive(p)]
    assert any("qcluster" in _command(p) for p in left_behind), "django-q2 leaves its workers when killed"
    assert any("postgres" in _command(p) for p in left_behind), "nobody stops the database"

    second = Run(scratch)
    second_procs = second.wait_until_running()
    # the workers for sure; gunicorn may still be in its graceful stop after the parent-death signal
    assert "was killed; stopped what it left:" in second.output()
    assert re.search(r"stopped what it left: (web \([\d, ]+\); )?worker \(", second.output()), second.output()
    assert "adopted the embedded PostgreSQL" in second.output()
    left = _wait_gone([p for p in left_behind if p not in second_procs])
    assert not left, f"left behind by the killed run:\n{_describe(left)}"

    second.proc.send_signal(signal.SIGHUP)  # the terminal's shell passes SIGHUP on to its jobs
    assert second.ended() == 0, second.output()[-4000:]
    _assert_nothing_left(scratch, second_procs)
    assert not (scratch.var_dir / "run.pid").exists()


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL], ids=["hup", "kill"])
def test_the_test_supervisor_leaves_no_database_and_no_pytest_behind(
    scratch: Scratch, tmp_path: Path, signum: int
) -> None:
    started = tmp_path / "started"
    sleeper = tmp_path / "test_sleeper.py"
    sleeper.write_text(
        f"import pathlib, time\n\ndef test_sleeps():\n    pathlib.Path({str(started)!r}).touch()\n    time.sleep(900)\n"
    )
    proc, log = scratch.devrun("test", str(sleeper), "-q", "-p", "no:cacheprovider", log_name="test")
    deadline = time.monotonic() + START_TIMEOUT
    while not started.exists():
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.3)
    procs = scratch.snapshot(proc.pid, pgdata="postgres-test")
    commands = " ".join(_command(p) for p in procs)
    assert "pytest" in commands and "postgres -D" in commands, _describe(procs)

    proc.send_signal(signum)
    proc.wait(timeout=GONE_TIMEOUT)
    left = _wait_gone(procs)
    assert not left, f"still running:\n{_describe(left)}"


def test_a_port_taken_by_another_program_is_reported_before_the_set_up(scratch: Scratch) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", scratch.port))
        other.listen()
        proc, log = scratch.devrun("run", log_name="port")
        assert proc.wait(timeout=GONE_TIMEOUT) == 1
    output = log.read_text()
    assert f"port {scratch.port} is in use by pid {os.getpid()}" in output, output
    assert f"PORT={scratch.port + 1} make run" in output
    assert "migrating" not in output, "the slow set-up must not run first"


def test_nohup_is_respected() -> None:
    """`nohup make run &` ignores SIGHUP: the supervisor must not turn it back on."""
    code = (
        "import os, signal; signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "from core import devrun\n"
        "stop = devrun._Signals()\n"
        "os.kill(os.getpid(), signal.SIGHUP)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "print(stop.received == signal.SIGTERM, signal.getsignal(signal.SIGHUP) == signal.SIG_IGN)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "True"], done.stdout + done.stderr
