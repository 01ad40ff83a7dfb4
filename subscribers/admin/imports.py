"""Tenant admin of subscriber imports: the upload form, a job's progress and rejected rows, and
its error report (CSV)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from core.admin_sites import admin_object_or_404, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from subscribers import selectors, services
from subscribers.forms import ImportForm
from subscribers.models import SubscriberImport

IMPORT_PERMISSION = "subscribers.import_subscribers"
ERRORS_SHOWN = 200


@admin.register(SubscriberImport, site=tenant_site)
class SubscriberImportAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "filename", "status", "progress", "subscribers_created", "subscribers_matched",
        "subscriptions_created", "rows_rejected", "created_by_label",
    ]  # fmt: skip
    list_filter = ["status"]
    actions = ["restart"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SubscriberImport]:
        return super().get_queryset(request).defer("data")

    @admin.display(description=_("progress"))
    def progress(self, obj: SubscriberImport) -> str:
        return f"{obj.progress_percent} %"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(IMPORT_PERMISSION))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(
            request.user.has_perm(IMPORT_PERMISSION) or request.user.has_perm("subscribers.view_subscriberimport")
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/progress.json", view(self.progress_view), name="subscribers_subscriberimport_progress"),
            path("<int:pk>/errors.csv", view(self.errors_view), name="subscribers_subscriberimport_errors"),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        party = selectors.is_party_tenant()
        form = ImportForm(request.POST or None, request.FILES or None, party=party)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = services.subscriber_import_create(
                    filename=upload.name, data=upload.read(), default_channels=list(form.cleaned_data["channels"]),
                    consent_text=form.cleaned_data["consent_text"],
                    explicit_consent=bool(form.cleaned_data.get("explicit_consent")),
                    actor=request_user(request), meta=request_meta(request),
                )  # fmt: skip
            except ApplicationError as exc:
                form.add_error("file", exc.localized)
            else:
                return HttpResponseRedirect(reverse("tenant_admin:subscribers_subscriberimport_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request), "title": _("Import subscribers"), "opts": self.model._meta,
            "form": form, "party": party,
        }  # fmt: skip
        return TemplateResponse(request, "subscribers/admin/import_form.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = cast(
            SubscriberImport, admin_object_or_404(self, request, object_id, SubscriberImport.objects.defer("data"))
        )
        context = {
            **self.admin_site.each_context(request), "title": str(job), "opts": self.model._meta, "job": job,
            "errors": job.errors[:ERRORS_SHOWN], "more_errors": max(0, len(job.errors) - ERRORS_SHOWN),
            "running": job.status in (SubscriberImport.Status.QUEUED, SubscriberImport.Status.RUNNING),
        }  # fmt: skip
        return TemplateResponse(request, "subscribers/admin/import_detail.html", context)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SubscriberImport.objects.defer("data", "errors"), pk=pk)
        return JsonResponse(
            {
                "status": job.status, "status_label": job.get_status_display(), "processed": job.processed_rows,
                "total": job.total_rows, "percent": job.progress_percent, "created": job.subscribers_created,
                "matched": job.subscribers_matched, "subscriptions": job.subscriptions_created,
                "rejected": job.rows_rejected, "failure": job.failure,
                "finished": job.status in (SubscriberImport.Status.DONE, SubscriberImport.Status.FAILED),
            }
        )  # fmt: skip

    def errors_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SubscriberImport.objects.defer("data"), pk=pk)
        report = services.subscriber_import_errors_csv(job=job)
        response = HttpResponse(report, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response

    @admin.action(description=_("Resume a stuck import (safe: nothing is imported twice)"))
    def restart(self, request: HttpRequest, queryset: QuerySet[SubscriberImport]) -> None:
        if not self.has_add_permission(request):
            raise PermissionDenied
        for job in queryset.defer("data"):
            if services.subscriber_import_resume(job=job, actor=request_user(request)):
                messages.success(request, _("%(file)s: queued again.") % {"file": job.filename})
            else:
                messages.warning(
                    request,
                    _("%(file)s has finished; its file was deleted for privacy. Upload it again to re-run it "
                      "(that is safe).") % {"file": job.filename},
                )  # fmt: skip
