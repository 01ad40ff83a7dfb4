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

This package must not import Django. Its modules: `commands` (the four commands above and
what they set up: the development key and the database), `processes` (children, run.pid,
signals and the terminal).
"""

from core.devrun.commands import cmd_exec, cmd_run, cmd_stop, cmd_test, main
from core.devrun.processes import Children, Recorded, RunFile, _Signals

__all__ = ["Children", "Recorded", "RunFile", "_Signals", "cmd_exec", "cmd_run", "cmd_stop", "cmd_test", "main"]
