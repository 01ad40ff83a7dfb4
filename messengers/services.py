"""Writes of the messenger layer: connections, contacts, webhook events, single messages, sandbox.

Webhook events are stored first (unique key, so replays are no-ops) and applied by workers in
batches (`webhook_events_apply`): statuses go to the status sinks (settings.MESSENGER_STATUS_SINKS:
single messages here, broadcast deliveries in broadcasts), inbound messages become
InboundMessage rows that the handlers in settings.MESSENGER_INBOUND_HANDLERS see in order
(keyword commands first, later the inbox).

Apply runs may overlap (a second one queued by the dispatcher's sweep, a task retried). Status
batches run side by side: the sinks merge in SQL under row locks taken in one order
(messengers.status.merge_into), so the result does not depend on how events are split between
runs. Inbound batches run one at a time per tenant (an advisory lock), oldest first by the
provider's timestamp, so a person's messages are handled in the order they were sent.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tenants.utils import get_public_schema_name, schema_context
from psycopg.types.json import Jsonb

from accounts.models import User
from accounts.services import audit_log
from core import crypto
from core.backoff import backoff_seconds
from core.errors import ApplicationError
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers import endpoints, ratelimit, selectors
from messengers.adapters import get_adapter
from messengers.adapters.base import (
    CREDENTIAL_FIELDS,
    UNREACHABLE_KINDS,
    Adapter,
    Button,
    CheckResult,
    ErrorKind,
    Media,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    StatusEvent,
    TemplateRef,
)
from messengers.adapters.base import (
    InboundMessage as InboundEvent,
)
from messengers.adapters.base import (
    WebhookEvent as Event,
)
from messengers.events import clean, clean_text, event_from_json, event_to_json
from messengers.models import (
    DEFAULT_RATES,
    Connection,
    Contact,
    InboundMessage,
    OutboundMessage,
    SandboxMessage,
    WebhookEvent,
    WhatsAppTemplate,
)
from messengers.status import merge_into

logger = logging.getLogger(__name__)

MANAGE_PERMISSION = "messengers.manage_connection"
NOT_A_MANAGER = (
    "Only administrators may add, change, test, pause or resume messenger connections. "
    "Ask an administrator of your organisation."
)
UNKNOWN_CREDENTIAL = "Unknown credential {key} for {provider}; expected one of: {allowed}."
MISSING_CREDENTIAL = "{provider} needs the credential(s): {missing}."
EXTERNAL_ID_TAKEN = "Another connection already uses the {provider} account {external_id}."
NEEDS_EXTERNAL_ID = "{provider} needs its external id ({what})."
EXTERNAL_ID_WHAT = {
    Provider.WHATSAPP: "the phone number id",
    Provider.TELEGRAM: "the bot id, the digits before ':' in the token",
    Provider.SMS: "the sender number or MG… messaging service",
    Provider.EMAIL: "the sender e-mail address",
}
REQUIRED_CREDENTIALS = {
    Provider.WHATSAPP: ("access_token", "app_secret"),
    Provider.TELEGRAM: ("bot_token",),
    Provider.SMS: ("auth_token",),
    Provider.EMAIL: ("host",),
    Provider.SANDBOX: (),
}

# Accounts that can belong to one connection only, platform-wide: their webhooks go to one URL.
# (E-mail senders may be shared; sandboxes are per tenant.)
UNIQUE_ACCOUNTS = frozenset({Provider.WHATSAPP, Provider.TELEGRAM, Provider.SMS})
# Why a contact was blocked when a provider said it cannot be reached (undone when a later
# delivery says otherwise, and only then).
PROVIDER_UNREACHABLE = "provider: unreachable"

# Deferred statuses (their message is not recorded yet) are retried with growing pauses and
# kept — never dropped — for this long; after that they stay visible as deferred in the admin
# for WEBHOOK_EVENT_RETENTION_DAYS more (webhook_events_purge).
DEFERRED_RETRY_FOR = timedelta(days=7)
# An apply run starts no batch after APPLY_TIME_BUDGET seconds, and one batch takes a small
# part of that; the flag that keeps a second run from being queued lives twice as long, so it
# does not expire under a working run (it still expires should the worker die). Overlapping
# runs are safe anyway (statuses merge in SQL, inbound messages take a lock); the flag only
# keeps them from being the rule.
APPLY_TIME_BUDGET = 20.0
APPLY_LOCK_SECONDS = int(2 * APPLY_TIME_BUDGET)
APPLY_FLAG = "messengers:apply-scheduled"
# PostgreSQL advisory lock (two-key form: this class, hash of the schema): held by the one
# transaction that applies a tenant's inbound messages, so a person's messages are applied in
# the order they were sent even when apply runs overlap.
INBOUND_LOCK_CLASS = 0x6D6E6C02
# Single messages: tries per send, and the longest pause between tries a worker may sit out.
SINGLE_SEND_ATTEMPTS = 3
SINGLE_RETRY_WAIT_MAX = 10.0


# --------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------
def user_can_manage_connections(user: User | None) -> bool:
    return bool(user and user.is_active and user.has_perm(MANAGE_PERMISSION))


def _require_manager(actor: User | None) -> None:
    """Every connection write and provider call made for a person checks that person here, so
    no interface (admin, a later API) can skip it. No actor: the platform itself (an automatic
    pause) or an operator's command."""
    if actor is not None and not user_can_manage_connections(actor):
        raise ApplicationError(NOT_A_MANAGER)


