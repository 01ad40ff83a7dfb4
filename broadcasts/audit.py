"""Labels of the audit actions broadcasts writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "broadcast.created": _("Broadcast created"),
    "broadcast.edited": _("Broadcast edited"),
    "broadcast.submitted": _("Submitted for approval"),
    "broadcast.approved": _("Approved"),
    "broadcast.rejected": _("Rejected"),
    "broadcast.reopened": _("Reopened for editing"),
    "broadcast.scheduled": _("Scheduled"),
    "broadcast.rescheduled": _("Send time changed"),
    "broadcast.sending": _("Sending started"),
    "broadcast.paused": _("Sending paused"),
    "broadcast.resumed": _("Sending resumed"),
    "broadcast.cancelled": _("Broadcast cancelled"),
    "broadcast.sent": _("Broadcast sent"),
    "broadcast.sent_without_approval": _("Sent without approval"),
    "broadcast.reviewed": _("Reviewed after sending"),
    "broadcast.self_approval_refused": _("Approval of own broadcast refused"),
    "broadcast.co_editor_approval_refused": _("Approval by a co-editor refused"),
    "broadcast.self_review_refused": _("Review of own emergency broadcast refused"),
    "broadcast.contributor_review_refused": _("Review by a contributor refused"),
    "broadcast.test_sent": _("Test sent to own phone"),
}
