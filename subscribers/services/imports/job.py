"""The import job: create (store the upload, queue it), run it chunk by chunk in a worker
(claim, read ahead, write, heartbeat, hand over before the queue's timeout, finish), resume it,
and fail stalled ones (housekeeping).

The import as a whole

A job ends as `done` or `failed`, and either way its file (personal data) is deleted. The
worker turns every exception into a failure with a message; a worker that dies (killed,
restarted, out of memory) leaves a job whose heartbeat stops: housekeeping fails it after
IMPORT_STALL_SECONDS (subscriber_imports_fail_stalled). Every write of a running job is
conditional on it still running, so a job failed meanwhile stays failed.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from time import monotonic
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone, translation

from accounts.models import User
from accounts.services import audit_log
from channels.models import Channel
from core.errors import ApplicationError
from core.http import RequestMeta
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from subscribers import selectors, tasks
from subscribers.models import ConsentText, SubscriberImport
from subscribers.services.imports.messages import (
    IMPORT_CHANNEL_UNKNOWN,
    IMPORT_FILE_EMPTY,
    IMPORT_FILE_TOO_BIG,
    IMPORT_PARTY_NEEDS_EXPLICIT,
    IMPORT_STALLED,
    IMPORT_UNEXPECTED,
    refuse,
)
from subscribers.services.imports.reading import (
    ImportFile,
    check_header,
    detect_format,
    import_file_open,
    import_file_rows,
    map_header,
    upload_check,
)
from subscribers.services.imports.validation import Lookups, Record, RowError, validate_row
from subscribers.services.imports.writing import chunk_write

logger = logging.getLogger(__name__)

# (a progress update that often), few enough commits to keep 100,000 rows under 30 seconds.
# A batch is also handed on after this many rows read (good or bad), so a file of rejected rows
# shows progress, keeps to the time budget and holds at most one batch of row errors.
CHUNK_ROWS = 5000
MAX_IMPORT_ERRORS = 5000
# Below the queue's task timeout (Q_CLUSTER["timeout"], 300 s): a longer import continues in a
# new task instead of being killed halfway.
TIME_BUDGET_SECONDS = 200
ANALYZE_AFTER_ROWS = 10_000


@transaction.atomic
def subscriber_import_create(
    *,
    filename: str,
    data: bytes,
    default_channels: Sequence[Channel] = (),
    consent_text: ConsentText | None = None,
    explicit_consent: bool = False,
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> SubscriberImport:
    """Store an upload and queue its import. Checks only what is cheap whatever the file holds
    (upload_check: a CSV's header is reported right away); the worker checks the rest."""
    if not data:
        raise refuse(IMPORT_FILE_EMPTY)
    max_bytes = settings.IMPORT_MAX_FILE_BYTES
    if len(data) > max_bytes:
        raise refuse(IMPORT_FILE_TOO_BIG, limit=max_bytes >> 20)
    if selectors.is_party_tenant() and not explicit_consent:
        raise refuse(IMPORT_PARTY_NEEDS_EXPLICIT)
    file_format = detect_format(filename, data)
    upload_check(file_format, data)
    channel_ids = [c.pk for c in default_channels]
    if Channel.objects.filter(pk__in=channel_ids).count() != len(set(channel_ids)):
        raise refuse(IMPORT_CHANNEL_UNKNOWN)
    job = SubscriberImport.objects.create(
        created_by_label=(actor.get_username() if actor is not None else "system")[:200],
        filename=filename[:255], file_format=file_format, file_sha256=hashlib.sha256(data).hexdigest(), data=data,
        default_channel_ids=channel_ids, consent_text=consent_text, explicit_consent=explicit_consent,
        language=translation.get_language() or "",
    )  # fmt: skip
    audit_log(
        action="subscribers.import_started", actor=actor, target=job, meta=meta,
        details={"file": job.filename, "bytes": len(data), "channels": channel_ids},
    )  # fmt: skip
    enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk, task_name=None)
    return job


