"""After `ALLE DATEN LÖSCHEN`, nothing in the database identifies the person.

Two people, one on WhatsApp and one on Telegram, go through what people do: they subscribe by
keyword, receive a broadcast and a single message, write free text, and a status webhook or two
arrives late. Every provider request and webhook goes over real HTTP to and from the fake
providers and through our webhook endpoints; the data is committed (a broadcast's senders use
their own database connections). Then both write ALLE DATEN LÖSCHEN, and every row of the
tenant's schema and of the public schema is read as text and searched for the person: the
number in every spelling, the name, the Telegram chat id and user name, what they wrote and
what was written to them, the provider message ids (WhatsApp's wamid is base64 of the number),
and every base64 token is decoded and searched too.

Allowed afterwards is only what docs/operations.md ("Data retention and GDPR") keeps for a
limited time: status webhooks that arrive after the erasure for messages whose ids were erased.
The test then lets that time pass (backdating the rows) and runs the periodic clean-up: after
it, nothing is left.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.test import Client
from django.utils import timezone

from accounts import roles
from broadcasts import services as broadcast_services
from broadcasts.models import Delivery
from messengers import selectors as messenger_selectors
from messengers import services as messenger_services
from messengers.adapters import get_adapter
from messengers.models import Connection, Contact, OutboundMessage, WebhookEvent
from subscribers.models import Subscriber
from subscribers.tasks import subscribers_housekeeping_task
from tenants.models import Domain, Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TG_SECRET
from tests.fakes.telegram import FakeTelegram
from tests.fakes.whatsapp import FakeWhatsApp
from tests.helpers import enrol_totp
from tests.messengers.support import (
    WA_PATH,
    forget_caches,
    replay,
    route_path,
    telegram_connection,
    whatsapp_connection,
)

# The WhatsApp person
WA_ID = "4915123456789"  # what WhatsApp sends as `from` / `recipient_id`
WA_NAME = "Annegret Vogelsang"
WA_TEXT = "Frau Kowalczyk von nebenan hustet seit dem Feinstaubalarm"
# The Telegram person
CHAT_ID = 7345128769
TG_FIRST, TG_LAST, TG_USER = "Kunigunde", "Zwetschke", "kunigunde_zw"
TG_TEXT = "Wann fährt die 42 wieder nach Degerloch?"
# What staff wrote to them, one by one
SINGLE_TEXT = "Ihre Anfrage zur Baustelle Rosenstraße ist angekommen"

NEEDLES = (
    "+" + WA_ID, WA_ID, "0" + WA_ID[2:], WA_ID[2:],  # +49…, 49…, 0…, the subscriber number
    "Annegret", "Vogelsang",
    str(CHAT_ID), TG_FIRST, TG_LAST, TG_USER,
    "Kowalczyk", "Degerloch", "Rosenstraße", "Baustelle Rosenstra",
)  # fmt: skip
BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    forget_caches()
    yield
    forget_caches()


# --------------------------------------------------------------------------------------------
# Reading the whole database as text
# --------------------------------------------------------------------------------------------
def rows_as_text(schema: str) -> dict[str, list[str]]:
    """Every row of every table in `schema`, each as PostgreSQL's text form of the whole record
    (every column: text, json, arrays, numbers)."""
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
            [schema],
        )
        tables = [name for (name,) in cursor.fetchall()]
        dump: dict[str, list[str]] = {}
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{schema}"."{table}" t')  # noqa: S608 - names from pg_class
            dump[table] = [row for (row,) in cursor.fetchall()]
    return dump


def decoded_base64(text: str) -> str:
    """The base64 tokens of a row, decoded (WhatsApp's wamid.… is base64 of the number)."""
    found = []
    for token in BASE64_TOKEN.findall(text):
        for candidate in (token, token + "=" * (-len(token) % 4)):
            try:
                found.append(base64.b64decode(candidate, validate=True).decode("latin-1"))
                break
            except (binascii.Error, ValueError):
                continue
    return " ".join(found)


def names_person(text: str, wamids: set[str]) -> bool:
    haystack = text + " " + decoded_base64(text)
    return any(needle in haystack for needle in (*NEEDLES, *wamids))


def traces(schema: str, wamids: set[str]) -> list[tuple[str, str, str]]:
    """(table, needle, row) for every needle in every row that still names one of the two people."""
    needles = [*NEEDLES, *wamids]
    hits = []
    for name in (schema, "public"):
        for table, rows in rows_as_text(name).items():
            for row in rows:
                haystack = row + " " + decoded_base64(row)
                hits += [(f"{name}.{table}", needle, row[:300]) for needle in needles if needle in haystack]
    return hits


def report(hits: list[tuple[str, str, str]]) -> str:
    return "still naming the person:\n" + "\n".join(f"{table} [{needle}]: {row}" for table, needle, row in hits)


# --------------------------------------------------------------------------------------------
# Webhooks: what the fakes pushed to the recording server goes on to our endpoints
# --------------------------------------------------------------------------------------------
class Forwarder:
    def __init__(self, client: Client, sink: RecordingServer, telegram: Connection) -> None:
        self.client, self.sink, self.telegram_path = client, sink, route_path(telegram)
        self.done = 0
        self.held: list[Any] = []

    def __call__(self, *, hold: Callable[[Any], bool] = lambda item: False) -> int:
        """Forward everything new (what `hold` selects is kept back for later)."""
        items = self.sink.received()
        new, self.done = items[self.done :], len(items)
        for item in new:
            if hold(item):
                self.held.append(item)
            else:
                self._post(item)
        return len(new)

    def release(self) -> None:
        held, self.held = self.held, []
        for item in held:
            self._post(item)

    def _post(self, item: Any) -> None:
        path = WA_PATH if item.path.startswith("/webhooks/whatsapp") else self.telegram_path
        assert replay(self.client, item, path).status_code == 200, item.body[:200]


def is_read_status(item: Any) -> bool:
    return item.path.startswith("/webhooks/whatsapp") and b'"status":"read"' in item.body


# --------------------------------------------------------------------------------------------
def test_after_erasure_no_row_names_the_person(
    committed_tenant: Callable[..., Tenant],
    wa_fake: FakeWhatsApp,
    tg_fake: FakeTelegram,
    sink: RecordingServer,
    client_public: Client,
) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        whatsapp = whatsapp_connection(api_base=wa_fake.url)
        bot = telegram_connection(api_base=tg_fake.url, secret=TG_SECRET)
        assert get_adapter(messenger_selectors.connection_config(bot)).register_webhook(sink.url + "/tg").ok
        dust = make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[whatsapp, bot])
        tg_fake.add_chat(CHAT_ID, first_name=TG_FIRST, last_name=TG_LAST, username=TG_USER)
        forward = Forwarder(client_public, sink, bot)

        def settle(**kwargs: Any) -> None:
            """Let the fakes push everything, forward it and apply it, until nothing new comes.
            (The webhook views schedule the apply task at most once a second; in production the
            dispatcher's sweep picks up the rest, here the test does.)"""
            for _ in range(20):
                assert wa_fake.wait_idle(20) and tg_fake.wait_idle(20)
                forwarded = forward(**kwargs)
                messenger_services.webhook_events_apply()
                if not forwarded:
                    return
            raise AssertionError("webhooks kept coming")

        # they subscribe by keyword; the welcome replies go out
        wa_fake.inbound(sender=WA_ID, text="START FEINSTAUB", name=WA_NAME)
        tg_fake.inbound(chat_id=CHAT_ID, text="START FEINSTAUB")
        settle()
        people = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE)
        assert people.count() == 2, list(WebhookEvent.objects.values_list("state", "error"))
        assert set(people.values_list("name", flat=True)) == {WA_NAME, f"{TG_FIRST} {TG_LAST}"}

        # staff correct the person's details in the admin (Django's admin log keeps a line)
        wa_person = Subscriber.objects.get(name=WA_NAME)
        admin = make_user(roles.ADMIN, username="admin2")
        enrol_totp(admin)
        staff = Client(HTTP_HOST=Domain.objects.get(tenant=tenant, is_primary=True).domain, HTTP_ACCEPT_LANGUAGE="en")
        staff.force_login(admin)
        changed = staff.post(
            f"/admin/subscribers/subscriber/{wa_person.pk}/change/",
            {"name": WA_NAME, "language": "de", "district": "", "tags_text": "Atemwege",
             "subscriptions-TOTAL_FORMS": 0, "subscriptions-INITIAL_FORMS": 0,
             "consent_events-TOTAL_FORMS": 0, "consent_events-INITIAL_FORMS": 0},
        )  # fmt: skip
        assert changed.status_code == 302

        # a broadcast reaches both; the WhatsApp "read" receipts are held back for later
        editor, approver = make_user(roles.EDITOR, username="e"), make_user(roles.APPROVER, username="a")
        broadcast = broadcast_services.broadcast_create(
            author=editor, title="Feinstaubalarm", channels=[dust],
            variants={"de": "Ab morgen gilt Feinstaubalarm. Bitte lassen Sie das Auto stehen."},
        )  # fmt: skip
        broadcast_services.broadcast_submit(broadcast=broadcast, actor=editor)
        broadcast_services.broadcast_approve(broadcast=broadcast, actor=approver)
        assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}

        # they write free text (it stays for a person to read), staff answer one by one
        wa_fake.inbound(sender=WA_ID, text=WA_TEXT, name=WA_NAME)
        tg_fake.inbound(chat_id=CHAT_ID, text=TG_TEXT)
        settle(hold=is_read_status)
        for contact in Contact.objects.exclude(connection__provider="sandbox"):
            messenger_services.message_queue(
                connection=contact.connection, to=contact.address, text=SINGLE_TEXT, contact=contact
            )
        settle(hold=is_read_status)
        assert forward.held, "read receipts to deliver after the erasure"

        # everything about them is in the database now, under every needle
        wamids = {m["id"] for m in wa_fake.sent_messages()} | set(wa_fake.inbound_ids)
        before = {needle for _, needle, _ in traces(tenant.schema_name, wamids)}
        assert {WA_ID, "Annegret", str(CHAT_ID), TG_LAST, "Kowalczyk", "Degerloch"} <= before
        assert "Rosenstraße" in before and wamids & before

        # both erase themselves
        wa_fake.inbound(sender=WA_ID, text="ALLE DATEN LÖSCHEN", name=WA_NAME)
        tg_fake.inbound(chat_id=CHAT_ID, text="alle daten löschen")
        settle(hold=is_read_status)
        assert not Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).exists()
        assert OutboundMessage.objects.filter(purpose="erasure").count() == 2
        # receipts of messages sent before the erasure arrive late, then the periodic clean-up runs
        forward.release()
        settle()
        messenger_services.webhook_events_apply()
        subscribers_housekeeping_task()

        # what is left is only what docs/operations.md keeps for a limited time: late status
        # webhooks whose message ids were erased, waiting as `deferred`
        wamids = {m["id"] for m in wa_fake.sent_messages()} | set(wa_fake.inbound_ids)
        left = traces(tenant.schema_name, wamids)
        assert left, "the late receipts should still be there"
        assert {table for table, _, _ in left} == {f"{tenant.schema_name}.messengers_webhookevent"}, report(left)
        naming = [e for e in WebhookEvent.objects.all() if names_person(repr((e.dedupe_key, e.payload, e.raw)), wamids)]
        assert {(e.kind, e.state) for e in naming} == {("status", "deferred")}, naming

        # the documented time passes
        limit = messenger_services.DEFERRED_RETRY_FOR + timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS)
        WebhookEvent.objects.update(received_at=timezone.now() - limit - timedelta(minutes=1))
        messenger_services.webhook_events_purge()
        subscribers_housekeeping_task()
        left = traces(tenant.schema_name, wamids)
        assert left == [], report(left)
