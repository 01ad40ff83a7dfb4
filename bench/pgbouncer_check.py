"""What a PgBouncer pooling mode does to the session state django-tenants and the workers rely on.

    python -m bench.pgbouncer_check [--dsn postgres://postgres@127.0.0.1:5432/postgres]

Not part of `make bench` and not a dependency: it needs Debian's `pgbouncer` binary on PATH (or
/usr/sbin) and a PostgreSQL reachable with trust authentication. It creates a scratch database
with two "tenant" schemas (t1, t2, each with a table `items` holding its own name), starts one
PgBouncer per pooling mode on a free port with ONE server connection per pool (so two clients
must share it, as they do under load), runs each experiment through both and prints what every
client saw. docs/operations.md ("Scale-out", "Connection poolers") has the results and what
they mean for deployment.

Experiments (client A is tenant t1's connection, client B tenant t2's):
  search_path       A: SET search_path (autocommit, as django-tenants does once per connection
                    with TENANT_LIMIT_SET_CALLS), B: the same for t2, A: SELECT → whose rows?
  search_path_tx    A: BEGIN; SET search_path; SELECT; COMMIT (the SET inside the transaction),
                    then B, which never SET a path, reads: does A's path leak to B?
  set_local         A: BEGIN; SET LOCAL search_path; SELECT; COMMIT, then B reads.
  prepared          psycopg 3 prepares a query after prepare_threshold (5) executions; A runs
                    one 6 times, B runs the same text 6 times: prepared-statement errors?
  django_binding    Django's psycopg backend (client-side binding by default): does it
                    prepare anything (pg_prepared_statements after 10 equal queries)?
  named_cursor      a server-side cursor (Django's .iterator()) outside a transaction, while
                    B uses the server connection between two fetches.
  advisory_lock     A: pg_try_advisory_lock(k) (the dispatcher's leader lock), B: the same key.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg
from psycopg import sql

SCRATCH_DB = "mnl_pgbouncer_check"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if not found:
        sys.exit("pgbouncer not found: `apt-get install pgbouncer` (Debian) for this check")
    return found


@contextlib.contextmanager
def pgbouncer(mode: str, host: str, port: int, user: str, pool_size: int) -> Iterator[int]:
    """A PgBouncer in `mode` with `pool_size` server connections per (database, user) pool."""
    listen = _free_port()
    with tempfile.TemporaryDirectory(prefix=f"pgb-{mode}-") as tmp:
        d = Path(tmp)
        (d / "userlist.txt").write_text(f'"{user}" ""\n')
        (d / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{SCRATCH_DB} = host={host} port={port} dbname={SCRATCH_DB}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {d / 'userlist.txt'}\n"
            f"pool_mode = {mode}\ndefault_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
            "server_reset_query = DISCARD ALL\nserver_reset_query_always = 0\n"
            f"logfile = {d / 'pgbouncer.log'}\npidfile = {d / 'pgbouncer.pid'}\n"
        )
        command = [_pgbouncer_binary(), "-q", str(d / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root: drop to Debian's postgres user
            shutil.chown(d, user="postgres")
            d.chmod(0o755)
            command[1:1] = ["-u", "postgres"]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", listen)) == 0:
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit(f"pgbouncer ({mode}) did not start; log: {(d / 'pgbouncer.log').read_text()[-2000:]}")
                time.sleep(0.1)
            yield listen
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _prepare_scratch(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH_DB)))
    url = urlparse(dsn)
    with psycopg.connect(url._replace(path=f"/{SCRATCH_DB}").geturl(), autocommit=True) as c:
        for schema in ("t1", "t2"):
            c.execute(f"CREATE SCHEMA {schema}")
            c.execute(f"CREATE TABLE {schema}.items (name text)")
            c.execute(f"INSERT INTO {schema}.items VALUES ('{schema}')")  # noqa: S608 - fixed names
        c.execute("CREATE TABLE public.items (name text)")
        c.execute("INSERT INTO public.items VALUES ('public')")


def _outcome(fn: Callable[[], object]) -> str:
    try:
        return str(fn())
    except psycopg.Error as exc:
        return f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0]}"


def _read(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT string_agg(name, ','), pg_backend_pid() FROM items").fetchone()
    return f"{row[0]} (server pid {row[1]})" if row else "?"


def exp_search_path(a: psycopg.Connection, b: psycopg.Connection) -> dict[str, str]:
    a.execute("SET search_path TO t1, public")
    b.execute("SET search_path TO t2, public")
    return {"A (t1) reads": _outcome(lambda: _read(a)), "B (t2) reads": _outcome(lambda: _read(b))}


def exp_search_path_tx(a: psycopg.Connection, b: psycopg.Connection) -> dict[str, str]:
    with a.transaction():
        a.execute("SET search_path TO t1, public")
        seen_a = _read(a)
    return {"A (t1) reads in its transaction": seen_a, "B (no SET) reads afterwards": _outcome(lambda: _read(b))}


def exp_set_local(a: psycopg.Connection, b: psycopg.Connection) -> dict[str, str]:
    with a.transaction():
        a.execute("SET LOCAL search_path TO t1, public")
        seen_a = _read(a)
    return {"A (t1, SET LOCAL) reads": seen_a, "B (no SET) reads afterwards": _outcome(lambda: _read(b))}


def exp_prepared(a: psycopg.Connection, b: psycopg.Connection) -> dict[str, str]:
    out = {}
    for name, conn in (("A", a), ("B", b)):
        errors = []
        for i in range(6):
            try:
                conn.execute("SELECT count(*) FROM public.items WHERE name <> %s", [f"x{i}"]).fetchone()
            except psycopg.Error as exc:
                errors.append(f"run {i + 1}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        out[f"{name}: 6 runs, prepare_threshold=5"] = "; ".join(errors) or "ok"
    return out


def exp_named_cursor(a: psycopg.Connection, b: psycopg.Connection) -> dict[str, str]:
    """Django's .iterator() outside atomic(): a named cursor WITH HOLD (the DECLARE commits), and
    B runs a transaction between two fetches, holding the server connection A declared it on."""

    def run() -> str:
        with a.cursor(name="it", withhold=True) as cur:
            cur.execute("SELECT name FROM public.items, generate_series(1, 3)")
            first = cur.fetchone()
            with b.transaction():
                b.execute("SELECT 1").fetchone()
                rest = cur.fetchall()
            return f"fetched {first} then {len(rest)} more"

    return {"WITH HOLD cursor, B in a transaction between fetches": _outcome(run)}


def exp_advisory_lock(a: psycopg.Connection, b: psycopg.Connection) -> dict[str, str]:
    key = 0x6D6E6C01  # broadcasts.dispatcher.ADVISORY_LOCK
    got_a = _outcome(lambda: a.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0])  # type: ignore[index]
    got_b = _outcome(lambda: b.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0])  # type: ignore[index]
    return {"A takes the leader lock": got_a, "B takes the same lock": got_b}


def exp_handover(via: str) -> dict[str, str]:
    """A sets a path, takes the leader lock and has a statement prepared, then disconnects; B
    connects next and gets the same server connection: what is left of A's session?"""
    with psycopg.connect(via, autocommit=True) as a:
        a.execute("SET search_path TO t1, public")
        a.execute("SELECT pg_try_advisory_lock(%s)", [0x6D6E6C01])
        for i in range(6):
            a.execute("SELECT count(*) FROM public.items WHERE name <> %s", [f"x{i}"])
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    with psycopg.connect(via, autocommit=True) as b:
        return {
            "A's server pid": str(pid_a),
            "B (new client, no SET) reads": _outcome(lambda: _read(b)),
            "B takes A's leader lock": _outcome(
                lambda: b.execute("SELECT pg_try_advisory_lock(%s)", [0x6D6E6C01]).fetchone()[0]  # type: ignore[index]
            ),
            "prepared statements B finds": _outcome(
                lambda: b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]  # type: ignore[index]
            ),
        }