def _check_endpoints(api_base: str | None, creds: dict[str, str], changed: Iterable[str], *, by_operator: bool) -> None:
    """Tenant-side values must be on the operator's allow-lists (see messengers.endpoints).
    `api_base` None: not being set now; `changed`: the credential keys being set now. A new SMTP
    port counts too, or an operator's off-list host could be probed port by port."""
    if by_operator:
        return
    if api_base is not None:
        endpoints.api_base_check(api_base)
    if {"host", "port"} & set(changed):
        endpoints.smtp_host_check(creds.get("host", ""))


def _clean_credentials(provider: Provider, credentials: dict[str, str]) -> dict[str, str]:
    allowed = CREDENTIAL_FIELDS[provider]
    unknown = [key for key in credentials if key not in allowed]
    if unknown:
        raise ApplicationError(
            UNKNOWN_CREDENTIAL.format(
                key=", ".join(unknown), provider=provider.value, allowed=", ".join(allowed) or "-"
            )
        )
    return {key: str(value).strip() for key, value in credentials.items() if str(value).strip()}


@transaction.atomic
def connection_create(
    *,
    provider: str,
    name: str,
    credentials: dict[str, str] | None = None,
    external_id: str = "",
    account_id: str = "",
    public_address: str = "",
    api_base: str = "",
    rate_limit_per_second: Decimal | float | None = None,
    whatsapp_tier: int | None = None,
    price_per_message: Decimal | float | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
    by_operator: bool = False,
) -> Connection:
    """A new connection. Its API base and SMTP host must be on the allow-lists unless an operator
    sets them (`by_operator`: management commands, scripts, never a tenant's request)."""
    _require_manager(actor)
    kind = Provider(provider)
    creds = _clean_credentials(kind, credentials or {})
    api_base = api_base.strip()
    _check_endpoints(api_base, creds, creds, by_operator=by_operator)
    if kind == Provider.TELEGRAM:
        creds.setdefault("webhook_secret", secrets.token_urlsafe(32))
        if not external_id and ":" in creds.get("bot_token", ""):
            external_id = creds["bot_token"].split(":", 1)[0]
    missing = [key for key in REQUIRED_CREDENTIALS[kind] if not creds.get(key)]
    if missing:
        raise ApplicationError(MISSING_CREDENTIAL.format(provider=kind.value, missing=", ".join(missing)))
    if kind != Provider.SANDBOX and not external_id:
        raise ApplicationError(NEEDS_EXTERNAL_ID.format(provider=kind.value, what=EXTERNAL_ID_WHAT[kind]))
    _check_external_id_free(kind, external_id, exclude_route=None)
    connection = Connection(
        provider=kind.value,
        name=name.strip(),
        external_id=external_id.strip(),
        account_id=account_id.strip(),
        public_address=public_address.strip(),
        api_base=api_base,
        rate_limit_per_second=Decimal(str(rate_limit_per_second)) if rate_limit_per_second else DEFAULT_RATES[kind],
        whatsapp_tier=whatsapp_tier,
        price_per_message=Decimal(str(price_per_message)) if price_per_message is not None else Decimal("0"),
        credentials_encrypted=crypto.encrypt_json(creds) if creds else "",
    )
    connection.full_clean()
    connection.save()
    if kind == Provider.SANDBOX and not connection.external_id:
        connection.external_id = f"sandbox-{connection.pk}"
        connection.save(update_fields=["external_id"])
    _route_sync(connection, creds)
    audit_log(
        action="connection.created",
        actor=actor,
        target=connection,
        details={"provider": kind.value, "credential_keys": sorted(creds)},
        request=request,
    )
    return connection


def _check_external_id_free(kind: Provider, external_id: str, exclude_route: str | None) -> None:
    if not external_id or kind not in UNIQUE_ACCOUNTS:
        return
    from tenants.models import WebhookRoute

    with schema_context(get_public_schema_name()):
        clash = WebhookRoute.objects.filter(provider=kind.value, external_id=external_id)
        if exclude_route is not None:
            clash = clash.exclude(route_key=exclude_route)
        exists = clash.exists()
    if exists:
        raise ApplicationError(EXTERNAL_ID_TAKEN.format(provider=kind.value, external_id=external_id))


def _route_sync(connection: Connection, creds: dict[str, str] | None = None) -> None:
    """Keep the public routing table in step with the connection (same transaction)."""
    from tenants.models import Tenant, WebhookRoute

    creds = creds if creds is not None else selectors.connection_credentials(connection)
    verify = creds.get("verify_token", "")
    schema_name = db.schema_name
    with schema_context(get_public_schema_name()):
        tenant = Tenant.objects.get(schema_name=schema_name)
        WebhookRoute.objects.update_or_create(
            route_key=connection.route_key,
            defaults={
                "tenant": tenant,
                "provider": connection.provider,
                # WhatsApp routes by account id (one callback URL per Meta app); for Telegram bots
                # and Twilio senders the id only keeps them unique (one webhook per bot/number)
                "external_id": connection.external_id if connection.provider_enum in UNIQUE_ACCOUNTS else "",
                "connection_id": connection.pk,
                "verify_token_sha256": hashlib.sha256(verify.encode()).hexdigest() if verify else "",
            },
        )
    selectors.route_cache_clear()
    from messengers.webhooks import adapter_cache_clear

    adapter_cache_clear()  # new secrets verify this process's next webhook


