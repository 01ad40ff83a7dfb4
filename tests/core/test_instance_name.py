"""Two installations on one Redis keep apart: INSTANCE_NAME names the task queue, the cache keys
and the send-pacing keys. Settings are read in fresh processes (they are computed at import),
with the production settings module's base and a database URL that is never connected to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from django.conf import settings

PROBE = """
import json
from django.conf import settings
print(json.dumps({
    "instance": settings.INSTANCE_NAME,
    "queue": settings.Q_CLUSTER["name"],
    "cache": settings.CACHES["default"]["KEY_PREFIX"],
    "rate": settings.RATELIMIT_KEY_PREFIX,
}))
"""


def run(code: str, **env: str) -> str:
    """Run `code` after django.setup() in a fresh process with the base settings and `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in ("INSTANCE_NAME", "TEST_RUN_ID")}
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=settings.BASE_DIR,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": "postgres://nobody@127.0.0.1:1/messenger",
            "SECRET_KEY": "one-installation-" + "x" * 40,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def names(**env: str) -> dict[str, Any]:
    return dict(json.loads(run(PROBE, **env)))


def test_two_instance_names_give_disjoint_queue_cache_and_pacing_names() -> None:
    a, b = names(INSTANCE_NAME="stadt-a"), names(INSTANCE_NAME="stadt-b")
    assert a == {"instance": "stadt-a", "queue": "stadt-a", "cache": "stadt-a", "rate": "stadt-a:rate"}
    assert a["queue"] != b["queue"] and a["cache"] != b["cache"] and a["rate"] != b["rate"]
    # cache keys are "<schema>:<prefix>:…" (django-tenants) and pacing keys "<prefix>:…": neither
    # prefix may be the start of the other's
    assert not b["rate"].startswith(a["rate"]) and not a["cache"].startswith(b["cache"] + ":")


def test_installations_differ_without_configuration() -> None:
    """Default: derived from what every process of one installation shares (its secret key and
    database name), so two installations differ and one installation's processes agree."""
    first = names()
    assert first == names(DATABASE_URL="postgres://other-host-alias@10.0.0.9:6432/messenger")
    assert first["queue"] != names(SECRET_KEY="another-installation-" + "y" * 40)["queue"]
    assert first["queue"] != names(DATABASE_URL="postgres://nobody@127.0.0.1:1/messenger_staging")["queue"]
    assert first["queue"].startswith("messenger-")


@pytest.mark.parametrize("bad", ["with space", "a:b", "x" * 64, "-lead", "ä"])
def test_an_unusable_instance_name_stops_the_start(bad: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": "postgres://nobody@127.0.0.1:1/messenger",
            "INSTANCE_NAME": bad,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "INSTANCE_NAME" in result.stderr


ENQUEUE = """
from django.core.cache import cache
from django_q.tasks import async_task
async_task("math.floor", 1.5)
cache.set("probe", "{marker}", 60)
print("queued")
"""
LOOK = """
import json
from django.core.cache import cache
from django_q.brokers import get_broker
broker = get_broker()
print(json.dumps({"waiting": broker.queue_size(), "probe": cache.get("probe")}))
"""
DRAIN = """
from django_q.brokers import get_broker
get_broker().delete_queue()
from django.core.cache import cache
cache.delete("probe")
print("drained")
"""


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis (CI's second pass sets REDIS_URL)")
def test_two_installations_on_one_redis_do_not_see_each_others_tasks_or_cache() -> None:
    run_id = uuid.uuid4().hex[:8]
    a, b = f"t{run_id}-a", f"t{run_id}-b"
    try:
        assert run(ENQUEUE.format(marker="from-a"), INSTANCE_NAME=a) == "queued"
        assert json.loads(run(LOOK, INSTANCE_NAME=b)) == {"waiting": 0, "probe": None}
        assert json.loads(run(LOOK, INSTANCE_NAME=a)) == {"waiting": 1, "probe": "from-a"}
    finally:
        for name in (a, b):
            run(DRAIN, INSTANCE_NAME=name)
