"""Settings shared by every environment. `test.py` and `production.py` only override values."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import unquote

from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import BASE_DIR, env

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env("SECRET_KEY", default="dev-insecure-0c3f1e5b8a-change-me-in-production-9d1e2f7a6b4c")
DEBUG = env.bool("DEBUG", default=False)
# make run sets DEMO_MODE=1: the seeded demo users may skip two-factor enrolment (a banner says so).
DEMO_MODE = env.bool("DEMO_MODE", default=False)

# Tenants live on subdomains of BASE_DOMAIN (stuttgart.localhost); the operator admin and the
# provider webhooks live on BASE_DOMAIN itself. PUBLIC_URL is how the outside world reaches us
# (used for webhook registration, links in e-mails, QR codes).
BASE_DOMAIN = env("BASE_DOMAIN", default="localhost")
PUBLIC_URL = env("PUBLIC_URL", default="http://localhost:8000").rstrip("/")
# Further hosts that reach the platform's own (operator/webhook) side, e.g. the server's IP.
PUBLIC_EXTRA_DOMAINS = env.list("PUBLIC_EXTRA_DOMAINS", default=["127.0.0.1"])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[BASE_DOMAIN, f".{BASE_DOMAIN}", "127.0.0.1"])

# --------------------------------------------------------------------------------------------
# Applications. django-tenants: SHARED_APPS live in the `public` schema, TENANT_APPS in every
# tenant schema. auth/admin/sessions/allauth/accounts are in both lists on purpose: operators
# are users of `public`, tenant staff are users of their own schema, and a session of one
# schema is unknown to every other (django-tenants tutorial).
# --------------------------------------------------------------------------------------------
SHARED_APPS = [
    "django_tenants",  # must come first: its `migrate` wraps migrate_schemas
    "core",  # no tables; templates, commands, shared helpers
    "tenants",  # Tenant, Domain, webhook routes: platform-wide data
    "analytics",  # roll-ups: the operators' per-tenant figures in public, a tenant's own in its schema
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.admin",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",  # operators' users and audit log
    "django_q",  # one queue and one schedule table for the whole platform
    "rest_framework",  # the REST API under /api/v1/ of each tenant (no tables)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files of our own
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",  # tenant staff, roles, audit log
    "django.contrib.postgres",
    "messengers",  # connections, contacts, webhook events, sandbox phones
    "channels",  # topics, alarm state, public subscribe page and status widget
    "subscribers",  # people, subscriptions, consent ledger, keyword commands, import/export
    "broadcasts",  # compose, approval, scheduling, deliveries, tracked links, archive
    "inbox",  # conversations from citizens' replies, departments, canned replies
    "analytics",  # each model says where its table lives (schema_scope, core.routers)
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
# queued tenant tasks that have not started (core.tasks.give_way)
TASK_WAIT_MODEL = "tenants.TaskWait"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New tenants are cloned from this fully migrated schema instead of running every migration
# (onboarding in about a second instead of ~10 s). `manage.py tenant_template` keeps it current.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
DATABASE_ROUTERS = ("core.routers.SchemaScopeRouter", "django_tenants.routers.TenantSyncRouter")
# Issue `SET search_path` only when the tenant changes, not before every query (it doubled the
# round trips); django-tenants forgets the cached path on rollback and reconnect.
TENANT_LIMIT_SET_CALLS = True
ROOT_URLCONF = "config.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
# Dotted paths called inside a new tenant's schema at the end of onboarding (defaults that
# apps give every tenant). The operator roll-up's sources are listed in analytics.services.
TENANT_ONBOARDING_HOOKS: list[str] = [
    "messengers.services.connection_create_sandbox_for_tenant",
]
# Called inside each demo tenant's schema by `manage.py seed_demo` (make run).
DEMO_SEED_HOOKS: list[str] = [
    "messengers.demo.seed",
    "channels.demo.seed",
    "subscribers.demo.seed",
    "inbox.demo.seed",
    "accounts.demo.seed",  # demo API keys (docs/api.md), after the users exist
    "analytics.demo.seed",  # last: 90 days of history over the people and channels above
]
# Where status webhooks go (each returns the provider message ids it recognised), and the
# handlers every inbound message passes through in order until one handles it.
MESSENGER_STATUS_SINKS: list[str] = [
    "broadcasts.services.status_sink.delivery_apply_statuses",
    "messengers.services.outbound_apply_statuses",
]
MESSENGER_INBOUND_HANDLERS: list[str] = ["subscribers.keywords.handle_inbound", "inbox.handlers.handle_inbound"]
# Called as hook(connection=..., event=...) for every inbound event BEFORE its sender becomes a
# contact; the first that returns a label takes the event (no contact, no InboundMessage, no
# handlers). The inbox takes departments' e-mail answers to forwarded questions here.
MESSENGER_INBOUND_INTERCEPTORS: list[str] = ["inbox.handlers.department_mail"]
# More sections of a person's GDPR export, from apps that build on subscribers:
# {section name: "module.function(subscriber_id) -> JSON-safe value"}.
SUBSCRIBER_PERSONAL_DATA_SECTIONS: dict[str, str] = {
    "broadcasts_received": "broadcasts.selectors.delivery_list_for_subscriber",
    "inbox_conversations": "inbox.erasure.conversation_list_for_subscriber",
}
# And the other way round: called as hook(subscriber_id=..., contact_ids=[...], since=None) inside
# a GDPR erasure (and with `since` by the periodic clean-up after one); each removes what
# identifies the person from its app's rows and returns the provider message ids it blanked.
# The contract is documented in subscribers.services.gdpr; the messengers hook deletes the
# contacts the others' rows point at, so it comes last.
SUBSCRIBER_ERASURE_HOOKS: list[str] = [
    "broadcasts.services.erasure.deliveries_erase_recipient",
    "inbox.erasure.conversations_erase",
    "messengers.erasure.contacts_erase",
]
# Called as hook(channel=..., change=AlarmStateChange, actor=...) after an alarm channel's state
# changed (broadcasts proposes the standard start / update / all-clear draft).
ALARM_STATE_HOOKS: list[str] = ["broadcasts.services.alarms.broadcast_propose_for_alarm"]
# Called as hook(broadcast_ids=[…]) or hook(delivery_ids=[…]) inside the transaction that changed
# what a broadcast's figures count (status webhooks merged into its deliveries, a counted click);
# it runs on the status path, so it must stay one cheap statement. And hook(broadcast_id=…) once
# a broadcast finished sending or was cancelled.
BROADCAST_CHANGE_HOOKS: list[str] = ["analytics.rollups.broadcasts.broadcast_stats_mark"]
BROADCAST_FINISHED_HOOKS: list[str] = ["analytics.rollups.broadcasts.broadcast_stats_after_send"]
# The roll-ups of analytics, each `fn(*, full: bool) -> dict` run inside a tenant: the schedule
# "analytics-fold" folds what changed (full=False), `manage.py analytics_rebuild` starts over.
ANALYTICS_ROLLUPS: list[str] = [
    "analytics.rollups.broadcasts.broadcast_stats_fold",
    "analytics.rollups.channels.channel_days_fold",
]
# Sender tasks per sending broadcast (queued or running). Set it to at least the number of worker
# processes across all machines: more senders than workers only wait in the queue.
BROADCAST_SENDERS = env.int("BROADCAST_SENDERS", default=4)
# Where tenant admins may point a connection (messengers.endpoints): API bases (scheme, host, port
# and path prefix must match an entry) and SMTP hosts (exact names, never resolved). Anything else,
# e.g. a test server, only an operator can set (manage.py connection_add / connection_set).
MESSENGER_API_BASE_ALLOWLIST = env.list(
    "MESSENGER_API_BASE_ALLOWLIST",
    default=["https://graph.facebook.com", "https://api.telegram.org", "https://api.twilio.com"],
)
MESSENGER_SMTP_HOST_ALLOWLIST = env.list("MESSENGER_SMTP_HOST_ALLOWLIST", default=[])
# Where inbound messages' files may be downloaded from besides each connection's own API host
# (messengers.endpoints.media_url_allowed): Meta's media CDN (Graph's media URLs; the bearer token
# goes there) and Twilio's media CDN (MediaUrl redirects there; fetched without credentials).
MESSENGER_MEDIA_HOST_ALLOWLIST = env.list(
    "MESSENGER_MEDIA_HOST_ALLOWLIST",
    default=[
        "https://lookaside.fbsbx.com",
        "https://mms.twiliocdn.com",
        "https://media.twiliocdn.com",
        "https://s3-external-1.amazonaws.com/media.twiliocdn.com",
    ],
)
# The inbox shows inbound media by fetching it from the provider on demand (nothing is stored);
# larger files are refused while they stream in.
INBOX_MEDIA_MAX_BYTES = env.int("INBOX_MEDIA_MAX_BYTES", default=16 * 1024 * 1024)
# How names are resolved where a tenant's URL must be on a public address (core.netguard;
# outgoing webhooks). A dotted path to f(host, port) -> [address, ...]; tests point it at a table.
NETGUARD_RESOLVER = "core.netguard.system_resolve"
# Outgoing webhooks (messengers.outgoing; docs/api.md "Outgoing webhooks"). An endpoint that has
# failed for OUTGOING_WEBHOOK_DISABLE_AFTER_HOURS, or OUTGOING_WEBHOOK_DISABLE_AFTER_FAILURES times
# in a row, is switched off and its tenant's admins get an e-mail. Delivered and abandoned events
# and their log are deleted after OUTGOING_WEBHOOK_LOG_DAYS.
OUTGOING_WEBHOOK_DISABLE_AFTER_HOURS = env.int("OUTGOING_WEBHOOK_DISABLE_AFTER_HOURS", default=24)
OUTGOING_WEBHOOK_DISABLE_AFTER_FAILURES = env.int("OUTGOING_WEBHOOK_DISABLE_AFTER_FAILURES", default=100)
OUTGOING_WEBHOOK_LOG_DAYS = env.int("OUTGOING_WEBHOOK_LOG_DAYS", default=30)
# Tests only: "127.0.0.1:<port>" of the test suite's own receiver, which may then be called over
# plain http on loopback. Never read from the environment; production settings refuse it.
OUTGOING_WEBHOOK_TEST_RECEIVER = ""
# Applied webhook events (raw provider bodies) are deleted after this many days; Meta retries
# for up to seven, so the dedupe keys must outlive that.
WEBHOOK_EVENT_RETENTION_DAYS = env.int("WEBHOOK_EVENT_RETENTION_DAYS", default=14)
# The fast ingest path (messengers.ingest, served by config.asgi): database connections per web
# process for its group commits, and how long a request waits for one before answering 503.
INGEST_DB_CONNECTIONS = env.int("INGEST_DB_CONNECTIONS", default=3)
INGEST_DB_TIMEOUT = env.float("INGEST_DB_TIMEOUT", default=3.0)
# Subscriber imports (subscribers.services.imports; docs/operations.md "Imports"). Uploads above a
# limit are refused with a message before anything is imported. Rows count the header and empty
# rows; a cell holds at most what a spreadsheet cell can (32,767 characters). An .xlsx file is
# bounded by its cells and its unpacked size too: openpyxl needs memory in proportion to them.
IMPORT_MAX_FILE_BYTES = env.int("IMPORT_MAX_FILE_BYTES", default=50 * 1024 * 1024)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=1_000_000)
IMPORT_MAX_CELL_CHARS = env.int("IMPORT_MAX_CELL_CHARS", default=32_767)
IMPORT_MAX_XLSX_CELLS = env.int("IMPORT_MAX_XLSX_CELLS", default=2_000_000)
IMPORT_MAX_XLSX_BYTES = env.int("IMPORT_MAX_XLSX_BYTES", default=256 * 1024 * 1024)
# An import with no sign of life for this long (its task lost, its worker dead) is failed by the
# housekeeping schedule and its file deleted. Far above Q_TIMEOUT: a live import writes progress
# every few seconds, and a queued one may wait behind other work.
IMPORT_STALL_SECONDS = env.int("IMPORT_STALL_SECONDS", default=3600)

# --------------------------------------------------------------------------------------------
# REST API (issue 13; docs/api.md). Keys and idempotency in accounts.apiauth, the error format
# and pagination in core.rest, one API class per operation in each app's api.py.
# --------------------------------------------------------------------------------------------
# seed_demo writes the demo API keys' secrets here (accounts.demo; docs/api.md)
DEMO_API_KEY_DIR = Path(env("DEMO_API_KEY_DIR", default=str(VAR_DIR / "demo-api-keys")))
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.apiauth.ApiKeyAuthentication",
        "accounts.apiauth.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.apiauth.ScopeAndRole"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.apiauth.KeyRateThrottle", "accounts.apiauth.SessionRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.rest.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Messenger-Newsletter API",
    "DESCRIPTION": (
        "The REST API of one tenant, on the tenant's own domain. Authenticate with "
        "`Authorization: Bearer <API key>` (keys are created by an admin in the tenant's admin). "
        "Every create accepts an `Idempotency-Key` header. Errors: "
        '`{"error": {"code": …, "message": …, "fields": {…}}}`, messages in German or English '
        "(Accept-Language). See docs/api.md."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AlarmStateEnum": "channels.models.Channel.AlarmState",
        "PriorityEnum": "channels.models.Priority",
        "BroadcastStatusEnum": "broadcasts.models.Broadcast.Status",
        "ConversationStatusEnum": "inbox.models.Conversation.Status",
        "SubscriberStatusEnum": "subscribers.models.Subscriber.Status",
        "ImportStatusEnum": "subscribers.models.SubscriberImport.Status",
    },
    "AUTHENTICATION_WHITELIST": ["accounts.apiauth.ApiKeyAuthentication"],
}

MIDDLEWARE = [
    "core.middleware.RequestMetricsMiddleware",
    "core.middleware.WebhookFastPathMiddleware",  # provider webhooks skip everything below
    # before the tenant routing, so its 404 for unknown hosts carries the security headers too
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.CachedTenantMiddleware",  # django-tenants' host routing, lookups cached
    "core.middleware.RejectNulBytesMiddleware",  # 400, not a 500 from PostgreSQL
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "core.middleware.TenantContextMiddleware",
    "accounts.middleware.MfaRequiredMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "core.context_processors.platform",
            ],
        },
    },
]

FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 default, opted into now

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"


# --------------------------------------------------------------------------------------------
# Database: DATABASE_URL when set; otherwise an embedded PostgreSQL under var/ (pgserver).
# --------------------------------------------------------------------------------------------
def _database() -> dict[str, object]:
    url = env("DATABASE_URL", default="")
    if not url:
        from core import embedded_db

        url = embedded_db.start_or_reuse(VAR_DIR / "postgres").database_url
    config = env.db_url_config(url)
    # socket directories arrive percent-encoded in the host part of the URL
    config["HOST"] = unquote(str(config.get("HOST", "")))
    config["ENGINE"] = "django_tenants.postgresql_backend"
    config["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    # a restarted PostgreSQL (reliability goal R3) must not leave workers with dead connections
    config["CONN_HEALTH_CHECKS"] = True
    options: dict[str, object] = dict(config.get("OPTIONS") or {})
    options.setdefault("connect_timeout", 5)
    config["OPTIONS"] = options
    config["TEST"] = {"NAME": f"test_{config['NAME']}"}
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --------------------------------------------------------------------------------------------
# This installation's name in what several installations may share (one Redis): the task queue,
# the cache keys and the send-pacing keys carry it, so two installations never take each other's
# tasks or read each other's cache. Default: derived from what all processes of one installation
# share, the secret key and the database name (not the host: web and workers may reach the same
# database under different addresses). Set it explicitly in production, since a new SECRET_KEY
# or database name would otherwise rename the queue.
# --------------------------------------------------------------------------------------------
def _default_instance_name(database_name: str) -> str:
    digest = hashlib.sha256(f"instance-name:{SECRET_KEY}:{database_name}".encode()).hexdigest()[:8]
    readable = re.sub(r"[^a-z0-9]+", "-", database_name.lower()).strip("-")[:40] or "messenger"
    return f"{readable}-{digest}"


INSTANCE_NAME = env("INSTANCE_NAME", default="") or _default_instance_name(str(DATABASES["default"]["NAME"]))
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", INSTANCE_NAME):
    raise ImproperlyConfigured(
        f"INSTANCE_NAME {INSTANCE_NAME!r}: use up to 63 letters, digits, '.', '_' or '-' (no leading punctuation)."
    )
RATELIMIT_KEY_PREFIX = f"{INSTANCE_NAME}:rate"  # Redis keys of the send pacing (messengers.ratelimit)

# --------------------------------------------------------------------------------------------
# Cache: Redis when REDIS_URL is set, else a database table (shared by all processes, so login
# throttling works across gunicorn workers). Keys are prefixed with the tenant schema and
# INSTANCE_NAME.
# --------------------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "KEY_PREFIX": INSTANCE_NAME,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "core_cache",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "KEY_PREFIX": INSTANCE_NAME,
        }
    }

# --------------------------------------------------------------------------------------------
# Background work (django-q2). Every tenant task goes through core.tasks.enqueue_tenant_task.
# `retry` must exceed `timeout`, or the broker hands a running task out a second time.
# --------------------------------------------------------------------------------------------
Q_CLUSTER: dict[str, object] = {
    "name": INSTANCE_NAME,  # the queue's key in Redis (and django-q's signing salt)
    # Sending is I/O-bound (paced senders mostly wait), so more worker processes than cores:
    # at least as many as broadcasts that should send at the same time (quality goal P3).
    "workers": env.int("Q_WORKERS", default=4),
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=360),
    "max_attempts": 3,
    "ack_failures": True,  # the database is the source of truth; sweepers re-queue lost work
    "catch_up": False,
    "save_limit": 2000,
    "poll": 0.1,
    "recycle": 500,
    "queue_limit": 8,
    "label": _("Background tasks"),
    "log_level": env("Q_LOG_LEVEL", default="WARNING"),
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --------------------------------------------------------------------------------------------
# Authentication: allauth for every login (the admin's login redirects to it), MFA required
# for admins and approvers (accounts.middleware), throttling of failed logins.
# --------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/admin/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"  # staff accounts are created by an admin, never by signup
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = False
# Lockout: after 5 failed logins for one account within 15 minutes, further attempts are refused
# until the window passes; an IP gets 20 failures per minute across accounts. The account is
# tenant + user however the login is spelled (accounts.adapters); the IP is the client's behind
# TRUSTED_PROXY_COUNT proxies (core.http.client_ip), an IPv6 client's /64.
ACCOUNT_RATE_LIMITS = {
    "login_failed": "20/m/ip,5/15m/key",
    "reset_password": "20/m/ip,5/m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", default="Messenger-Newsletter")
MFA_ADAPTER = "accounts.adapters.MfaAdapter"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 72  # the onboarding link for a new tenant admin lives 3 days

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# How many reverse proxies of ours stand in front of the app, each appending the address it got
# the request from to X-Forwarded-For (1 for the documented TLS proxy). Per-client limits (login
# throttling, the subscribe form) and the audit log use the address these proxies report; with 0
# the header is ignored, as anyone can send it.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

SESSION_COOKIE_NAME = "mnl_session"
# Host-only cookies: a session of stuttgart.localhost is never sent to spd.localhost.
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 12

# --------------------------------------------------------------------------------------------
# Internationalisation: German first, English second; tenant timezone activated per request.
# --------------------------------------------------------------------------------------------
LANGUAGE_CODE = "de"
LANGUAGES = [("de", _("German")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Berlin"
USE_I18N = True
USE_TZ = True

# --------------------------------------------------------------------------------------------
# Static and media. Media are per tenant (TenantFileSystemStorage puts files under the schema).
# --------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]  # assets shared across apps; each app's own sit in <app>/static/<app>/
# Inbound e-mail (POST /webhooks/email/<route>/ or `manage.py email_inbound`): the largest raw
# message taken (bigger ones are refused: 413, or exit code 65 for the MTA), the bytes of a
# decoded text part read, the characters of text kept, and the MIME parts looked at.
EMAIL_INBOUND_MAX_BYTES = env.int("EMAIL_INBOUND_MAX_BYTES", default=10 * 1024 * 1024)
EMAIL_INBOUND_MAX_PART_BYTES = env.int("EMAIL_INBOUND_MAX_PART_BYTES", default=1024 * 1024)
EMAIL_INBOUND_MAX_TEXT_CHARS = env.int("EMAIL_INBOUND_MAX_TEXT_CHARS", default=20_000)
EMAIL_INBOUND_MAX_PARTS = env.int("EMAIL_INBOUND_MAX_PARTS", default=200)
WHITENOISE_USE_FINDERS = DEBUG  # serve straight from the app folders while developing
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --------------------------------------------------------------------------------------------
# Secrets at rest: Fernet keys, newest first (comma-separated). Older keys still decrypt, so a
# key can be rotated by prepending a new one and running `manage.py rotate_secrets`.
# --------------------------------------------------------------------------------------------
FERNET_KEYS = env.list("FERNET_KEYS", default=[])
if not FERNET_KEYS and (VAR_DIR / "fernet.key").exists():
    FERNET_KEYS = [(VAR_DIR / "fernet.key").read_text().strip()]

# --------------------------------------------------------------------------------------------
# E-mail
# --------------------------------------------------------------------------------------------
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Messenger-Newsletter <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --------------------------------------------------------------------------------------------
# Security headers. Production tightens the rest (HTTPS, HSTS, secure cookies).
# --------------------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        # the Django admin sets a few inline style attributes
        "style-src": [SELF, "'unsafe-inline'"],
        # allauth renders the TOTP QR code as a data: image
        "img-src": [SELF, "data:", "https:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-ancestors": [SELF],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

# Bearer token for /metrics; production settings refuse to start without one (empty: open, for
# development only).
METRICS_TOKEN = env("METRICS_TOKEN", default="")

# --------------------------------------------------------------------------------------------
# Logging: every line carries the tenant schema (django-tenants' filter). LOG_FORMAT=json gives
# one JSON object per line for log shippers.
# --------------------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant": {"()": "core.logging.TenantFilter"}},
    "formatters": {
        # both formatters redact secrets in URLs (core.logging.SECRET_PARAMETERS)
        "text": {
            "()": "core.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s [%(schema_name)s] %(name)s: %(message)s",
        },
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["tenant"],
            "formatter": env("LOG_FORMAT", default="text"),
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # the development server's request lines hold query strings: through our (redacting) handler
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "faker": {"level": "WARNING"},
        "django-q": {"level": env("Q_LOG_LEVEL", default="WARNING")},
    },
}