# What connection_update may change (and, in this order, what the admin form shows).
EDITABLE_FIELDS = (
    "name",
    "external_id",
    "account_id",
    "public_address",
    "api_base",
    "rate_limit_per_second",
    "whatsapp_tier",
    "price_per_message",
)


@transaction.atomic
def connection_update(
    *,
    connection: Connection,
    actor: User | None,
    credentials: dict[str, str] | None = None,
    request: HttpRequest | None = None,
    by_operator: bool = False,
    **fields: Any,
) -> Connection:
    """Change settings; `credentials` replaces only the keys given (blank values keep the old).
    A changed API base or SMTP host must be on the allow-lists unless `by_operator`."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"connection_update cannot change {sorted(unknown)}")
    _require_manager(actor)
    kind = connection.provider_enum
    changed = [key for key, value in fields.items() if getattr(connection, key) != value]
    if "external_id" in changed:
        _check_external_id_free(kind, fields["external_id"], exclude_route=connection.route_key)
    creds = selectors.connection_credentials(connection)
    new_creds = _clean_credentials(kind, credentials or {})
    changed_keys = sorted(key for key, value in new_creds.items() if creds.get(key) != value)
    _check_endpoints(
        fields["api_base"] if "api_base" in changed else None,
        {**creds, **new_creds},
        changed_keys,
        by_operator=by_operator,
    )
    for key in changed:
        setattr(connection, key, fields[key])
    if changed_keys:
        creds.update(new_creds)
        connection.credentials_encrypted = crypto.encrypt_json(creds)
        changed.append("credentials_encrypted")
    if changed:
        connection.full_clean()
        connection.save(update_fields=[*changed, "updated_at"])
        _route_sync(connection, creds)
        audit_log(
            action="connection.updated",
            actor=actor,
            target=connection,
            details={"fields": sorted(set(changed) - {"credentials_encrypted"}), "credential_keys": changed_keys},
            request=request,
        )
    return connection


@transaction.atomic
def connection_set_status(
    *,
    connection: Connection,
    status: str,
    detail: str = "",
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> Connection:
    _require_manager(actor)
    if connection.status == status and connection.status_detail == detail:
        return connection
    before = connection.status
    connection.status = status
    connection.status_detail = detail[:300]
    connection.save(update_fields=["status", "status_detail", "updated_at"])
    audit_log(
        action="connection.status_changed",
        actor=actor,
        target=connection,
        details={"before": before, "after": status, "detail": detail},
        request=request,
    )
    return connection


def connection_check(*, connection: Connection, actor: User | None = None) -> CheckResult:
    """Ask the provider whether the credentials work, and remember the answer."""
    _require_manager(actor)
    try:
        result = get_adapter(selectors.connection_config(connection)).check_credentials()
    except crypto.SecretDecryptionError:
        result = CheckResult(ok=False, detail="Stored credentials cannot be decrypted (was FERNET_KEYS changed?).")
    Connection.objects.filter(pk=connection.pk).update(
        last_check_at=timezone.now(), last_check_ok=result.ok, last_check_detail=result.detail[:300]
    )
    connection.refresh_from_db(fields=["last_check_at", "last_check_ok", "last_check_detail"])
    return result


def connection_register_webhook(*, connection: Connection, actor: User | None = None) -> CheckResult:
    """Telegram: setWebhook with our URL and the connection's secret token."""
    _require_manager(actor)
    config = selectors.connection_config(connection)
    return get_adapter(config).register_webhook(config.webhook_url)


@transaction.atomic
def connection_sync_templates(*, connection: Connection, actor: User | None = None) -> int:
    """Fetch the WhatsApp templates from the Graph API and upsert them; returns the count."""
    _require_manager(actor)
    if connection.provider != Provider.WHATSAPP:
        raise ApplicationError("Only WhatsApp connections have message templates.")
    if not connection.account_id:
        raise ApplicationError("Enter the WhatsApp business account id (WABA id) to sync templates.")
    try:
        infos = get_adapter(selectors.connection_config(connection)).list_templates()
    except ProviderError as exc:
        # Meta's own words are in the log (the adapter wrote them there); people see the code.
        if exc.http_status is None:  # our own message: nothing came back, or nothing was asked
            raise ApplicationError(f"Meta refused the template list: {exc.message}.") from exc
        raise ApplicationError(
            f"Meta refused the template list (code {exc.code or exc.http_status}); the platform's log has its answer."
        ) from exc
    now = timezone.now()
    for info in infos:
        WhatsAppTemplate.objects.update_or_create(
            connection=connection,
            name=info.name,
            language=info.language,
            defaults={
                "category": info.category,
                "status": info.status,
                "body": info.body,
                "parameter_count": info.parameter_count,
                "components": list(info.components),
                "synced_at": now,
            },
        )
    audit_log(action="connection.templates_synced", actor=actor, target=connection, details={"count": len(infos)})
    return len(infos)