@transaction.atomic
def subscriber_import_resume(*, job: SubscriberImport, actor: User | None = None) -> bool:
    """Queue an import again whose task was lost (still waiting) or whose worker died (still
    "running" but not moving). Safe even if it is in fact still running: rows are never imported
    twice. Returns False for finished imports (their file is gone)."""
    job = SubscriberImport.objects.select_for_update().get(pk=job.pk)
    if job.status == SubscriberImport.Status.QUEUED:
        enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk)
    elif job.status == SubscriberImport.Status.RUNNING:
        enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk, resume=True)
    else:
        return False
    SubscriberImport.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())  # a new lease
    audit_log(action="subscribers.import_resumed", actor=actor, target=job)
    return True


def subscriber_imports_fail_stalled() -> int:
    """Housekeeping: fail every import that has shown no sign of life (queued, claimed, a chunk
    written) for IMPORT_STALL_SECONDS, and delete its file. Its task was lost or its worker
    died; a live task writes progress every few seconds and never runs longer than the queue's
    timeout. Returns how many were failed."""
    stall = settings.IMPORT_STALL_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stall)
    stalled = SubscriberImport.objects.filter(
        status__in=[SubscriberImport.Status.QUEUED, SubscriberImport.Status.RUNNING], heartbeat_at__lt=cutoff
    )
    failed = 0
    for job in stalled.only("pk", "status", "language", "filename", "processed_rows"):
        with translation.override(job.language or settings.LANGUAGE_CODE):
            failure = str(refuse(IMPORT_STALLED, minutes=max(1, stall // 60)).message)
        now = timezone.now()
        if SubscriberImport.objects.filter(pk=job.pk, status=job.status, heartbeat_at__lt=cutoff).update(
            status=SubscriberImport.Status.FAILED, failure=failure[:500], data=b"", finished_at=now, heartbeat_at=now
        ):
            failed += 1
            audit_log(
                action="subscribers.import_stalled", actor_label="system", target=job,
                details={"was": job.status, "rows_done": job.processed_rows},
            )  # fmt: skip
    return failed


class _SupersededError(Exception):
    """The job is no longer running (failed by housekeeping meanwhile): stop, write nothing."""


def _save_progress(job: SubscriberImport, fields: list[str]) -> None:
    values = {name: getattr(job, name) for name in fields}
    running = SubscriberImport.objects.filter(pk=job.pk, status=SubscriberImport.Status.RUNNING)
    if not running.update(**values, heartbeat_at=timezone.now()):
        raise _SupersededError


@dataclass
class Batch:
    """Validated rows ready to be written, with what was rejected on the way."""

    records: list[Record]
    errors: list[RowError]
    rejected: int
    processed: int  # data rows read so far, this batch included
    last: bool = False  # nothing follows


def validated_batches(
    file: ImportFile, lookups: Lookups, default_channels: list[int], *, skip: int, header_notes: bool
) -> Iterator[Batch]:
    """Read and validate the file (pure: no database), a batch per CHUNK_ROWS data rows, after
    skipping the first `skip` data rows (done before a hand-over or a crash)."""
    columns: dict[str, int] | None = None
    records: list[Record] = []
    errors: list[RowError] = []
    rejected = processed = read = 0
    for number, cells in import_file_rows(file):
        if not any(c not in ("", None) for c in cells):
            continue
        if columns is None:
            columns, ignored = map_header(cells)
            check_header(columns)
            if header_notes:
                errors.extend(RowError(number, label[:100], "Unknown column, ignored.") for label in ignored[:100])
            continue
        processed += 1
        if processed <= skip:
            continue
        read += 1
        record, row_errors = validate_row(number, cells, columns, lookups, default_channels)
        if record is None:
            errors.extend(row_errors)
            rejected += 1
        else:
            records.append(record)
        if read >= CHUNK_ROWS:
            yield Batch(records, errors, rejected, processed)
            records, errors, rejected, read = [], [], 0, 0
    if columns is None:
        raise refuse(IMPORT_FILE_EMPTY)
    yield Batch(records, errors, rejected, processed, last=True)


class _ReadAhead:
    """Runs a (database-free) iterator in a thread, one batch ahead: the next chunk is parsed
    and validated while PostgreSQL writes the current one. Exceptions reach the consumer; the
    thread speaks the consumer's language (messages are made there)."""

    _DONE = object()

    def __init__(self, source: Iterator[Batch]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._language = translation.get_language()
        self._thread = threading.Thread(target=self._fill, args=(source,), daemon=True, name="import-read-ahead")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, source: Iterator[Batch]) -> None:
        with translation.override(self._language):
            try:
                for batch in source:
                    if not self._put(batch):
                        return
            except BaseException as exc:  # handed to the consumer, raised there
                self._put(exc)
                return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _keep(errors: list[RowError], more: list[RowError]) -> None:
    """Collect row errors up to MAX_IMPORT_ERRORS (the rest is only counted)."""
    room = MAX_IMPORT_ERRORS - len(errors)
    if room > 0:
        errors.extend(more[:room])


def subscriber_import_run(*, import_id: int, resume: bool = False) -> SubscriberImport:
    """Worker: run a queued import chunk by chunk (each chunk commits on its own). A long import
    hands over to a fresh task before the queue's timeout (TIME_BUDGET_SECONDS) and carries on
    after the rows already done; `resume=True` also continues one whose worker died. Ends the
    job as done or failed (with a message in the uploader's language), its file deleted."""
    job = _import_claim(import_id=import_id, resume=resume)
    if job is None:
        return SubscriberImport.objects.defer("data").get(pk=import_id)  # finished, failed, or taken
    with translation.override(job.language or settings.LANGUAGE_CODE):
        errors = [RowError(e["row"], e["column"], e["message"]) for e in job.errors] if resume else []
        try:
            finished = _import_work(job, errors, resume=resume)
        except _SupersededError:
            return job
        except ApplicationError as exc:
            job.status, job.failure = SubscriberImport.Status.FAILED, exc.message
        except Exception as exc:
            logger.exception("import %s failed", import_id)
            job.status = SubscriberImport.Status.FAILED
            job.failure = refuse(IMPORT_UNEXPECTED, error=exc.__class__.__name__).message
        else:
            if not finished:
                return job  # handed over to a new task
            job.status = SubscriberImport.Status.DONE
        _import_finish(job, errors)
    return job


def _import_claim(*, import_id: int, resume: bool) -> SubscriberImport | None:
    """Take the job (queued → running), or continue it (`resume`: still running). None if it is
    not ours to run (finished, failed, or another worker claimed it first)."""
    now = timezone.now()
    jobs = SubscriberImport.objects.filter(pk=import_id)
    if resume:
        claimed = jobs.filter(status=SubscriberImport.Status.RUNNING).update(heartbeat_at=now)
    else:
        claimed = jobs.filter(status=SubscriberImport.Status.QUEUED).update(
            status=SubscriberImport.Status.RUNNING, started_at=now, heartbeat_at=now
        )
    return SubscriberImport.objects.get(pk=import_id) if claimed else None


def _import_work(job: SubscriberImport, errors: list[RowError], *, resume: bool) -> bool:
    """Check the file, then import it chunk by chunk. False when handed over to a new task."""
    started = monotonic()
    file = import_file_open(job.file_format, bytes(job.data))
    if not resume:
        job.total_rows = file.data_rows
        _save_progress(job, ["total_rows"])
    explicit = selectors.is_party_tenant() and job.explicit_consent
    lookups = Lookups.load()
    processed = job.processed_rows if resume else 0
    reader = _ReadAhead(
        validated_batches(file, lookups, list(job.default_channel_ids), skip=processed, header_notes=not resume)
    )
    try:
        for batch in reader:
            _keep(errors, batch.errors)
            job.rows_rejected += batch.rejected
            processed = max(processed, batch.processed)
            _flush(job, batch.records, explicit, lookups, errors, processed)
            if not batch.last and monotonic() - started > TIME_BUDGET_SECONDS:
                enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk, resume=True)
                return False
    finally:
        reader.close()
    job.total_rows = processed
    if job.subscriptions_created >= ANALYZE_AFTER_ROWS:
        _analyze()
    return True


_FINAL_FIELDS = (
    "status", "failure", "errors", "finished_at", "total_rows", "processed_rows", "rows_rejected",
    "subscribers_created", "subscribers_matched", "subscriptions_created",
)  # fmt: skip


def _import_finish(job: SubscriberImport, errors: list[RowError]) -> None:
    """Write the outcome and delete the file, if the job is still ours. Should the outcome not
    be storable (the database refuses a value), the job fails without its error list: it must
    never stay "running" with the file kept."""
    job.failure = job.failure[:500]
    job.errors = [e.as_dict() for e in errors[:MAX_IMPORT_ERRORS]]
    job.finished_at = timezone.now()
    running = SubscriberImport.objects.filter(pk=job.pk, status=SubscriberImport.Status.RUNNING)
    try:
        with transaction.atomic():
            written = running.update(
                **{name: getattr(job, name) for name in _FINAL_FIELDS}, data=b"", heartbeat_at=job.finished_at
            )
    except DatabaseError as exc:
        logger.exception("import %s: could not store its outcome", job.pk)
        job.status = SubscriberImport.Status.FAILED
        job.failure = refuse(IMPORT_UNEXPECTED, error=exc.__class__.__name__).message[:500]
        job.errors = []
        written = running.update(
            status=job.status, failure=job.failure, errors=[], finished_at=job.finished_at, data=b"",
            heartbeat_at=job.finished_at,
        )  # fmt: skip
    if not written:
        return  # failed by housekeeping meanwhile
    job.data = b""
    audit_log(
        action="subscribers.imported", actor_label=job.created_by_label, target=job,
        details={
            "status": job.status, "rows": job.total_rows, "new_people": job.subscribers_created,
            "known_people": job.subscribers_matched, "subscriptions": job.subscriptions_created,
            "rejected_rows": job.rows_rejected,
        },
    )  # fmt: skip


def _analyze() -> None:
    """Fresh planner statistics after a large import: until autovacuum gets to it, PostgreSQL
    would plan the admin lists as if the tables were still small. Only an optimisation: the
    import has succeeded whatever happens here."""
    try:
        with db.cursor() as cursor:
            cursor.execute("ANALYZE subscribers_subscriber, messengers_contact, subscribers_subscription")
    except DatabaseError:
        logger.exception("ANALYZE after an import failed")


def _flush(
    job: SubscriberImport,
    chunk: list[Record],
    explicit: bool,
    lookups: Lookups,
    errors: list[RowError],
    processed: int,
) -> None:
    with transaction.atomic():
        # Not waiting for the disk at every chunk's commit: a crash can then lose the last chunks,
        # but only together with their progress (same transaction), and resuming the import
        # redoes exactly those rows.
        with db.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        if chunk:
            result = chunk_write(chunk, job, explicit, lookups)
            _keep(errors, result.errors)
            job.rows_rejected += len(result.errors)
            job.subscribers_created += result.created
            job.subscribers_matched += result.matched
            job.subscriptions_created += result.subscriptions
        job.processed_rows = processed
        job.errors = [e.as_dict() for e in errors[:MAX_IMPORT_ERRORS]]
        # a job failed by housekeeping meanwhile raises _SupersededError: this chunk is rolled back
        _save_progress(
            job,
            ["processed_rows", "rows_rejected", "subscribers_created", "subscribers_matched",
             "subscriptions_created", "errors"],
        )  # fmt: skip