def exp_django_binding(dsn: str) -> dict[str, str]:
    """Django's psycopg backend through the given DSN: does it leave prepared statements?"""
    import django
    from django.conf import settings

    url = urlparse(dsn)
    if not settings.configured:
        base = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": SCRATCH_DB,
            "USER": url.username or "postgres",
            "HOST": url.hostname or "127.0.0.1",
            "PORT": url.port or 5432,
        }
        settings.configure(
            DATABASES={
                "default": base,
                "server_binding": {**base, "OPTIONS": {"server_side_binding": True}},
                "prepare_5": {**base, "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5}},
            },
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.db import connections

    out = {}
    for alias in ("default", "server_binding", "prepare_5"):
        connection = connections[alias]
        with connection.cursor() as cursor:
            for i in range(10):
                cursor.execute("SELECT count(*) FROM public.items WHERE name <> %s", [f"x{i}"])
                cursor.fetchone()
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            prepared = cursor.fetchone()[0]
            binding = "client-side" if isinstance(cursor.cursor, psycopg.ClientCursor) else "server-side"
        connection.close()
        out[f"{alias} ({binding} binding): prepared statements after 10 equal queries"] = str(prepared)
    return out


EXPERIMENTS: dict[str, Callable[[psycopg.Connection, psycopg.Connection], dict[str, str]]] = {
    "search_path": exp_search_path,
    "search_path_tx": exp_search_path_tx,
    "set_local": exp_set_local,
    "prepared": exp_prepared,
    "named_cursor": exp_named_cursor,
    "advisory_lock": exp_advisory_lock,
}


def _clean(via: str, pool_size: int) -> None:
    """Start each experiment on clean server connections (DISCARD ALL on every one of them)."""
    with contextlib.ExitStack() as stack:
        for _ in range(pool_size):
            c = stack.enter_context(psycopg.connect(via, autocommit=True, prepare_threshold=None))
            c.execute("DISCARD ALL")


def _show(name: str, result: dict[str, str]) -> None:
    print(f"- {name}")
    for key, value in result.items():
        print(f"    {key}: {value}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pgbouncer_check")
    parser.add_argument(
        "--dsn", default=os.environ.get("PGBOUNCER_CHECK_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args(argv)
    url = urlparse(args.dsn)
    host, port, user = url.hostname or "127.0.0.1", url.port or 5432, url.username or "postgres"
    _prepare_scratch(args.dsn)
    try:
        # transaction mode: one server connection, so the two clients share it as under load;
        # session mode: two (a client holds its server connection until it disconnects)
        for mode, pool_size in (("transaction", 1), ("session", 2)):
            with pgbouncer(mode, host, port, user, pool_size) as listen:
                via = f"postgres://{user}@127.0.0.1:{listen}/{SCRATCH_DB}"
                print(f"\n== pool_mode = {mode}, default_pool_size = {pool_size} ==")
                for name, experiment in EXPERIMENTS.items():
                    if name == "named_cursor":
                        continue  # needs two server connections: below
                    _clean(via, pool_size)
                    with contextlib.ExitStack() as stack:
                        a = stack.enter_context(psycopg.connect(via, autocommit=True, connect_timeout=3))
                        b = stack.enter_context(psycopg.connect(via, autocommit=True, connect_timeout=3))
                        result = experiment(a, b)
                    _show(name, result)
                _clean(via, pool_size)
                _show("handover (A disconnects, B connects)", exp_handover(via))
                if mode == "transaction":
                    _clean(via, pool_size)
                    _show("django_binding", exp_django_binding(via))
            with pgbouncer(mode, host, port, user, 2) as listen:
                via = f"postgres://{user}@127.0.0.1:{listen}/{SCRATCH_DB}"
                _clean(via, 2)
                with psycopg.connect(via, autocommit=True) as a, psycopg.connect(via, autocommit=True) as b:
                    _show("named_cursor (default_pool_size = 2)", exp_named_cursor(a, b))
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
