"""Test settings: fast hashing, local-memory cache and mail, tasks inline unless Q_SYNC=0."""

import os
import tempfile
import uuid
from pathlib import Path

from config.env import env
from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES, Q_CLUSTER, REDIS_URL

DEBUG = False
DEMO_MODE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# A fixed key so encrypted fixtures are reproducible; never used outside tests.
FERNET_KEYS = ["pGk8eU3l0ay6Vd7pRj0mVxS9j0bZlO8wq3d3ZqkQf1Y="]

# A fresh name per test run, so throttling counters and pacing keys of one run never meet the
# next one's (the test database restarts its id sequences). Worker processes started by tests
# inherit TEST_RUN_ID, so they share the queue name (base derives it from the database name,
# which differs between this process and a worker pointed at the test database).
_RUN = os.environ.setdefault("TEST_RUN_ID", uuid.uuid4().hex[:8])
INSTANCE_NAME = f"test-{_RUN}"
Q_CLUSTER = {**Q_CLUSTER, "name": INSTANCE_NAME}
RATELIMIT_KEY_PREFIX = f"{INSTANCE_NAME}:rate"
if REDIS_URL:
    CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": INSTANCE_NAME}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "KEY_PREFIX": "mnl",
        }
    }

# Queued work runs inline (inside captured on_commit callbacks) unless a test starts a real
# worker process, which sets Q_SYNC=0 for that process.
Q_CLUSTER = {**Q_CLUSTER, "sync": env.bool("Q_SYNC", default=True), "poll": 0.05, "guard_cycle": 0.2}

# seed_demo in tests must not replace the demo keys `make run` printed
DEMO_API_KEY_DIR = Path(tempfile.mkdtemp(prefix="demo-api-keys-"))

BASE_DOMAIN = "localhost"
PUBLIC_URL = "http://localhost:8000"
ALLOWED_HOSTS = ["*"]