def connection_create_sandbox_for_tenant(*, tenant: Any) -> Connection:
    """Onboarding hook: every new tenant can try everything on simulated phones."""
    existing = Connection.objects.filter(provider=Provider.SANDBOX).first()
    if existing:
        return existing
    return connection_create(provider=Provider.SANDBOX, name="Sandbox", public_address="Sandbox")


@transaction.atomic
def connection_rotate_credentials() -> int:
    """Re-encrypt every stored credential with the newest FERNET key (see core.crypto)."""
    count = 0
    for conn in Connection.objects.exclude(credentials_encrypted="").only("pk", "credentials_encrypted"):
        rotated = crypto.rotate(conn.credentials_encrypted)
        if rotated != conn.credentials_encrypted:
            Connection.objects.filter(pk=conn.pk).update(credentials_encrypted=rotated)
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------
def contact_get_or_create(*, connection: Connection, address: str, display_name: str = "") -> Contact:
    contact, created = Contact.objects.get_or_create(
        connection=connection, address=address, defaults={"display_name": display_name[:200]}
    )
    if not created and display_name and not contact.display_name:
        contact.display_name = display_name[:200]
        contact.save(update_fields=["display_name", "updated_at"])
    return contact


def contact_set_status(*, contact: Contact, status: str, reason: str = "") -> Contact:
    if contact.status == status:
        return contact
    contact.status = status
    contact.status_reason = reason[:200]
    contact.status_changed_at = timezone.now()
    contact.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
    return contact


def contacts_mark_reachable(*, contact_ids: Iterable[int], reason: str) -> int:
    """A message to these people was delivered after all: undo a block made for `reason` (a
    provider's failure report that a later delivery contradicts, e.g. on another device)."""
    ids = list(contact_ids)
    if not ids:
        return 0
    return Contact.objects.filter(pk__in=ids, status=Contact.Status.BLOCKED, status_reason=reason[:200]).update(
        status=Contact.Status.ACTIVE, status_reason="", status_changed_at=timezone.now(), updated_at=timezone.now()
    )


def contacts_follow_messages(*, outcomes: Iterable[tuple[int | None, str, str]], reason: str) -> None:
    """Status sinks: contacts follow the final state of their messages, given as (contact id,
    status, error kind) of rows just merged (read back from the merge, under the rows' locks, so
    a concurrent run's newer state is never overwritten by an older view). A contact is
    unreachable while its message ended `failed` for an unreachable reason; a message that was
    delivered after all (multi-device) makes it reachable again."""
    unreachable: set[int] = set()
    reachable: set[int] = set()
    for contact_id, status, kind in outcomes:
        if not contact_id:
            continue
        if status == "failed" and kind in UNREACHABLE_KINDS:
            unreachable.add(contact_id)
        elif status in ("delivered", "read"):
            reachable.add(contact_id)
    if not unreachable and not reachable:
        return
    # lock in id order first: concurrent runs touching the same people wait instead of deadlocking
    list(Contact.objects.select_for_update().filter(pk__in=unreachable | reachable).order_by("pk").values_list("pk"))
    contacts_mark_unreachable(contact_ids=unreachable - reachable, reason=reason)
    contacts_mark_reachable(contact_ids=reachable, reason=reason)


def contacts_mark_unreachable(*, contact_ids: Iterable[int], reason: str) -> int:
    """A provider said these people cannot be reached (blocked the bot, not on WhatsApp…)."""
    ids = list(contact_ids)
    if not ids:
        return 0
    return (
        Contact.objects.filter(pk__in=ids)
        .exclude(status=Contact.Status.BLOCKED)
        .update(
            status=Contact.Status.BLOCKED,
            status_reason=reason[:200],
            status_changed_at=timezone.now(),
            updated_at=timezone.now(),
        )
    )


# --------------------------------------------------------------------------------------------
# Webhook events: store, then apply in batches
# --------------------------------------------------------------------------------------------
def webhook_events_store(
    *, connection: Connection, events: Sequence[Event], raw: Any = None, throttle: bool = False
) -> int:
    """Store normalised events (replays and duplicates are ignored by the unique key) and make
    sure a worker applies them soon. Returns how many were new. One INSERT per call: this runs
    in the webhook request, which must answer fast."""
    if not events:
        return 0
    now = timezone.now()
    raw_json = Jsonb(clean(raw)) if raw is not None and len(events) == 1 else None
    values: list[Any] = []
    for event in events:
        kind = WebhookEvent.Kind.STATUS if isinstance(event, StatusEvent) else WebhookEvent.Kind.INBOUND
        key = clean_text(event.dedupe_key)[:300]
        values += [connection.pk, key, kind.value, Jsonb(event_to_json(event)), raw_json, now]
    placeholders = ", ".join(["(%s, %s, %s, 'pending', %s, %s, %s, 0, '')"] * len(events))
    with db.cursor() as cursor:
        cursor.execute(
            # only %s placeholders are interpolated; the values go as parameters
            "INSERT INTO messengers_webhookevent "  # noqa: S608
            "(connection_id, dedupe_key, kind, state, payload, raw, received_at, attempts, error) "
            f"VALUES {placeholders} ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id",
            values,
        )
        created = len(cursor.fetchall())
    if created:
        if throttle:
            webhook_schedule_apply_throttled()
        else:
            webhook_schedule_apply()
    return created


