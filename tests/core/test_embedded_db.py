"""The embedded PostgreSQL's lifetime rules: started by one process, reused by others,
stopped by its owner only, stopped by the owner's watchdog when the owner is killed, adopted
when the owner and its watchdog both died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from core import embedded_db


def _alive(server: embedded_db.EmbeddedPostgres) -> bool:
    try:
        with psycopg.connect(host=str(server.socket_dir), user="postgres", dbname="messenger", connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture
def pgdata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # short path: the Unix socket lives in the data directory
    return tmp_path_factory.mktemp("pg", numbered=True) / "data"


def test_owner_starts_and_stops_and_a_second_process_only_reuses(pgdata: Path) -> None:
    owner = embedded_db.start_or_reuse(pgdata, fast=True)
    try:
        assert owner.owned and _alive(owner)
        code = (
            "import sys; from core import embedded_db as e; s = e.start_or_reuse(sys.argv[1]); "
            "print('owned' if s.owned else 'reused')"
        )
        other = subprocess.run(
            [sys.executable, "-c", code, str(pgdata)],
            capture_output=True,
            text=True,
            cwd=Path(embedded_db.__file__).parent.parent,
            check=True,
        )
        assert other.stdout.strip() == "reused"
        assert _alive(owner), "a process that only reused the server must not stop it when it exits"
    finally:
        owner.stop()
    assert not _alive(owner)


BASE_DIR = Path(embedded_db.__file__).parent.parent


def _start_in_a_process_that_dies(pgdata: Path, *, watchdog: bool, how: str = "os._exit(0)") -> None:
    """Start the server in another process that then ends without any clean-up."""
    code = (
        "import sys, os, signal; from core import embedded_db as e; "
        f"e.start_or_reuse(sys.argv[1], fast=True, watchdog={watchdog}); {how}"
    )
    done = subprocess.run([sys.executable, "-c", code, str(pgdata)], check=False, cwd=BASE_DIR)
    assert done.returncode == (-signal.SIGKILL if "SIGKILL" in how else 0), "the server did not start"


def _socket(pgdata: Path) -> embedded_db.EmbeddedPostgres:
    return embedded_db.EmbeddedPostgres(pgdata=pgdata, socket_dir=embedded_db._socket_dir(pgdata), owned=False)


def _wait_stopped(pgdata: Path, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if embedded_db._running_postmaster(pgdata) is None:
            return True
        time.sleep(0.3)
    return False


def test_a_server_whose_owner_died_is_adopted_and_then_stopped(pgdata: Path) -> None:
    # exits without cleanup, like a SIGKILL, and its watchdog is gone too (killed with it)
    _start_in_a_process_that_dies(pgdata, watchdog=False)
    assert _alive(_socket(pgdata))
    adopted = embedded_db.start_or_reuse(pgdata, fast=True)
    assert adopted.owned and adopted.adopted, "an orphaned server must be adopted, so it does not outlive the next run"
    adopted.stop()
    assert not _alive(adopted)


@pytest.mark.parametrize("how", ["os.kill(os.getpid(), signal.SIGKILL)", "os._exit(0)"], ids=["sigkill", "exit"])
def test_the_watchdog_stops_the_server_of_a_killed_owner_without_any_next_process(pgdata: Path, how: str) -> None:
    _start_in_a_process_that_dies(pgdata, watchdog=True, how=how)
    assert _wait_stopped(pgdata), "the server of a killed owner must not run on until someone starts it again"
    deadline = time.monotonic() + 60  # the watchdog forgets the owner right after the server has stopped
    while embedded_db._owner_file(pgdata).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not embedded_db._owner_file(pgdata).exists()


def test_the_watchdog_leaves_a_server_alone_that_another_process_adopted(pgdata: Path) -> None:
    adopted = None
    try:
        _start_in_a_process_that_dies(pgdata, watchdog=False)
        adopted = embedded_db.start_or_reuse(pgdata, fast=True)  # adopts; its own watchdog
        assert adopted.owned and adopted.adopted
        # a watchdog of the first owner that only now sees its owner gone
        stale = subprocess.run(
            [sys.executable, "-m", "core.embedded_db", "watch", str(pgdata), "4242 1.00"],
            stdin=subprocess.DEVNULL,
            cwd=BASE_DIR,
            timeout=120,
            check=False,
        )
        assert stale.returncode == 0
        assert _alive(adopted), "a watchdog must only stop the server of its own owner"
    finally:
        if adopted is not None:
            adopted.stop()
    assert _wait_stopped(pgdata)


def test_a_reused_owner_pid_is_not_taken_for_the_live_owner(pgdata: Path) -> None:
    _start_in_a_process_that_dies(pgdata, watchdog=False)
    # the dead owner's pid now belongs to a live, unrelated process (here: this one)
    embedded_db._owner_file(pgdata).write_text(f"{os.getpid()} 12345.00")
    adopted = embedded_db.start_or_reuse(pgdata, fast=True)
    try:
        assert adopted.adopted, "an owner file naming a live pid with another start time names a dead owner"
    finally:
        adopted.stop()
    assert not _alive(adopted)


def test_stop_orphaned_stops_only_a_server_whose_owner_has_ended(pgdata: Path) -> None:
    assert embedded_db.stop_orphaned(pgdata) == "not running"
    owner = embedded_db.start_or_reuse(pgdata, fast=True)
    try:
        assert embedded_db.stop_orphaned(pgdata) == f"in use by pid {os.getpid()}"
        assert _alive(owner)
    finally:
        owner.stop()
    _start_in_a_process_that_dies(pgdata, watchdog=False)
    assert embedded_db.stop_orphaned(pgdata) == "stopped"
    assert not _alive(_socket(pgdata))
    assert embedded_db.stop_orphaned(pgdata) == "not running"


def test_forked_children_never_stop_the_owners_server(pgdata: Path) -> None:
    owner = embedded_db.start_or_reuse(pgdata, fast=True)
    try:
        pid = os.fork()
        if pid == 0:  # child: what a gunicorn worker does at exit
            owner.stop()
            os._exit(0)
        os.waitpid(pid, 0)
        assert _alive(owner)
    finally:
        owner.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_the_owner_stops_its_server_even_when_pg_ctl_has_lost_access_to_the_directory(pgdata: Path) -> None:
    """Started as root, the server and pg_ctl run as an unprivileged user that needs the parent
    directories open; a pytest session (or a user) closing one to 0700 made pg_ctl fail and the
    server run on."""
    owner = embedded_db.start_or_reuse(pgdata, fast=True)
    mode = pgdata.parent.stat().st_mode
    try:
        pgdata.parent.chmod(0o700)
        owner.stop()
        assert _wait_stopped(pgdata, timeout=5), "the server must be stopped all the same"
    finally:
        pgdata.parent.chmod(mode)
        embedded_db.stop_orphaned(pgdata)
