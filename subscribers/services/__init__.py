"""Writes of subscribers: consent, subscribe and unsubscribe, preferences, double opt-in for
e-mail, GDPR erasure, import and export, a tenant's wording of citizen texts. Split by subject;
import from here.

Every opt-in, confirmation, opt-out and erasure goes through `consent_record`, so the ledger is
complete. Functions take keyword-only arguments, run atomically and queue work on commit.
What does not belong here: parsing keyword commands (subscribers.commands), replying to them
(subscribers.keywords), reading (subscribers.selectors).
"""

from subscribers.services.catalogue import (
    consent_text_create,
    district_create,
    district_update,
    poster_create,
    poster_target_check,
)
from subscribers.services.consent import consent_record, consent_text_current
from subscribers.services.email import (
    email_confirmation_send,
    email_confirmations_purge_expired,
    email_subscription_confirm,
    email_subscription_request,
)
from subscribers.services.gdpr import (
    erasure_late_scrub,
    outbound_scrub,
    subscriber_erase,
    subscriber_export_personal_data,
)
from subscribers.services.imports import (
    subscriber_import_create,
    subscriber_import_errors_csv,
    subscriber_import_resume,
    subscriber_import_run,
    subscriber_imports_fail_stalled,
    subscribers_export,
)
from subscribers.services.subscriptions import (
    StartResult,
    subscriber_create_with_consent,
    subscriber_for_contact,
    subscriber_preferences_update,
    subscriber_set_district,
    subscriber_set_language,
    subscriber_unsubscribe_all,
    subscriber_update,
    subscription_start,
    subscriptions_stop,
)
from subscribers.services.texts import text_override_check, text_override_delete, text_override_save

__all__ = [
    "StartResult",
    "consent_record",
    "consent_text_create",
    "consent_text_current",
    "district_create",
    "district_update",
    "email_confirmation_send",
    "email_confirmations_purge_expired",
    "email_subscription_confirm",
    "email_subscription_request",
    "erasure_late_scrub",
    "outbound_scrub",
    "poster_create",
    "poster_target_check",
    "subscriber_erase",
    "subscriber_export_personal_data",
    "subscriber_for_contact",
    "subscriber_import_create",
    "subscriber_import_errors_csv",
    "subscriber_import_resume",
    "subscriber_import_run",
    "subscriber_imports_fail_stalled",
    "subscriber_preferences_update",
    "subscriber_set_district",
    "subscriber_set_language",
    "subscriber_unsubscribe_all",
    "subscriber_create_with_consent",
    "subscriber_update",
    "subscribers_export",
    "subscription_start",
    "subscriptions_stop",
    "text_override_check",
    "text_override_delete",
    "text_override_save",
]