_LAST_SCHEDULED: dict[str, float] = {}


ERASED_KEY_PREFIX = "erased:"


def erased_key(dedupe_key: str) -> str:
    """The tombstone key of an erased event: a hash of its key, which names nobody (provider
    message ids hold random parts, so the hash cannot be reversed by trying phone numbers)."""
    return ERASED_KEY_PREFIX + hashlib.sha256(dedupe_key.encode()).hexdigest()


def webhook_events_forget(*, connection_id: int, event_ids: Iterable[int]) -> int:
    """Erasure: delete stored events of a person (their bodies name them), keeping for each a
    tombstone with only the hash of its dedupe key, so a provider's re-delivery (Meta retries for
    up to seven days) is recognised and dropped instead of acting again. Tombstones count as
    applied events and go with the webhook retention."""
    rows = list(
        WebhookEvent.objects.filter(connection_id=connection_id, pk__in=list(event_ids))
        .exclude(dedupe_key__startswith=ERASED_KEY_PREFIX)
        .values_list("pk", "dedupe_key", "kind")
    )
    if not rows:
        return 0
    now = timezone.now()
    WebhookEvent.objects.filter(pk__in=[pk for pk, _, _ in rows]).delete()
    WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                connection_id=connection_id,
                dedupe_key=erased_key(key),
                kind=kind,
                state=WebhookEvent.State.APPLIED,
                payload={},
                applied_at=now,
            )
            for _, key, kind in rows
        ],
        ignore_conflicts=True,
    )
    return len(rows)


def webhook_events_purge(*, older_than_days: int | None = None) -> int:
    """Delete applied webhook events older than the retention (raw bodies hold personal data).

    Meta retries an unacknowledged webhook for up to seven days, so the default of fourteen
    keeps every dedupe key for as long as a replay can arrive. Deferred and failed events are
    retried for DEFERRED_RETRY_FOR and then kept for the same retention, for inspection: a status
    for a message whose id was erased with its recipient (GDPR) never finds its message, and must
    not keep the recipient's number for ever. Pending events are never purged here."""
    days = older_than_days if older_than_days is not None else settings.WEBHOOK_EVENT_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = WebhookEvent.objects.filter(state=WebhookEvent.State.APPLIED, received_at__lt=cutoff).delete()
    given_up, _ = WebhookEvent.objects.filter(
        state__in=[WebhookEvent.State.DEFERRED, WebhookEvent.State.FAILED], received_at__lt=cutoff - DEFERRED_RETRY_FOR
    ).delete()
    return deleted + given_up


def webhook_schedule_apply_throttled() -> None:
    """From the webhook views: at most once a second per tenant and process, so a flood of
    webhooks does not turn into a flood of cache lookups (the apply task drains everything)."""
    now = time.monotonic()
    schema = db.schema_name
    if now - _LAST_SCHEDULED.get(schema, 0.0) < 1.0:
        return
    _LAST_SCHEDULED[schema] = now
    webhook_schedule_apply()


def webhook_schedule_apply() -> None:
    """Queue one apply task unless one is already queued or running for this tenant (the cache
    key is tenant-scoped; it expires after APPLY_LOCK_SECONDS should a worker die). The
    dispatcher's sweep covers anything that slips through."""
    if cache.add(APPLY_FLAG, 1, timeout=APPLY_LOCK_SECONDS):
        enqueue_tenant_task(
            "messengers.tasks.webhook_events_apply_task",
            task_name=f"{db.schema_name}:apply-events",
            keep_result=False,  # one every few seconds per tenant under load (core.tasks)
        )


def webhook_events_apply_and_release() -> dict[str, int]:
    """The apply task: work off the backlog, then let the next stored event schedule a new run.
    Checking once more after releasing closes the gap in which an event stored during the last
    batch found the flag still set and did not schedule anything."""
    stats = webhook_events_apply()
    cache.delete(APPLY_FLAG)
    if WebhookEvent.objects.filter(_ready_filter(timezone.now())).exists():
        webhook_schedule_apply()
    return stats


def webhook_events_apply(*, batch_size: int = 1000, time_budget: float = APPLY_TIME_BUDGET) -> dict[str, int]:
    """Apply pending events until none are left (or the time budget is spent)."""
    started = time.monotonic()
    totals: dict[str, int] = defaultdict(int)
    while time.monotonic() - started < time_budget:
        statuses = _apply_status_batch(batch_size)
        inbound = _apply_inbound_batch(batch_size)
        for stats in (statuses, inbound):
            for key, value in stats.items():
                totals[key] += value
        if statuses["picked"] < batch_size and inbound["picked"] < batch_size:
            break
    return dict(totals)


def _ready_filter(now: datetime) -> Q:
    return Q(state=WebhookEvent.State.PENDING) | Q(
        state__in=[WebhookEvent.State.DEFERRED, WebhookEvent.State.FAILED],
        applied_at__lte=now,  # for deferred/failed rows, applied_at holds "retry not before"
        received_at__gte=now - DEFERRED_RETRY_FOR,
    )


def _retry_at(now: datetime, attempts: int) -> datetime:
    return now + timedelta(seconds=backoff_seconds(attempts + 1, first=1.0, cap=300.0))


