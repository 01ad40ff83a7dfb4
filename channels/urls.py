"""Public pages of channels on the tenant domain: the alarm status as JSON and as an embeddable widget."""

from django.urls import URLPattern, URLResolver, path

from channels import views

app_name = "channels"

urlpatterns: list[URLPattern | URLResolver] = [
    path("status/<slug:slug>.json", views.status_json, name="status_json"),
    path("status/<slug:slug>/widget/", views.status_widget, name="status_widget"),
]
