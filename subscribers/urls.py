"""Public pages of subscribers on the tenant domain (subscribe page, e-mail confirmation, QR
codes and posters, preferences, one-click unsubscribe)."""

from django.urls import URLPattern, URLResolver, path

from subscribers import views

app_name = "subscribers"

urlpatterns: list[URLPattern | URLResolver] = [
    # The bare domain is what a citizen types or a city links to: it shows the subscribe page
    # itself (the admin stays at /admin/).
    path("", views.subscribe_page, name="home"),
    path("subscribe/", views.subscribe_page, name="subscribe"),
    path("subscribe/email/", views.email_subscribe, name="email_subscribe"),
    path("subscribe/email/sent/", views.email_sent, name="email_sent"),
    path("subscribe/confirm/<str:token>/", views.email_confirm, name="email_confirm"),
    path("subscribe/qr/<slug:slug>/<str:provider>.svg", views.qr_svg, name="qr_svg"),
    path("subscribe/qr/<slug:slug>/<str:provider>.png", views.qr_png, name="qr_png"),
    path("subscribe/poster/<str:code>/", views.poster_page, name="poster"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
