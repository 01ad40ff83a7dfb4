"""Production settings: everything secure by default; `manage.py check --deploy` is clean."""

from django.core.exceptions import ImproperlyConfigured

from config.env import env
from config.settings.base import *  # noqa: F403
from config.settings.base import CONTENT_SECURITY_POLICY, LOGGING, STORAGES

DEBUG = False
# Demo relaxations never apply in production, whatever the environment says.
DEMO_MODE = False

SECRET_KEY = env("SECRET_KEY")  # no default: refuse to start without one
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
FERNET_KEYS = env.list("FERNET_KEYS")
# /metrics lists every tenant with its figures: in production it always needs the bearer token.
METRICS_TOKEN = env("METRICS_TOKEN", default="").strip()
if len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured(
        "Set METRICS_TOKEN to a random string of at least 16 characters (e.g. `openssl rand -hex 32`) "
        "and give it to the Prometheus scraper as `Authorization: Bearer <token>`."
    )

# The test suite's loopback receiver for outgoing webhooks must never be reachable in production.
if OUTGOING_WEBHOOK_TEST_RECEIVER:  # noqa: F405
    raise ImproperlyConfigured("OUTGOING_WEBHOOK_TEST_RECEIVER is for tests only; remove it.")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers probe health over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SECURE = True
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {**CONTENT_SECURITY_POLICY["DIRECTIVES"], "upgrade-insecure-requests": True},
}
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
LOGGING["handlers"]["console"]["formatter"] = env("LOG_FORMAT", default="json")  # type: ignore[index]