def _apply_status_batch(batch_size: int) -> dict[str, int]:
    """Status events: any number of runs at once, each on the rows it could lock (the sinks
    merge so that the result does not depend on how events are split between runs)."""
    now = timezone.now()
    stats = {"picked": 0, "applied": 0, "deferred": 0, "failed": 0}
    with transaction.atomic():
        rows = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(_ready_filter(now), kind=WebhookEvent.Kind.STATUS)
            .order_by("id")
            .only("id", "connection_id", "kind", "payload", "attempts", "state")[:batch_size]
        )
        stats["picked"] = len(rows)
        if not rows:
            return stats
        outcome: dict[int, tuple[str, str]] = {}
        by_connection: dict[int, list[tuple[WebhookEvent, StatusEvent]]] = defaultdict(list)
        for row in rows:
            event = event_from_json(row.payload)
            assert isinstance(event, StatusEvent)
            by_connection[row.connection_id].append((row, event))
        for connection_id in sorted(by_connection):  # one order for every run: no lock cycles
            pairs = by_connection[connection_id]
            try:
                with transaction.atomic():
                    matched = _apply_statuses(connection_id, [event for _, event in pairs])
            except Exception as exc:  # a failing sink must not hold up everything else
                logger.exception("status events of connection %s failed", connection_id)
                for row, _ in pairs:
                    outcome[row.pk] = (WebhookEvent.State.FAILED, f"{exc.__class__.__name__}: {exc}"[:500])
                continue
            for row, event in pairs:
                if event.provider_message_id in matched:
                    outcome[row.pk] = (WebhookEvent.State.APPLIED, "")
                else:
                    outcome[row.pk] = (WebhookEvent.State.DEFERRED, "no message with this id recorded yet")
        _write_outcomes(rows, outcome, now)
    _count(stats, outcome)
    return stats


def _apply_inbound_batch(batch_size: int) -> dict[str, int]:
    """Inbound messages: one transaction per tenant at a time (the others wait for it), taking
    the oldest by the provider's timestamp (then by arrival), so a person's commands are applied
    in the order sent even when apply runs overlap. One that arrives after a later one of the
    same person was applied is the handlers' business (subscribers.keywords compares times)."""
    now = timezone.now()
    stats = {"picked": 0, "applied": 0, "deferred": 0, "failed": 0}
    ready = WebhookEvent.objects.filter(kind=WebhookEvent.Kind.INBOUND).exclude(state=WebhookEvent.State.APPLIED)
    if not ready.filter(_ready_filter(now)).exists():  # the usual case: no lock, no wait
        return stats
    with transaction.atomic():
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [INBOUND_LOCK_CLASS, db.schema_name])
        rows = list(
            ready.select_for_update()
            .filter(_ready_filter(timezone.now()))
            .order_by(Cast(KeyTextTransform("at", "payload"), DateTimeField()), "id")
            .only("id", "connection_id", "dedupe_key", "kind", "payload", "attempts", "state")[:batch_size]
        )
        stats["picked"] = len(rows)
        outcome: dict[int, tuple[str, str]] = {}
        for row in rows:
            try:
                with transaction.atomic():
                    _apply_inbound(row)
                outcome[row.pk] = (WebhookEvent.State.APPLIED, "")
            except Exception as exc:  # one odd message must not block the others
                logger.exception("inbound webhook event %s failed", row.pk)
                outcome[row.pk] = (WebhookEvent.State.FAILED, f"{exc.__class__.__name__}: {exc}"[:500])
        _write_outcomes(rows, outcome, now)
    _count(stats, outcome)
    return stats


def _count(stats: dict[str, int], outcome: dict[int, tuple[str, str]]) -> None:
    for state, _ in outcome.values():
        stats[str(state)] = stats.get(str(state), 0) + 1


def _write_outcomes(rows: list[WebhookEvent], outcome: dict[int, tuple[str, str]], now: datetime) -> None:
    applied = [pk for pk, (state, _) in outcome.items() if state == WebhookEvent.State.APPLIED]
    if applied:
        WebhookEvent.objects.filter(pk__in=applied).update(
            state=WebhookEvent.State.APPLIED, applied_at=now, attempts=F("attempts") + 1, error=""
        )
    retry: list[WebhookEvent] = []
    for row in rows:
        state, error = outcome.get(row.pk, (WebhookEvent.State.APPLIED, ""))
        if state == WebhookEvent.State.APPLIED:
            continue
        row.state = state
        row.attempts = (row.attempts or 0) + 1
        row.applied_at = _retry_at(now, row.attempts)
        row.error = error
        retry.append(row)
    if retry:
        WebhookEvent.objects.bulk_update(retry, ["state", "attempts", "applied_at", "error"])


def _apply_statuses(connection_id: int, events: list[StatusEvent]) -> set[str]:
    matched: set[str] = set()
    for path in settings.MESSENGER_STATUS_SINKS:
        remaining = [event for event in events if event.provider_message_id not in matched]
        if not remaining:
            break
        matched |= import_string(path)(connection_id=connection_id, events=remaining)
    return matched


