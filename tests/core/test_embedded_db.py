"""The embedded PostgreSQL's lifetime rules: started by one process, reused by others,
stopped by its owner only, adopted when the owner died."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_a_server_whose_owner_died_is_adopted_and_then_stopped(pgdata: Path) -> None:
    code = "import sys, os; from core import embedded_db as e; e.start_or_reuse(sys.argv[1], fast=True); os._exit(0)"
    subprocess.run(
        [sys.executable, "-c", code, str(pgdata)], check=True, cwd=Path(embedded_db.__file__).parent.parent
    )  # exits without cleanup, like a SIGKILL
    adopted = embedded_db.start_or_reuse(pgdata, fast=True)
    assert adopted.owned, "an orphaned server must be adopted, so it does not outlive the next run"
    adopted.stop()
    assert not _alive(adopted)


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
