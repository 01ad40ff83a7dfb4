"""Connections to providers: add, change, pause and resume, test the credentials, sync WhatsApp
templates, register the Telegram webhook, rotate the encryption of stored credentials. Keeps the
public routing table (tenants.WebhookRoute) in step with every change, in the same transaction.
Every write made for a person checks that the person may manage connections."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop
from django_tenants.utils import get_public_schema_name, schema_context

from accounts.models import User
from accounts.services import audit_log
from core import crypto
from core.errors import ApplicationError
from core.http import RequestMeta
from core.tenancy import connection as db
from messengers import endpoints, selectors
from messengers.adapters import get_adapter
from messengers.adapters.base import CREDENTIAL_FIELDS, CheckResult, Provider, ProviderError
from messengers.models import DEFAULT_RATES, Connection, WhatsAppTemplate
from tenants.models import Tenant, WebhookRoute

MANAGE_PERMISSION = "messengers.manage_connection"
NOT_A_MANAGER = gettext_noop(
    "Only administrators may add, change, test, pause or resume messenger connections. "
    "Ask an administrator of your organisation."
)
UNKNOWN_CREDENTIAL = gettext_noop("Unknown credential {key} for {provider}; expected one of: {allowed}.")
MISSING_CREDENTIAL = gettext_noop("{provider} needs the credential(s): {missing}.")
EXTERNAL_ID_TAKEN = gettext_noop("Another connection already uses the {provider} account {external_id}.")
NEEDS_EXTERNAL_ID = gettext_noop("{provider} needs its external id ({what}).")
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
    meta: RequestMeta | None = None,
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
        raise ApplicationError(MISSING_CREDENTIAL, params=dict(provider=kind.value, missing=", ".join(missing)))
    if kind != Provider.SANDBOX and not external_id:
        raise ApplicationError(NEEDS_EXTERNAL_ID, params=dict(provider=kind.value, what=EXTERNAL_ID_WHAT[kind]))
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
        meta=meta,
    )
    return connection


def _check_external_id_free(kind: Provider, external_id: str, exclude_route: str | None) -> None:
    if not external_id or kind not in UNIQUE_ACCOUNTS:
        return
    with schema_context(get_public_schema_name()):
        clash = WebhookRoute.objects.filter(provider=kind.value, external_id=external_id)
        if exclude_route is not None:
            clash = clash.exclude(route_key=exclude_route)
        exists = clash.exists()
    if exists:
        raise ApplicationError(EXTERNAL_ID_TAKEN, params=dict(provider=kind.value, external_id=external_id))


def _route_sync(connection: Connection, creds: dict[str, str] | None = None) -> None:
    """Keep the public routing table in step with the connection (same transaction)."""
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
    selectors.adapter_cache_clear()  # new secrets verify this process's next webhook


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


class _Keep(Enum):
    """A setting connection_update was not given (None is a value: no WhatsApp tier)."""

    KEEP = "keep"


KEEP = _Keep.KEEP


@transaction.atomic
def connection_update(
    *,
    connection: Connection,
    actor: User | None,
    credentials: dict[str, str] | None = None,
    meta: RequestMeta | None = None,
    by_operator: bool = False,
    name: str | _Keep = KEEP,
    external_id: str | _Keep = KEEP,
    account_id: str | _Keep = KEEP,
    public_address: str | _Keep = KEEP,
    api_base: str | _Keep = KEEP,
    rate_limit_per_second: Decimal | float | _Keep = KEEP,
    whatsapp_tier: int | None | _Keep = KEEP,
    price_per_message: Decimal | float | _Keep = KEEP,
) -> Connection:
    """Change the settings given (EDITABLE_FIELDS); `credentials` replaces only the keys given
    (blank values keep the old). A changed API base or SMTP host must be on the allow-lists
    unless `by_operator`."""
    given = {
        "name": name,
        "external_id": external_id,
        "account_id": account_id,
        "public_address": public_address,
        "api_base": api_base,
        "rate_limit_per_second": rate_limit_per_second,
        "whatsapp_tier": whatsapp_tier,
        "price_per_message": price_per_message,
    }
    fields: dict[str, Any] = {key: value for key, value in given.items() if value is not KEEP}
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
            meta=meta,
        )
    return connection


@transaction.atomic
def connection_set_status(
    *,
    connection: Connection,
    status: str,
    detail: str = "",
    actor: User | None = None,
    meta: RequestMeta | None = None,
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
        meta=meta,
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
        raise ApplicationError(gettext_noop("Only WhatsApp connections have message templates."))
    if not connection.account_id:
        raise ApplicationError(gettext_noop("Enter the WhatsApp business account id (WABA id) to sync templates."))
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


def connection_create_sandbox_for_tenant(*, tenant: Tenant) -> Connection:
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