def _apply_inbound(row: WebhookEvent) -> InboundMessage | None:
    if WebhookEvent.objects.filter(connection_id=row.connection_id, dedupe_key=erased_key(row.dedupe_key)).exists():
        # a provider re-delivered a message of a person whose data was erased since: it names
        # them again and must not act (an old START would subscribe them again)
        WebhookEvent.objects.filter(pk=row.pk).delete()
        return None
    event = event_from_json(row.payload)
    assert isinstance(event, InboundEvent)
    connection = Connection.objects.get(pk=row.connection_id)
    # a signed body may still carry an absurd sender; keep the message rather than fail forever
    address = event.sender[: Contact._meta.get_field("address").max_length]
    contact = contact_get_or_create(connection=connection, address=address, display_name=event.sender_name)
    # the 24-hour window: only real messages from the person open it, not a block signal
    if event.kind not in ("block", "unblock"):
        Contact.objects.filter(pk=contact.pk).filter(
            Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lt=event.at)
        ).update(last_inbound_at=event.at)
        contact.last_inbound_at = max(filter(None, [contact.last_inbound_at, event.at]))
    try:
        with transaction.atomic():
            message = InboundMessage.objects.create(
                connection=connection,
                contact=contact,
                provider_message_id=event.provider_message_id[:200],
                kind=event.kind,
                text=event.text,
                payload=dict(event.payload),
                reply_to_provider_id=event.reply_to_provider_id[:200],
                sent_at=event.at,
            )
    except IntegrityError:
        return None  # the same message arrived under another event key; already handled
    if event.kind == "block":
        # unless the person wrote to us after blocking (so they unblocked; that signal may be late)
        if contact.last_inbound_at is None or contact.last_inbound_at <= event.at:
            contact_set_status(contact=contact, status=Contact.Status.BLOCKED, reason="blocked the bot")
    elif event.kind == "unblock" and contact.status == Contact.Status.BLOCKED:
        contact_set_status(contact=contact, status=Contact.Status.ACTIVE, reason="unblocked the bot")
    for path in settings.MESSENGER_INBOUND_HANDLERS:
        handled = import_string(path)(message=message, event=event)
        if handled:
            InboundMessage.objects.filter(pk=message.pk).update(handled_by=str(handled)[:16])
            message.handled_by = str(handled)[:16]
            break
    return message


def outbound_apply_statuses(*, connection_id: int, events: list[StatusEvent]) -> set[str]:
    """Status sink for single messages (keyword replies, tests, inbox replies). Safe under any
    number of concurrent runs (see messengers.status.merge_into)."""
    result = merge_into(model=OutboundMessage, connection_id=connection_id, events=events, has_error_kind=False)
    contacts_follow_messages(
        outcomes=[(row.contact_id, row.status, row.error_kind) for row in result.changed], reason=PROVIDER_UNREACHABLE
    )
    return result.matched


# --------------------------------------------------------------------------------------------
# Single messages (keyword confirmations, tests, inbox replies)
# --------------------------------------------------------------------------------------------
def message_queue(
    *,
    connection: Connection,
    to: str,
    text: str = "",
    purpose: str = "reply",
    contact: Contact | None = None,
    buttons: Sequence[Button] = (),
    media: Media | None = None,
    template: TemplateRef | None = None,
    subject: str = "",
) -> OutboundMessage:
    """Record a single message and send it from a worker after commit (`subject`: e-mail only)."""
    payload: dict[str, Any] = {}
    if subject:
        payload["subject"] = subject
    if buttons:
        payload["buttons"] = [{"title": b.title, "url": b.url, "payload": b.payload} for b in buttons]
    if media:
        payload["media"] = {"url": media.url, "kind": media.kind}
    if template:
        payload["template"] = {
            "name": template.name,
            "language": template.language,
            "body_params": list(template.body_params),
        }
    outbound = OutboundMessage.objects.create(
        connection=connection, contact=contact, to=to, text=text, purpose=purpose, payload=payload
    )
    enqueue_tenant_task("messengers.tasks.message_send_task", outbound_id=outbound.pk)
    return outbound


def message_send(*, outbound_id: int) -> OutboundMessage:
    """Send a queued single message now (worker). Idempotent: only a queued message is sent, and
    the row is locked while it is (a second worker running the same task skips it)."""
    with transaction.atomic():
        outbound = (
            OutboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connection")
            .filter(pk=outbound_id)
            .first()
        )
        if outbound is None:  # another worker holds it right now
            return OutboundMessage.objects.get(pk=outbound_id)
        return _message_send_locked(outbound)


