"""Demo subscribers for `manage.py seed_demo` (settings.DEMO_SEED_HOOKS, after channels.demo):
Stuttgart's districts, and a few hundred simulated people per demo tenant on its sandbox
connection, spread over channels, districts and languages, each with their consent in the ledger
(and some who unsubscribed again), plus a QR poster. Bulk inserts; idempotent (people are
recognised by their demo reference)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from channels.models import Channel
from messengers.models import Contact
from messengers.selectors import connection_sandbox
from subscribers.demo_names import FIRST, LAST
from subscribers.models import (
    ConsentEvent,
    District,
    Language,
    Poster,
    Source,
    Subscriber,
    Subscription,
)
from subscribers.services import consent_text_current, district_create, poster_create

PEOPLE = {"stuttgart": 300, "hochbahn": 250, "spd": 200}
DISTRICTS = {
    "stuttgart": [
        ("Mitte", ["STADTMITTE"]),
        ("Nord", []),
        ("Ost", []),
        ("Süd", []),
        ("West", []),
        ("Bad Cannstatt", ["CANNSTATT"]),
    ]
}
TAGS = ["Radverkehr", "ÖPNV", "Gesundheit", "Baustellen", "Veranstaltungen", "Familie"]
REF_PREFIX = "demo-"
# +49 1555 0xxxxx: a block the simulator's own random numbers (+49155 + 8 digits) rarely hit;
# any clash is skipped.
ADDRESS_PREFIX = "+4915550"


def seed(*, tenant: Any, stdout: Any) -> None:
    schema = tenant.schema_name
    for position, (name, aliases) in enumerate(DISTRICTS.get(schema, []), start=1):
        if not District.objects.filter(name=name).exists():
            district_create(name=name, aliases=aliases, position=position)
    count = PEOPLE.get(schema, 0)
    sandbox = connection_sandbox()
    if not count or sandbox is None:
        return
    channels = list(Channel.objects.filter(connections=sandbox, is_active=True, is_public=True).order_by("pk"))
    if not channels:
        return
    created = _people(schema, count, sandbox.pk, channels, party=getattr(tenant, "kind", "") == "party")
    if schema == "stuttgart" and not Poster.objects.exists():
        poster_create(channel=channels[0], provider="web", label="Hauptbahnhof, Gleis 1")
    stdout.write(f"{schema}: {created} demo subscriber(s) created, {count - created} already there")


@transaction.atomic
def _people(schema: str, count: int, connection_id: int, channels: list[Channel], *, party: bool) -> int:
    refs = [f"{REF_PREFIX}{i:04d}" for i in range(count)]
    existing = set(Subscriber.objects.filter(external_ref__in=refs).values_list("external_ref", flat=True))
    addresses = {ref: f"{ADDRESS_PREFIX}{int(ref[len(REF_PREFIX) :]):06d}" for ref in refs}
    taken = set(
        Contact.objects.filter(connection_id=connection_id, address__in=list(addresses.values())).values_list(
            "address", flat=True
        )
    )
    todo = [ref for ref in refs if ref not in existing and addresses[ref] not in taken]
    if not todo:
        return 0
    rng = random.Random(f"demo:{schema}")
    districts = list(District.objects.order_by("position"))
    texts = {lang: consent_text_current(channel=None, language=lang) for lang in (Language.DE, Language.EN)}
    now = timezone.now()
    people: list[Subscriber] = []
    for _ in todo:
        language = rng.choices([Language.DE, Language.EN, Language.EASY], weights=[80, 15, 5])[0]
        people.append(
            Subscriber(
                name=f"{rng.choice(FIRST)} {rng.choice(LAST)}", language=language,
                district=rng.choice([*districts, None]) if districts else None,
                tags=rng.sample(TAGS, rng.randint(0, 2)), external_ref="",
            )
        )  # fmt: skip
    for person, ref in zip(people, todo, strict=True):
        person.external_ref = ref
    people = Subscriber.objects.bulk_create(people)
    contacts: list[Contact] = []
    subscriptions: list[Subscription] = []
    events: list[ConsentEvent] = []
    for person, ref in zip(people, todo, strict=True):
        stopped = rng.random() < 0.05
        contacts.append(
            Contact(
                connection_id=connection_id, address=addresses[ref], display_name=person.name, subscriber=person,
                status=Contact.Status.UNSUBSCRIBED if stopped else Contact.Status.ACTIVE,
            )
        )  # fmt: skip
        chosen = rng.sample(channels, rng.randint(1, min(2, len(channels))))
        source = rng.choice([Source.KEYWORD, Source.KEYWORD, Source.IMPORT, Source.QR])
        joined = now - timedelta(days=rng.randint(1, 700), minutes=rng.randint(0, 1440))
        text = texts[Language.EN if person.language == Language.EN else Language.DE]
        ended = min(now, joined + timedelta(days=rng.randint(1, 30))) if stopped else None
        for channel in chosen:
            subscriptions.append(
                Subscription(
                    subscriber=person, channel=channel, source=source, subscribed_at=joined, confirmed_at=joined,
                    source_detail="demo import" if source == Source.IMPORT else "",
                    status=Subscription.Status.UNSUBSCRIBED if stopped else Subscription.Status.ACTIVE,
                    unsubscribed_at=ended,
                )
            )  # fmt: skip
            events.append(
                ConsentEvent(
                    subscriber=person, channel=channel, kind=ConsentEvent.Kind.OPT_IN, source=source, at=joined,
                    consent_text=text, connection_id=connection_id, explicit=party,
                    evidence="demo data" if source == Source.IMPORT else f"sandbox message sbx-demo-{ref}",
                )
            )  # fmt: skip
        if ended is not None:
            events.append(
                ConsentEvent(
                    subscriber=person, kind=ConsentEvent.Kind.OPT_OUT, source=Source.KEYWORD, at=ended,
                    connection_id=connection_id, evidence=f"sandbox message sbx-stop-{ref}",
                )
            )  # fmt: skip
    Contact.objects.bulk_create(contacts)
    Subscription.objects.bulk_create(subscriptions)
    ConsentEvent.objects.bulk_create(events)
    return len(people)
