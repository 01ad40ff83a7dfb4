"""`make screenshots`: PNGs of the admin and the subscribe page for docs/screenshots/, taken in
German from the demo data, so the pictures in the docs come from the code and not by hand.

Runs against the demo database (`core.devrun exec` provides it, as for `make run`): migrates and
seeds the demo (idempotent), serves the app on a free port in this process, signs in as
Stuttgart's demo admin in Chromium and writes one PNG per page with fixed names and window size.
Not a test (pytest collects only test_*.py) and not run in CI.

    python -m tests.browser.screenshots [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
DEMO_SCHEMA = "stuttgart"
DEMO_ADMIN = "admin"
VIEWPORT: Any = {"width": 1440, "height": 900}


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("DEMO_MODE", "1")  # the demo users may skip two-factor enrolment, as in `make run`
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.dummy.EmailBackend")
    import django

    django.setup()


def _serve() -> tuple[Any, int]:
    """The app (static files included) on a free loopback port, in a thread of this process."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(StaticFilesHandler(WSGIHandler()))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def _targets() -> list[tuple[str, str, bool, bool]]:
    """(file name, path, signed in, whole page) of every screenshot, in the demo tenant."""
    from django.urls import reverse

    from core.tenancy import connection
    from inbox.models import Conversation
    from messengers.selectors import connection_sandbox
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(schema_name=DEMO_SCHEMA))
    try:
        sandbox = connection_sandbox()
        assert sandbox is not None, "every demo tenant has a sandbox connection"
        phones = reverse("tenant_admin:messengers_phones", args=[sandbox.pk], urlconf="config.urls_tenant")
        asked = Conversation.objects.filter(contact__display_name="Erika Muster").first()
        inbox = reverse(
            "tenant_admin:inbox_conversation" if asked else "tenant_admin:inbox",
            args=[asked.pk] if asked else [],
            urlconf="config.urls_tenant",
        )
    finally:
        connection.set_schema_to_public()
    return [
        ("admin-start.png", "/admin/", True, False),
        ("admin-compose.png", "/admin/broadcasts/broadcast/add/", True, False),
        ("admin-simulator.png", phones, True, False),
        ("admin-inbox.png", inbox, True, False),
        ("public-subscribe.png", "/subscribe/", False, True),  # as a citizen sees it (no staff links)
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.screenshots")
    parser.add_argument("--out", default=str(BASE_DIR / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    _setup_django()
    from django.core.management import call_command
    from playwright.sync_api import sync_playwright

    from tenants.management.commands.seed_demo import DEMO_PASSWORD, demo_domain
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    call_command("platform_setup", seed_demo=True, verbosity=0)
    targets = _targets()
    server, port = _serve()
    base = f"http://{demo_domain(DEMO_SCHEMA)}:{port}"
    # Playwright's sync API runs an event loop in this thread; Django's async guard would
    # mistake the server's database calls for async code (as in tests/browser/conftest.py)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            pages = {}
            for signed_in in (True, False):
                context = browser.new_context(
                    locale="de-DE", timezone_id="Europe/Berlin", viewport=VIEWPORT, reduced_motion="reduce"
                )
                context.set_default_timeout(30_000)
                pages[signed_in] = context.new_page()
            staff = pages[True]
            staff.goto(f"{base}/accounts/login/?next=/admin/")
            staff.fill("input[name=login]", DEMO_ADMIN)
            staff.fill("input[name=password]", DEMO_PASSWORD)
            staff.click("button[type=submit]")
            staff.wait_for_url(f"{base}/admin/")
            for name, path, signed_in, whole_page in targets:
                page = pages[signed_in]
                page.goto(base + path, wait_until="networkidle")
                page.screenshot(path=str(out / name), full_page=whole_page, animations="disabled", caret="hide")
                print(f"wrote {out / name}")
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