def _message_send_locked(outbound: OutboundMessage) -> OutboundMessage:
    if outbound.status != OutboundMessage.Status.QUEUED or outbound.provider_message_id:
        return outbound
    connection = outbound.connection
    if connection.status != Connection.Status.ACTIVE:
        outbound.status = OutboundMessage.Status.FAILED
        outbound.error_code = "connection_paused"
        outbound.error_detail = f"connection {connection.name} is {connection.status}"
        outbound.save(update_fields=["status", "error_code", "error_detail", "updated_at"])
        return outbound
    payload = outbound.payload or {}
    message = OutgoingMessage(
        to=outbound.to,
        text=outbound.text,
        subject=payload.get("subject", ""),
        buttons=tuple(Button(**b) for b in payload.get("buttons", [])),
        media=Media(**payload["media"]) if payload.get("media") else None,
        template=TemplateRef(
            name=payload["template"]["name"],
            language=payload["template"]["language"],
            body_params=tuple(payload["template"].get("body_params", [])),
        )
        if payload.get("template")
        else None,
        reference=f"o{outbound.pk}",
    )
    adapter = get_adapter(selectors.connection_config(connection))
    try:
        result = _send_paced(connection, adapter, message)
    except ProviderError as exc:
        outbound.status = OutboundMessage.Status.FAILED
        outbound.error_code = exc.code or exc.kind.value
        outbound.error_detail = exc.message[:300]
        outbound.save(update_fields=["status", "error_code", "error_detail", "updated_at"])
        if exc.unreachable and outbound.contact_id:
            contacts_mark_unreachable(contact_ids=[outbound.contact_id], reason=f"{exc.kind.value} ({exc.code})")
        if exc.retryable:
            logger.warning("single message %s failed after %d attempts: %s", outbound.pk, SINGLE_SEND_ATTEMPTS, exc)
        return outbound
    OutboundMessage.objects.filter(pk=outbound.pk, status=OutboundMessage.Status.QUEUED).update(
        status=OutboundMessage.Status.SENT,
        provider_message_id=result.provider_message_id,
        sent_at=timezone.now(),
        updated_at=timezone.now(),
    )
    outbound.refresh_from_db()
    # a status may have arrived before we recorded the id: give deferred events another go now
    webhook_events_retry_deferred(connection_id=connection.pk)
    return outbound


def _send_paced(connection: Connection, adapter: Adapter, message: OutgoingMessage) -> SendResult:
    """Send in the connection's next free slot; passing failures (5xx, timeouts, 429 with a
    short retry_after) get a few more tries in the same worker, since a single message has no
    retry schedule of its own. A rate limit pushes every sender of the connection back."""
    rate = float(connection.rate_limit_per_second)
    for attempt in range(1, SINGLE_SEND_ATTEMPTS + 1):
        slot = ratelimit.reserve(connection.pk, rate, 1)
        if slot.delay > 0:
            time.sleep(min(slot.delay, 30))
        try:
            return adapter.send(message)
        except ProviderError as exc:
            # A single message follows the provider's retry_after exactly, even when it is shorter.
            wait = exc.retry_after if exc.retry_after is not None else backoff_seconds(attempt, first=0.5, cap=30.0)
            if exc.kind == ErrorKind.RATE_LIMITED:
                ratelimit.penalize(connection.pk, wait)
            if not exc.retryable or attempt == SINGLE_SEND_ATTEMPTS or wait > SINGLE_RETRY_WAIT_MAX:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


def webhook_events_retry_deferred(*, connection_id: int) -> int:
    """Make deferred statuses of a connection due now (called after send results are recorded)."""
    count = WebhookEvent.objects.filter(connection_id=connection_id, state=WebhookEvent.State.DEFERRED).update(
        applied_at=timezone.now()
    )
    if count:
        webhook_schedule_apply()
    return count


# --------------------------------------------------------------------------------------------
# Sandbox: simulated phones
# --------------------------------------------------------------------------------------------
def sandbox_person_create(*, connection: Connection, name: str) -> Contact:
    if connection.provider != Provider.SANDBOX:
        raise ApplicationError("Simulated people exist only on the sandbox messenger.")
    name = name.strip()[:200] or "Testperson"
    for _ in range(20):
        address = f"+49155{secrets.randbelow(10**8):08d}"
        if not Contact.objects.filter(connection=connection, address=address).exists():
            return contact_get_or_create(connection=connection, address=address, display_name=name)
    raise ApplicationError("Could not find a free sandbox number; try again.")


def sandbox_receive(
    *, connection: Connection, address: str, text: str = "", kind: str = "text", payload: dict[str, Any] | None = None
) -> SandboxMessage:
    """A simulated person sends something: it enters the same pipeline as a real webhook."""
    if connection.provider != Provider.SANDBOX:
        raise ApplicationError("Only sandbox connections have simulated phones.")
    message_id = f"sbx-in-{secrets.token_hex(8)}"
    bubble = SandboxMessage.objects.create(
        connection=connection,
        address=address,
        direction=SandboxMessage.Direction.FROM_PHONE,
        text=text,
        provider_message_id=message_id,
    )
    contact = Contact.objects.filter(connection=connection, address=address).first()
    event = InboundEvent(
        provider_message_id=message_id,
        sender=address,
        at=timezone.now(),
        kind=kind,  # type: ignore[arg-type]
        text=text,
        sender_name=contact.display_name if contact else "",
        payload=payload or {},
    )
    webhook_events_store(connection=connection, events=[event], raw={"sandbox": True, "text": text, "kind": kind})
    return bubble


def sandbox_mark_read(*, connection: Connection, address: str) -> int:
    """The simulated phone displayed our messages: report them `read`, like a provider would."""
    now = timezone.now()
    unread = list(
        SandboxMessage.objects.filter(
            connection=connection, address=address, direction=SandboxMessage.Direction.TO_PHONE, read_at__isnull=True
        ).values_list("pk", "provider_message_id")
    )
    if not unread:
        return 0
    SandboxMessage.objects.filter(pk__in=[pk for pk, _ in unread]).update(read_at=now)
    events = [StatusEvent(provider_message_id=mid, status="read", at=now, recipient=address) for _, mid in unread]
    webhook_events_store(connection=connection, events=events)
    return len(unread)
