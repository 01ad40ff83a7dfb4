"""The delivery pipeline: fan-out, batch claims, paced concurrent sending, results, recovery.
Split by stage; import from here.

Documented in ../shared/docs/architecture.md ("The delivery pipeline"). The database is the
source of truth; queue messages only say "there may be work". Invariants:

* Fan-out writes one Delivery per (broadcast, subscriber) with INSERT … SELECT … ON CONFLICT
  DO NOTHING over subscriber-id ranges: never the whole list in memory, safe to run twice.
* A sender works in batches of windows. Right before each window of requests it claims the rows
  it is about to send straight from `queued` to `sending` (FOR UPDATE SKIP LOCKED, under a lease),
  re-checking the person's opt-out and the contact's state in that same statement (who opted out
  becomes `skipped`), so a STOP stops the next message, and after a crash exactly the rows in
  `sending` may have reached the provider: the sweeper re-queues them flagged
  `possible_duplicate` (and logs each). One row write per window instead of a batch claim
  (`claimed`) and then `sending`; `claim` and `mark_sending`, the two-step form, remain, and the
  sweeper silently re-queues rows that were only `claimed`.
* Every outcome is written per window in one UPDATE: provider id and `sent`, a permanent
  failure with its reason, or `queued` again with a back-off that honours `retry_after`.
* Pacing uses messengers.ratelimit (shared by all workers); a 429 pushes the shared slot clock
  back for everyone.

Modules: `fanout` (recipients, Delivery rows), `rows` (claim, windows, outcomes, `classify`),
`composer` (each recipient's message), `dbthread` (the sender's database threads), `batch` (one
batch in paced windows, `Pacer`), `sender` (`run_sender`: batch after batch), `recovery` (the
lease sweeper). What does not belong here: the broadcast's workflow and the decision to start,
pause or finish sending (broadcasts.services).
"""

from broadcasts.pipeline.batch import (
    WINDOW_MAX,
    WINDOW_SECONDS,
    WINDOWS_IN_FLIGHT,
    BatchReport,
    Pacer,
    send_rows,
    window_size_for,
)
from broadcasts.pipeline.composer import Composer, email_urls
from broadcasts.pipeline.dbthread import DB_OUTAGE_SECONDS, DbThread
from broadcasts.pipeline.fanout import FANOUT_CHUNK, WHATSAPP_WINDOW, fanout, recipients_sql
from broadcasts.pipeline.recovery import sweep_expired_leases
from broadcasts.pipeline.rows import (
    BATCH_MAX,
    BATCH_SECONDS,
    LEASE_SECONDS,
    MAX_ATTEMPTS,
    ClaimedRow,
    Outcome,
    batch_size_for,
    claim,
    claim_window,
    classify,
    extend_lease,
    mark_sending,
    ready_connections,
    release,
    worker_id,
    write_outcomes,
)
from broadcasts.pipeline.sender import (
    BUSY_SECONDS,
    GAVE_WAY,
    PAUSE_ERROR_RATE,
    PAUSE_MIN_ATTEMPTS,
    SENDER_RATE,
    SenderReport,
    estimated_seconds,
    run_sender,
)

__all__ = [
    "BATCH_MAX",
    "BATCH_SECONDS",
    "BUSY_SECONDS",
    "DB_OUTAGE_SECONDS",
    "FANOUT_CHUNK",
    "GAVE_WAY",
    "LEASE_SECONDS",
    "MAX_ATTEMPTS",
    "PAUSE_ERROR_RATE",
    "PAUSE_MIN_ATTEMPTS",
    "SENDER_RATE",
    "WHATSAPP_WINDOW",
    "WINDOWS_IN_FLIGHT",
    "WINDOW_MAX",
    "WINDOW_SECONDS",
    "BatchReport",
    "ClaimedRow",
    "Composer",
    "DbThread",
    "Outcome",
    "Pacer",
    "SenderReport",
    "batch_size_for",
    "claim",
    "claim_window",
    "classify",
    "email_urls",
    "estimated_seconds",
    "extend_lease",
    "fanout",
    "mark_sending",
    "ready_connections",
    "recipients_sql",
    "release",
    "run_sender",
    "send_rows",
    "sweep_expired_leases",
    "window_size_for",
    "worker_id",
    "write_outcomes",
]
