"""django-q2 entry points of subscribers (thin: ids in, service call). Queue them with
core.tasks.enqueue_tenant_task; they run inside the tenant's schema."""

from __future__ import annotations

from subscribers import services
from subscribers.services import email as email_services


def subscriber_import_run_task(import_id: int, resume: bool = False) -> str:
    return services.subscriber_import_run(import_id=import_id, resume=resume).status


def email_confirmation_send_task(confirmation_id: int) -> bool:
    return services.email_confirmation_send(confirmation_id=confirmation_id)


def email_known_notice_send_task(subscriber_id: int, contact_id: int) -> bool:
    return email_services.email_known_notice_send(subscriber_id=subscriber_id, contact_id=contact_id)


def outbound_scrub_task() -> int:
    return services.outbound_scrub()


def subscribers_housekeeping_task() -> dict[str, int]:
    """Periodic (per tenant): forget expired unconfirmed e-mail requests, blank the recipients of
    sent erasure confirmations and the provider ids sends in flight recorded after an erasure, fail
    imports whose worker died (and delete their files)."""
    return {
        "expired_confirmations": services.email_confirmations_purge_expired(),
        "scrubbed_messages": services.outbound_scrub(),
        "late_provider_ids": services.erasure_late_scrub(),
        "stalled_imports": services.subscriber_imports_fail_stalled(),
    }
