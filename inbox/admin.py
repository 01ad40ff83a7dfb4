"""The inbox page in the tenant admin, and the inbox's small tables (departments, canned replies)."""

from __future__ import annotations

from django.contrib import admin

from core.admin_sites import AdminPage, tenant_site
from inbox import views
from inbox.models import CannedReply, Department

for route, view, name in (
    ("inbox/", views.inbox_page, "inbox"),
    ("inbox/changes.json", views.inbox_changes, "inbox_changes"),
    ("inbox/<int:pk>/", views.inbox_page, "inbox_conversation"),
    ("inbox/<int:pk>/<slug:action>/", views.inbox_act, "inbox_act"),
):
    tenant_site.add_page(
        AdminPage(route=route, view=view, name=name, permission=views.PERMISSION, context_flag="can_use_inbox")
    )


@admin.register(Department, site=tenant_site)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "email")
    search_fields = ("name", "email")


@admin.register(CannedReply, site=tenant_site)
class CannedReplyAdmin(admin.ModelAdmin):
    list_display = ("title", "body")
    search_fields = ("title", "body")
