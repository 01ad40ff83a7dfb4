"""The workflow side of the broadcast admin: the buttons (which ones, and why an approver may
not press one — asked of broadcasts.services.broadcast_actions_for, never worked out here), the
views behind them, and the JSON the change page polls (progress, send plan)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from broadcasts import selectors, services
from broadcasts.models import Broadcast
from broadcasts.services.actions import Action
from core.errors import ApplicationError
from core.http import request_meta, request_user

ACTION_LABELS: list[tuple[Action, Any]] = [
    ("submit", _("Submit for approval")),
    ("approve", _("Approve")),
    ("reject", _("Reject")),
    ("bypass", _("Send now without approval (emergency)")),
    ("pause", _("Pause")),
    ("resume", _("Resume")),
    ("cancel", _("Cancel")),
    ("review", _("Mark as reviewed")),
]
_LIVE_CONTROLS = {"pause", "resume", "cancel"}


def allowed_actions(broadcast: Broadcast, user: User | None) -> list[str]:
    """The workflow buttons this user may press now (the services check the same again)."""
    actions = services.broadcast_actions_for(broadcast, user)
    return [key for key, _label in ACTION_LABELS if actions[key] is None]


def workflow_context(broadcast: Broadcast, user: User | None) -> dict[str, Any]:
    """The buttons of the change page, and the four-eyes reasons shown instead of a button."""
    actions = services.broadcast_actions_for(broadcast, user)
    allowed = {key for key, refusal in actions.items() if refusal is None}
    # controls a poll may switch on without a reload (a pause shows "resume"), rendered hidden
    possible = allowed | (_LIVE_CONTROLS if services.broadcast_controls_live(broadcast, user) else set())
    approve, review = actions["approve"], actions["review"]
    return {
        "workflow_actions": [(key, label, key in allowed) for key, label in ACTION_LABELS if key in possible],
        "approval_blocked": approve.reason if approve else "",
        "review_blocked": review.reason if review else "",
    }


def _error_text(exc: ApplicationError) -> str:
    """The services speak English; the refusals a user meets in the normal flow are shown in
    their language."""
    conflict = exc.extra.get("conflict")
    if isinstance(conflict, selectors.FourEyesConflict):
        return conflict.reason
    if "revision" in exc.extra:
        return str(
            _("This broadcast was changed after you opened it; read the new version below and approve it again.")
        )
    return exc.localized


def _run_action(action: str, broadcast: Broadcast, actor: User, request: HttpRequest) -> str:
    comment = request.POST.get("comment", "")
    meta = request_meta(request)
    if action == "submit":
        broadcast = services.broadcast_submit(broadcast=broadcast, actor=actor, meta=meta)
        if broadcast.status == Broadcast.Status.SUBMITTED:
            return str(_("Submitted; the approvers have been notified."))
        return str(
            _("No approval needed for these channels: it is %(status)s.") % {"status": broadcast.get_status_display()}
        )
    if action == "approve":
        seen = request.POST.get("revision", "")
        broadcast = services.broadcast_approve(
            broadcast=broadcast, actor=actor, revision=int(seen) if seen.isdigit() else 0, meta=meta
        )
        return str(_("Approved: %(status)s.") % {"status": broadcast.get_status_display()})
    if action == "reject":
        services.broadcast_reject(broadcast=broadcast, actor=actor, comment=comment, meta=meta)
        return str(_("Rejected; the author has been told why."))
    if action == "bypass":
        services.broadcast_send_without_approval(broadcast=broadcast, actor=actor, meta=meta)
        return str(_("Sending without approval; it will be reviewed afterwards."))
    if action == "pause":
        services.broadcast_pause(broadcast=broadcast, actor=actor, reason=comment or "paused by a user", meta=meta)
        return str(_("Paused."))
    if action == "resume":
        services.broadcast_resume(broadcast=broadcast, actor=actor, meta=meta)
        return str(_("Sending again."))
    if action == "cancel":
        services.broadcast_cancel(broadcast=broadcast, actor=actor, meta=meta)
        return str(_("Cancelled; nobody else gets it."))
    services.broadcast_review(broadcast=broadcast, actor=actor, comment=comment, meta=meta)
    return str(_("Marked as reviewed."))


class WorkflowViewsMixin(admin.ModelAdmin):
    """The broadcast admin's own URLs: the workflow buttons, the progress poll, the send plan."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/progress.json", view(self.progress_json), name="broadcasts_broadcast_progress"),
            path("<int:pk>/plan.json", view(self.plan_json), name="broadcasts_broadcast_plan"),
            path("<int:pk>/do/<str:action>/", view(self.action_view), name="broadcasts_broadcast_action"),
            path("<int:pk>/test/", view(self.test_send_view), name="broadcasts_broadcast_test"),
            *super().get_urls(),
        ]

    def progress_json(self, request: HttpRequest, pk: int) -> JsonResponse:
        """What the change page polls: the counts (they add up to `total`), the status with its
        label in the user's language, and the actions this user may take now."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        broadcast = get_object_or_404(Broadcast, pk=pk)
        return JsonResponse(
            {
                **selectors.broadcast_progress(broadcast).as_dict(),
                "status_label": broadcast.get_status_display(),
                "final": broadcast.status in services.FINAL,
                "paused_reason": broadcast.paused_reason if broadcast.status == Broadcast.Status.PAUSED else "",
                "actions": allowed_actions(broadcast, request_user(request)),
            }
        )

    def plan_json(self, request: HttpRequest, pk: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        plan = selectors.send_plan(get_object_or_404(Broadcast, pk=pk))
        return JsonResponse(
            {
                "recipients": plan.recipients,
                "seconds": plan.seconds,
                "cost_eur": str(plan.cost_eur),
                "warnings": plan.warnings,
                "lines": [{**line.__dict__, "cost_eur": str(line.cost_eur)} for line in plan.lines],
            }
        )

    def action_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        if request.method != "POST":
            raise PermissionDenied
        broadcast = get_object_or_404(Broadcast, pk=pk)
        actor = request_user(request)
        if actor is None or action not in dict(ACTION_LABELS):
            raise PermissionDenied
        try:
            result = _run_action(action, broadcast, actor, request)
        except ApplicationError as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(request, result)
        return HttpResponseRedirect(reverse("tenant_admin:broadcasts_broadcast_change", args=[pk]))

    def test_send_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """ "Send a test to me": the saved content to the user's own simulated phone (POST only;
        the service checks role, status and the rate limit)."""
        if request.method != "POST":
            raise PermissionDenied
        if not self.has_view_permission(request):
            raise PermissionDenied
        broadcast = get_object_or_404(Broadcast, pk=pk)
        actor = request_user(request)
        try:
            queued = services.broadcast_test_send(
                broadcast=broadcast, actor=actor, language=request.POST.get("language", ""), meta=request_meta(request)
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            text = _("Test sent to your test phone %(address)s.") % {"address": queued[0].to}
            if actor is not None and actor.has_perm("messengers.use_sandbox"):
                url = reverse("tenant_admin:messengers_phone", args=[queued[0].connection_id, queued[0].contact_id])
                messages.success(
                    request, format_html('{} <a href="{}">{}</a>', text, url, _("Open it in the simulator"))
                )
            else:
                messages.success(request, text)
        return HttpResponseRedirect(reverse("tenant_admin:broadcasts_broadcast_change", args=[pk]))
