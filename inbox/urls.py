"""Public URLs of the inbox on a tenant's domain: a department answers a forwarded question."""

from django.urls import path

from inbox import views

app_name = "inbox"
urlpatterns = [
    path("inbox/answer/<str:token>/", views.department_answer, name="department_answer"),
]
