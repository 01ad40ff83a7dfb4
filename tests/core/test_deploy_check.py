"""`manage.py check --deploy` with production settings reports nothing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from django.conf import settings


def test_production_settings_pass_the_deploy_check() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "newsletter.example.org,.newsletter.example.org",
        "FERNET_KEYS": "pGk8eU3l0ay6Vd7pRj0mVxS9j0bZlO8wq3d3ZqkQf1Y=",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing",  # the check needs no connection
        "METRICS_TOKEN": secrets.token_hex(32),
    }
    env.pop("DEMO_MODE", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout
