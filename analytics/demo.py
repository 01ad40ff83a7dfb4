"""Demo history for `manage.py seed_demo` (settings.DEMO_SEED_HOOKS, after subscribers.demo and
inbox.demo), so the dashboards show real charts on first start (issue 12, item 8):

- 90 days of subscriptions: people joining (more on weekdays and after alarms and press days)
  through keywords, QR posters, the web form, deep links, an import and the API, spread over
  the demo's messengers; some leave again, a few within hours of a broadcast. Every
  subscription has its opt-in in the consent ledger and every ended one its opt-out, with
  the same times;
- a dozen sent broadcasts per tenant with a Delivery row per recipient (the people subscribed
  to its channels when it went out) whose times follow plausible distributions: sent at the
  sandbox's rate, delivered within seconds, most read within minutes and a long tail over two
  days, some never; a few failures with the providers' real error kinds; tracked-link clicks
  (per person only where the tenant tracks per recipient);
- Stuttgart's inbox: closed conversations of the 90 days (questions, answers after minutes to
  a day, some forwarded to a department), so the inbox figures have something to show;
- then every roll-up in settings.ANALYTICS_ROLLUPS is rebuilt.

Reproducible (one fixed random seed per tenant, times relative to the day it runs) and
idempotent: the people are recognised by their demo reference, the broadcasts by their titles,
so a second run adds nothing. Bulk inserts: a few thousand rows per tenant.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts import roles
from accounts.models import User
from broadcasts.models import Broadcast, BroadcastVariant, Delivery, LinkClick, TrackedLink
from channels.models import Channel
from messengers.models import Connection, Contact
from messengers.selectors import sandbox_connections
from subscribers.demo_names import FIRST, LAST
from subscribers.models import ConsentEvent, Language, Poster, Source, Subscriber, Subscription
from subscribers.services import consent_text_current, poster_create

HISTORY_DAYS = 90
REF_PREFIX = "demo-h-"  # subscribers.demo uses "demo-0000"…; these are the history's people
ADDRESS_PREFIX = "+4915551"  # next to subscribers.demo's +4915550 block
NEW_PEOPLE = {"stuttgart": 900, "hochbahn": 700, "spd": 450}
LEAVE_SHARE = 0.12
SEND_RATE = 50.0  # messages per second (the sandbox's default rate)

# (days ago, hour, minute, channel slugs, title, text, link or "", read share)
BroadcastSpec = tuple[int, int, int, tuple[str, ...], str, str, str, float]
FEINSTAUB = ("feinstaubalarm",)
VERKEHR = ("verkehr",)
BROADCASTS: dict[str, list[BroadcastSpec]] = {
    "stuttgart": [
        (86, 17, 5, FEINSTAUB, "Feinstaubalarm ab morgen", "Ab morgen gilt Feinstaubalarm. Bitte Bus und Bahn nutzen.", "https://www.stuttgart.de/feinstaubalarm", 0.82),
        (84, 16, 30, FEINSTAUB, "Feinstaubalarm dauert an", "Der Feinstaubalarm dauert an. Bitte nutzen Sie weiterhin Bus und Bahn.", "", 0.74),
        (82, 11, 0, FEINSTAUB, "Entwarnung Feinstaub", "Entwarnung: Der Feinstaubalarm ist beendet. Danke fürs Mitmachen!", "", 0.7),
        (75, 9, 15, VERKEHR, "Sperrung B14 am Wochenende", "Die B14 ist am Wochenende zwischen Charlottenplatz und Österreichischem Platz gesperrt.", "https://www.stuttgart.de/verkehr/b14", 0.66),
        (63, 7, 45, VERKEHR, "Stadtlauf: Umleitungen", "Wegen des Stadtlaufs sind am Sonntag viele Straßen in der Innenstadt gesperrt.", "https://www.stuttgart.de/stadtlauf", 0.61),
        (55, 17, 0, FEINSTAUB, "Feinstaubalarm ab Donnerstag", "Ab Donnerstag gilt wieder Feinstaubalarm. Komfort-Kaminöfen bitte nicht nutzen.", "https://www.stuttgart.de/feinstaubalarm", 0.8),
        (52, 11, 30, FEINSTAUB, "Entwarnung Feinstaub (2)", "Entwarnung: Der Feinstaubalarm ist beendet.", "", 0.68),
        (41, 8, 0, VERKEHR, "Baustelle Neckartor", "Am Neckartor wird ab Montag die Fahrbahn erneuert, eine Spur bleibt frei.", "https://www.stuttgart.de/baustellen", 0.58),
        (30, 16, 45, FEINSTAUB + VERKEHR, "Weihnachtsmarkt: Anreise", "Zum Weihnachtsmarkt bitte mit Bus und Bahn – die Parkhäuser sind voll.", "https://www.stuttgart.de/weihnachtsmarkt", 0.63),
        (19, 17, 10, FEINSTAUB, "Feinstaubalarm über das Wochenende", "Feinstaubalarm von Freitag bis Montag. Bitte Auto stehen lassen.", "https://www.stuttgart.de/feinstaubalarm", 0.79),
        (15, 10, 30, FEINSTAUB, "Entwarnung Feinstaub (3)", "Entwarnung: Der Feinstaubalarm ist beendet.", "", 0.66),
        (4, 7, 30, VERKEHR, "Glatteis: Streudienst unterwegs", "Glatteis in den Höhenlagen: Bitte vorsichtig fahren, der Streudienst ist unterwegs.", "", 0.72),
    ],
    "hochbahn": [
        (88, 6, 40, ("u1",), "U1: Stellwerksstörung", "U1 zwischen Ohlsdorf und Wandsbek Markt unterbrochen, Busse fahren.", "https://www.hochbahn.de/stoerungen", 0.85),
        (80, 7, 5, ("u3",), "U3: Notarzteinsatz", "U3 zwischen Barmbek und Berliner Tor derzeit unterbrochen.", "", 0.83),
        (72, 21, 0, ("u2", "u4"), "U2/U4: Bauarbeiten am Wochenende", "Am Wochenende Ersatzverkehr zwischen Jungfernstieg und Berliner Tor.", "https://www.hochbahn.de/bauarbeiten", 0.62),
        (64, 16, 55, ("u1",), "U1: Verspätungen", "Auf der U1 kommt es wegen einer Weichenstörung zu Verspätungen.", "", 0.78),
        (57, 5, 50, ("u2",), "U2: Signalstörung", "U2 Richtung Niendorf Nord: Signalstörung in Hagenbecks Tierpark.", "", 0.81),
        (49, 18, 0, ("u1", "u2", "u3", "u4"), "Hafengeburtstag: Zusatzzüge", "Zum Hafengeburtstag fahren U3 und U4 alle 5 Minuten.", "https://www.hochbahn.de/hafengeburtstag", 0.59),
        (40, 7, 20, ("u4",), "U4: Polizeieinsatz", "U4 zwischen HafenCity Universität und Elbbrücken unterbrochen.", "", 0.84),
        (33, 22, 15, ("u3",), "U3: Nachtbaustelle", "Heute Nacht Ersatzverkehr mit Bussen zwischen Schlump und Barmbek.", "https://www.hochbahn.de/bauarbeiten", 0.55),
        (26, 6, 30, ("u1",), "U1: Fahrzeugstörung", "U1 in Richtung Norderstedt unregelmäßig wegen einer Fahrzeugstörung.", "", 0.8),
        (18, 17, 40, ("u2", "u4"), "U2/U4: Störung behoben", "Die Störung auf U2 und U4 ist behoben, die Züge fahren wieder planmäßig.", "", 0.7),
        (9, 7, 10, ("u3",), "U3: Türstörung", "Verspätungen auf der U3 wegen einer Türstörung am Rathaus.", "", 0.79),
        (2, 16, 50, ("u1", "u2", "u3", "u4"), "Neuer Fahrplan ab Sonntag", "Ab Sonntag gilt der Winterfahrplan – alle Änderungen im Überblick.", "https://www.hochbahn.de/fahrplan", 0.6),
    ],
    "spd": [
        (87, 19, 0, ("koalitionsverhandlungen",), "Auftakt der Verhandlungen", "Heute haben die Koalitionsverhandlungen begonnen.", "https://www.spd.de/koalition", 0.71),
        (80, 20, 30, ("koalitionsverhandlungen",), "Arbeitsgruppen stehen", "Die Arbeitsgruppen haben sich konstituiert. Ein Überblick.", "https://www.spd.de/koalition/ag", 0.6),
        (73, 18, 45, ("koalitionsverhandlungen",), "Einigung beim Mindestlohn", "Durchbruch: Einigung beim Mindestlohn.", "https://www.spd.de/mindestlohn", 0.73),
        (66, 21, 15, ("koalitionsverhandlungen",), "Streitpunkt Haushalt", "Beim Haushalt gibt es noch keine Einigung. Wir bleiben dran.", "", 0.58),
        (59, 19, 30, ("koalitionsverhandlungen",), "Klimaschutz: Zwischenstand", "Zwischenstand der AG Klima und Energie.", "https://www.spd.de/klima", 0.55),
        (52, 12, 0, ("koalitionsverhandlungen",), "Live: Pressekonferenz", "Jetzt live: Pressekonferenz zum Stand der Verhandlungen.", "https://www.spd.de/live", 0.66),
        (45, 20, 0, ("koalitionsverhandlungen",), "Rente: Einigung", "Einigung bei der Rente: das Rentenniveau bleibt stabil.", "https://www.spd.de/rente", 0.69),
        (38, 19, 15, ("koalitionsverhandlungen",), "Vertrag fast fertig", "Der Koalitionsvertrag ist fast fertig.", "", 0.62),
        (31, 18, 0, ("koalitionsverhandlungen",), "Koalitionsvertrag steht", "Der Koalitionsvertrag steht! Hier alle Inhalte.", "https://www.spd.de/koalitionsvertrag", 0.78),
        (24, 9, 0, ("koalitionsverhandlungen",), "Mitgliedervotum startet", "Das Mitgliedervotum beginnt heute. Jetzt abstimmen!", "https://www.spd.de/mitgliedervotum", 0.74),
        (10, 19, 30, ("koalitionsverhandlungen",), "Ergebnis des Mitgliedervotums", "Die Mitglieder haben zugestimmt.", "https://www.spd.de/ergebnis", 0.8),
        (3, 11, 0, ("koalitionsverhandlungen",), "Vereidigung", "Heute wird das Kabinett vereidigt.", "", 0.64),
    ],
}  # fmt: skip

# how people join (weights) and what the ledger records as evidence
SOURCES = [
    (Source.KEYWORD, 38),
    (Source.QR, 18),
    (Source.WEB_FORM, 14),
    (Source.DEEP_LINK, 12),
    (Source.IMPORT, 10),
    (Source.API, 8),
]
POSTERS = {
    "stuttgart": ["Hauptbahnhof, Gleis 1", "Rathaus, Eingang Marktplatz", "Stadtbibliothek"],
    "hochbahn": ["Jungfernstieg, Bahnsteig U1", "Hauptbahnhof Süd", "Barmbek, Ausgang Fuhlsbüttler Straße"],
    "spd": ["Willy-Brandt-Haus, Foyer", "Parteitag Messe"],
}
# the messengers people use, by the demo's look-alike connections (messengers.demo)
MESSENGER_WEIGHTS = {"whatsapp": 58, "telegram": 20, "email": 9, "": 13}
# failures: (error kind, provider error code, share among failures)
FAILURES = [
    ("not_on_messenger", "131026", 40),
    ("blocked", "403", 28),
    ("invalid_recipient", "21211", 14),
    ("temporary", "503", 10),
    ("window_closed", "131047", 8),
]
FAILURE_SHARE = 0.022


@dataclass
class _Join:
    subscriber: Subscriber
    contact: Contact
    subscriptions: list[Subscription]


def seed(*, tenant: Any, stdout: Any) -> None:
    schema = tenant.schema_name
    if schema not in BROADCASTS:
        return
    started = time.monotonic()
    connections = list(sandbox_connections())
    channels = {c.slug: c for c in Channel.objects.filter(is_active=True).order_by("position", "pk")}
    specs = [spec for spec in BROADCASTS[schema] if all(slug in channels for slug in spec[3])]
    if not connections or not channels:
        return
    tz = ZoneInfo(getattr(tenant, "timezone", "") or settings.TIME_ZONE)
    anchor = timezone.now().astimezone(tz).replace(second=0, microsecond=0)  # "now" of the whole history
    send_times = [_send_time(anchor, spec, tz) for spec in specs]
    people = _history(schema, tenant, connections, list(channels.values()), send_times, anchor, tz)
    sent, deliveries = _broadcasts(schema, tenant, specs, send_times, channels, anchor)
    conversations = _inbox_history(schema, anchor)
    for path in getattr(settings, "ANALYTICS_ROLLUPS", []):
        import_string(path)(full=True)
    stdout.write(
        f"{schema}: demo history with {people} new subscriber(s), {sent} sent broadcast(s) and "
        f"{deliveries} deliveries, {conversations} past conversation(s) in {time.monotonic() - started:.1f}s"
    )


def _send_time(anchor: datetime, spec: BroadcastSpec, tz: ZoneInfo) -> datetime:
    day = (anchor - timedelta(days=spec[0])).astimezone(tz).date()
    return datetime(day.year, day.month, day.day, spec[1], spec[2], tzinfo=tz)


def _weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([item for item, _w in pairs], weights=[w for _i, w in pairs])[0]


# --------------------------------------------------------------------------------------------
# 90 days of subscriptions
# --------------------------------------------------------------------------------------------
@transaction.atomic
def _history(
    schema: str,
    tenant: Any,
    connections: list[Connection],
    channels: list[Channel],
    send_times: list[datetime],
    anchor: datetime,
    tz: ZoneInfo,
) -> int:
    if Subscriber.objects.filter(external_ref__startswith=REF_PREFIX).exists():
        return 0
    rng = random.Random(f"analytics-demo-history:{schema}")
    count = NEW_PEOPLE.get(schema, 300)
    posters = _posters(schema, channels)
    by_look = {c.demo_presents_as: c for c in reversed(connections)}
    connection_weights = [(by_look[look], w) for look, w in MESSENGER_WEIGHTS.items() if look in by_look] or [
        (connections[0], 1)
    ]
    import_day = HISTORY_DAYS - 1 - rng.randint(20, 60)
    texts = {lang: consent_text_current(channel=None, language=lang) for lang in (Language.DE, Language.EN)}
    # more people join on weekdays, after each broadcast (people forward it) and slowly more over time
    first_day = (anchor - timedelta(days=HISTORY_DAYS - 1)).date()
    day_weights = []
    for day in range(HISTORY_DAYS):
        when = datetime.combine(first_day + timedelta(days=day), datetime.min.time(), tzinfo=tz) + timedelta(hours=12)
        weight = (1.0 + day / HISTORY_DAYS) * (0.6 if when.weekday() >= 5 else 1.0)
        weight += sum(3.0 * math.exp(-((when - t).total_seconds() / 86400)) for t in send_times if t <= when)
        day_weights.append(weight)
    joins: list[_Join] = []
    events: list[ConsentEvent] = []
    for number in range(count):
        source = _weighted(rng, SOURCES)
        day = import_day if source == Source.IMPORT else rng.choices(range(HISTORY_DAYS), weights=day_weights)[0]
        # evenings are busiest; an import comes in one go in the morning
        hour = (
            10
            if source == Source.IMPORT
            else _weighted(rng, [(h, 1 + 3 * math.exp(-((h - 18) ** 2) / 18)) for h in range(6, 24)])
        )
        joined = datetime.combine(first_day + timedelta(days=day), datetime.min.time(), tzinfo=tz) + timedelta(
            hours=hour, minutes=rng.randint(0, 59), seconds=rng.randint(0, 59)
        )
        joined = min(joined, anchor - timedelta(minutes=30))
        language = _weighted(rng, [(Language.DE, 82), (Language.EN, 14), (Language.EASY, 4)])
        chosen = (
            rng.sample(channels, 2)
            if len(channels) > 1 and rng.random() < 0.25
            else [rng.choices(channels, weights=[len(channels) - i for i in range(len(channels))])[0]]
        )
        poster = rng.choice([p for p in posters if p.channel_id in {c.pk for c in chosen}] or posters or [None])
        if source == Source.QR and poster is None:
            source = Source.KEYWORD
        if source == Source.QR and poster is not None:
            chosen = [next(c for c in channels if c.pk == poster.channel_id)]
        connection = by_look.get("email") if source == Source.WEB_FORM else None
        connection = connection or _weighted(rng, connection_weights)
        detail = {
            Source.QR: poster.code if poster is not None else "",
            Source.IMPORT: "Import Newsletter-Verteiler",
            Source.API: "Website-Formular (API)",
            Source.DEEP_LINK: "Website-Banner",
        }.get(source, "")
        ref = f"{REF_PREFIX}{number:05d}"
        person = Subscriber(
            name="" if source == Source.API else f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            language=language,
            external_ref=ref,
        )
        contact = Contact(
            connection=connection, address=_address(connection, number), display_name=person.name, subscriber=person
        )
        subscriptions = []
        leaves: list[tuple[Subscription, datetime]] = []
        # the web form asks to confirm by e-mail (double opt-in): active from the click
        confirmed = joined + timedelta(minutes=rng.randint(1, 20)) if source == Source.WEB_FORM else joined
        for channel in chosen:
            subscription = Subscription(
                subscriber=person, channel=channel, source=source, source_detail=detail, subscribed_at=joined,
                confirmed_at=confirmed, status=Subscription.Status.ACTIVE,
            )  # fmt: skip
            subscriptions.append(subscription)
            events.append(
                ConsentEvent(
                    subscriber=person, channel=channel, kind=ConsentEvent.Kind.OPT_IN, source=source,
                    source_detail=detail, at=joined, consent_text=texts[Language.EN if language == Language.EN else Language.DE],
                    connection=connection, explicit=getattr(tenant, "kind", "") == "party",
                    evidence=_evidence(source, ref),
                )
            )  # fmt: skip
            if source == Source.WEB_FORM:
                events.append(
                    ConsentEvent(
                        subscriber=person, channel=channel, kind=ConsentEvent.Kind.CONFIRMATION, source=source,
                        at=confirmed, connection=connection, evidence=f"e-mail confirmation demo-{ref}",
                    )
                )  # fmt: skip
            if rng.random() < LEAVE_SHARE:
                left = _leave_time(rng, confirmed, send_times, anchor)
                if left is not None:
                    leaves.append((subscription, left))
        for subscription, left in leaves:
            subscription.status = Subscription.Status.UNSUBSCRIBED
            subscription.unsubscribed_at = left
        if leaves and len(leaves) == len(subscriptions):
            # left everything: one STOP, which ends every channel at once (as the keyword does)
            left = min(at for _s, at in leaves)
            for subscription in subscriptions:
                subscription.unsubscribed_at = left
            contact.status = Contact.Status.UNSUBSCRIBED
            events.append(
                ConsentEvent(
                    subscriber=person, kind=ConsentEvent.Kind.OPT_OUT, source=Source.KEYWORD, at=left,
                    connection=connection, evidence=f"sandbox message sbx-stop-{ref}",
                )
            )  # fmt: skip
        else:
            for subscription, left in leaves:
                events.append(
                    ConsentEvent(
                        subscriber=person, channel=subscription.channel, kind=ConsentEvent.Kind.OPT_OUT,
                        source=Source.KEYWORD, at=left, connection=connection,
                        evidence=f"sandbox message sbx-stop-{ref}-{subscription.channel.slug}",
                    )
                )  # fmt: skip
        joins.append(_Join(person, contact, subscriptions))
    Subscriber.objects.bulk_create([j.subscriber for j in joins], batch_size=1000)
    # (the contacts, subscriptions and events hold the people, whose ids bulk_create filled in)
    Contact.objects.bulk_create([j.contact for j in joins], batch_size=1000)
    Subscription.objects.bulk_create([s for j in joins for s in j.subscriptions], batch_size=1000)
    ConsentEvent.objects.bulk_create(events, batch_size=1000)
    # the people's rows say when they came (auto_now_add wrote the insert time): one UPDATE
    came = Subscription.objects.filter(subscriber=OuterRef("pk")).order_by("subscribed_at").values("subscribed_at")[:1]
    Subscriber.objects.filter(external_ref__startswith=REF_PREFIX).update(
        created_at=Subquery(came), updated_at=Subquery(came)
    )
    return len(joins)


def _address(connection: Connection, number: int) -> str:
    if connection.demo_presents_as == "email":
        return f"demo.{number:05d}@example.org"
    return f"{ADDRESS_PREFIX}{number:05d}"


def _evidence(source: str, ref: str) -> str:
    evidence: dict[str, str] = {
        Source.KEYWORD: f"sandbox message sbx-demo-{ref}",
        Source.QR: f"sandbox message sbx-demo-{ref}",
        Source.DEEP_LINK: f"sandbox message sbx-demo-{ref}",
        Source.WEB_FORM: f"web form demo-{ref}",
        Source.IMPORT: "demo import, Newsletter-Verteiler.csv",
        Source.API: f"API request demo-{ref}",
    }
    return evidence.get(source, "demo data")


def _leave_time(rng: random.Random, joined: datetime, send_times: list[datetime], anchor: datetime) -> datetime | None:
    """When someone leaves: often within hours of a broadcast that annoyed them, otherwise at
    some point (a long tail); None if that lies after "now"."""
    after = [t for t in send_times if t > joined]
    if after and rng.random() < 0.45:
        left = rng.choice(after) + timedelta(minutes=rng.expovariate(1 / 180) + 2)
    else:
        left = joined + timedelta(days=rng.expovariate(1 / 25), minutes=rng.randint(1, 600))
    return left if left < anchor - timedelta(minutes=1) else None


def _posters(schema: str, channels: list[Channel]) -> list[Poster]:
    existing = list(Poster.objects.order_by("pk"))
    labels = {p.label for p in existing}
    for number, label in enumerate(POSTERS.get(schema, [])):
        if label not in labels:
            existing.append(poster_create(channel=channels[number % len(channels)], provider="web", label=label))
    return existing


# --------------------------------------------------------------------------------------------
# a dozen sent broadcasts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Recipient:
    subscriber_id: int
    contact_id: int
    connection_id: int
    language: str
    since: datetime
    until: datetime | None
    channel_id: int


@transaction.atomic
def _broadcasts(
    schema: str,
    tenant: Any,
    specs: list[BroadcastSpec],
    send_times: list[datetime],
    channels: dict[str, Channel],
    anchor: datetime,
) -> tuple[int, int]:
    titles = [spec[4] for spec in specs]
    if Broadcast.objects.filter(title__in=titles, status=Broadcast.Status.SENT).exists():
        return 0, 0
    rng = random.Random(f"analytics-demo-broadcasts:{schema}")
    author = User.objects.filter(groups__name=roles.EDITOR, is_active=True).order_by("pk").first()
    approver = User.objects.filter(groups__name=roles.APPROVER, is_active=True).order_by("pk").first()
    per_person_clicks = getattr(tenant, "link_tracking", "") == "per_recipient"
    subscriptions = _subscriptions_by_channel()
    total_deliveries = 0
    for spec, at in zip(specs, send_times, strict=True):
        if at >= anchor:
            continue
        _days, _h, _m, slugs, title, text, link, read_share = spec
        chosen = [channels[slug] for slug in slugs]
        recipients: dict[int, _Recipient] = {}
        for channel in chosen:
            for r in subscriptions.get(channel.pk, []):
                if r.since <= at and (r.until is None or r.until > at):
                    recipients.setdefault(r.subscriber_id, r)
        ordered = sorted(recipients.values(), key=lambda r: r.subscriber_id)
        broadcast = Broadcast.objects.create(
            title=title,
            status=Broadcast.Status.SENT,
            priority=chosen[0].default_priority,
            author=author,
            submitted_at=at - timedelta(minutes=rng.randint(12, 50)),
            approved_by=approver if any(c.requires_approval for c in chosen) else None,
            approved_at=at - timedelta(minutes=rng.randint(2, 10))
            if any(c.requires_approval for c in chosen)
            else None,
            buttons=[{"title": "Mehr erfahren", "url": link}] if link else [],
            fanout_done=True,
            fanout_cursor=ordered[-1].subscriber_id if ordered else 0,
            recipients_total=len(ordered),
            send_started_at=at,
        )
        broadcast.channels.set(chosen)
        BroadcastVariant.objects.create(broadcast=broadcast, language=Language.DE, body=text)
        tracked = TrackedLink.objects.create(broadcast=broadcast, position=0, url=link) if link else None
        deliveries, clicks = _deliveries(rng, broadcast, ordered, at, anchor, read_share, has_link=tracked is not None)
        Delivery.objects.bulk_create(deliveries, batch_size=2000)
        finished = max((d.sent_at or d.next_attempt_at for d in deliveries), default=at)
        Broadcast.objects.filter(pk=broadcast.pk).update(
            send_finished_at=finished, created_at=at - timedelta(hours=rng.randint(1, 5)), updated_at=finished
        )
        if tracked is not None:
            TrackedLink.objects.filter(pk=tracked.pk).update(clicks=sum(len(times) for _d, times in clicks))
            if per_person_clicks:
                rows = LinkClick.objects.bulk_create(
                    [LinkClick(link=tracked, delivery=d) for d, times in clicks for _t in times], batch_size=2000
                )
                stamps = [t for _d, times in clicks for t in times]
                for row, stamp in zip(rows, stamps, strict=True):
                    row.at = stamp
                LinkClick.objects.bulk_update(rows, ["at"], batch_size=2000)
        total_deliveries += len(deliveries)
    return len(specs), total_deliveries


def _subscriptions_by_channel() -> dict[int, list[_Recipient]]:
    """Every subscription with its person's contact (one query each), for picking recipients."""
    contacts: dict[int, tuple[int, int]] = {}
    for contact_id, subscriber_id, connection_id in (
        Contact.objects.filter(subscriber__isnull=False)
        .order_by("pk")
        .values_list("pk", "subscriber_id", "connection_id")
    ):
        contacts.setdefault(subscriber_id, (contact_id, connection_id))
    found: dict[int, list[_Recipient]] = defaultdict(list)
    rows = Subscription.objects.filter(subscriber__status=Subscriber.Status.ACTIVE).values_list(
        "subscriber_id",
        "channel_id",
        "subscribed_at",
        "confirmed_at",
        "unsubscribed_at",
        "status",
        "subscriber__language",
    )
    for subscriber_id, channel_id, since, confirmed, until, status, language in rows:
        if subscriber_id not in contacts:
            continue
        if status == Subscription.Status.UNSUBSCRIBED and until is None:
            continue  # ended at an unknown time: leave it out of the history
        if status == Subscription.Status.PENDING:
            continue
        contact_id, connection_id = contacts[subscriber_id]
        found[channel_id].append(
            _Recipient(subscriber_id, contact_id, connection_id, language, confirmed or since, until, channel_id)
        )
    return found


def _read_delay(rng: random.Random) -> float:
    """Seconds from delivery to reading: most within minutes, some within hours, a long tail."""
    roll = rng.random()
    if roll < 0.55:
        return rng.expovariate(1 / 150)  # mean 2.5 minutes
    if roll < 0.85:
        return rng.lognormvariate(math.log(75 * 60), 0.8)  # around an hour or two
    return rng.uniform(6, 48) * 3600


def _deliveries(
    rng: random.Random,
    broadcast: Broadcast,
    recipients: list[_Recipient],
    at: datetime,
    anchor: datetime,
    read_share: float,
    *,
    has_link: bool,
) -> tuple[list[Delivery], list[tuple[Delivery, list[datetime]]]]:
    deliveries: list[Delivery] = []
    clicks: list[tuple[Delivery, list[datetime]]] = []
    click_share = rng.uniform(0.08, 0.2)
    for position, r in enumerate(recipients):
        queued_for = at + timedelta(seconds=position / SEND_RATE)
        delivery = Delivery(
            broadcast=broadcast,
            subscriber_id=r.subscriber_id,
            contact_id=r.contact_id,
            connection_id=r.connection_id,
            language=r.language,
            next_attempt_at=queued_for,
            attempts=1,
        )
        deliveries.append(delivery)
        if rng.random() < FAILURE_SHARE:
            kind, code, _w = rng.choices(FAILURES, weights=[f[2] for f in FAILURES])[0]
            delivery.status = Delivery.Status.FAILED
            delivery.error_kind, delivery.error_code = kind, code
            delivery.error_detail = f"demo: provider answered {code}"
            if kind == "temporary":
                delivery.attempts = 5  # retried with backoff, then given up
                delivery.next_attempt_at = queued_for + timedelta(minutes=rng.randint(20, 40))
            continue
        sent = queued_for + timedelta(milliseconds=rng.randint(40, 900))
        delivery.sent_at = sent
        delivery.provider_message_id = f"sbx-demo-{broadcast.pk}-{r.subscriber_id}"
        delivery.status = Delivery.Status.SENT
        if rng.random() > 0.975:
            continue  # accepted, never confirmed (phone off, e-mail without receipts)
        delivered = sent + timedelta(seconds=min(rng.lognormvariate(math.log(1.5), 1.0), 6 * 3600))
        if delivered >= anchor:
            continue
        delivery.delivered_at = delivered
        delivery.status = Delivery.Status.DELIVERED
        if rng.random() > read_share:
            continue
        read = delivered + timedelta(seconds=_read_delay(rng))
        if read >= anchor:
            continue
        delivery.read_at = read
        delivery.status = Delivery.Status.READ
        if has_link and rng.random() < click_share:
            first = read + timedelta(seconds=rng.expovariate(1 / 40) + 2)
            times = [first] + ([first + timedelta(minutes=rng.randint(1, 600))] if rng.random() < 0.12 else [])
            clicks.append((delivery, [t for t in times if t < anchor]))
    return deliveries, clicks


# --------------------------------------------------------------------------------------------
# Stuttgart's inbox over the 90 days
# --------------------------------------------------------------------------------------------
INBOX_CONVERSATIONS = {"stuttgart": 120}
QUESTIONS = [
    ("Gilt der Feinstaubalarm auch am Wochenende?", "Ja, bis zur Entwarnung gilt er auch am Wochenende."),
    ("Darf ich bei Feinstaubalarm meinen Kaminofen nutzen?", "Nur, wenn er die einzige Heizung der Wohnung ist."),
    ("Wo finde ich die Umleitung für die B14?", "Die Umleitung ist ausgeschildert; eine Karte finden Sie auf stuttgart.de."),
    ("Die Ampel an der Heilbronner Straße ist seit Tagen aus.", "Danke, wir haben es an das Tiefbauamt weitergegeben."),
    ("Baustellenlärm nachts in der Olgastraße, ist das erlaubt?", "Das Amt für Umweltschutz prüft die Genehmigung."),
    ("Danke für die Warnung heute Morgen!", "Gern geschehen, danke fürs Lesen!"),
    ("Wie melde ich mich vom Verkehrskanal ab?", "Schreiben Sie STOP VERKEHR, dann bekommen Sie keine Meldungen mehr."),
]  # fmt: skip


@transaction.atomic
def _inbox_history(schema: str, anchor: datetime) -> int:
    """Closed conversations with a question, an answer after minutes to a day and sometimes a
    department; added once (when the inbox has nothing older than two days)."""
    from inbox.models import Conversation, Department, Entry

    count = INBOX_CONVERSATIONS.get(schema, 0)
    if not count or Conversation.objects.filter(opened_at__lt=anchor - timedelta(days=2)).exists():
        return 0
    rng = random.Random(f"analytics-demo-inbox:{schema}")
    departments = list(Department.objects.order_by("pk"))
    agent = User.objects.filter(groups__name=roles.INBOX_AGENT, is_active=True).order_by("pk").first()
    taken = set(Conversation.objects.values_list("contact_id", flat=True))
    contacts = [
        c
        for c in Contact.objects.filter(subscriber__external_ref__startswith=REF_PREFIX).order_by("pk")[: count * 2]
        if c.pk not in taken
    ]
    rows: list[tuple[Conversation, list[tuple[Entry, datetime]]]] = []
    for contact in rng.sample(contacts, min(count, len(contacts))):
        opened = anchor - timedelta(days=rng.uniform(2, HISTORY_DAYS - 1), minutes=rng.randint(0, 600))
        question, answer = rng.choice(QUESTIONS)
        # answered within office hours' reach: minutes, hours, or the next day
        response = opened + timedelta(
            seconds=_weighted(
                rng, [(rng.expovariate(1 / 900), 5), (rng.uniform(1, 6) * 3600, 3), (rng.uniform(14, 30) * 3600, 2)]
            )
        )
        department = rng.choice(departments) if departments and rng.random() < 0.3 else None
        closed = response + timedelta(hours=rng.uniform(0.2, 72 if department else 8))
        conversation = Conversation(
            contact=contact, connection_id=contact.connection_id, status=Conversation.Status.CLOSED,
            department=department, preview=answer[:200], last_activity_at=closed, changed_at=closed,
            first_response_at=response, closed_at=closed,
        )  # fmt: skip
        entries = [
            (Entry(conversation=conversation, kind=Entry.Kind.INBOUND, text=question), opened),
            (Entry(conversation=conversation, kind=Entry.Kind.REPLY, text=answer, author=agent), response),
        ]
        rows.append((conversation, entries))
    created = Conversation.objects.bulk_create([c for c, _e in rows])
    opened_at = {id(c): e[0][1] for c, e in rows}
    for conversation in created:  # opened_at and created_at are auto_now_add: set them afterwards
        conversation.opened_at = opened_at[id(conversation)]
    Conversation.objects.bulk_update(created, ["opened_at"])
    saved = Entry.objects.bulk_create([entry for _c, es in rows for entry, _at in es])
    for entry, at in zip(saved, [at for _c, es in rows for _entry, at in es], strict=True):
        entry.created_at = at
    Entry.objects.bulk_update(saved, ["created_at"], batch_size=500)
    return len(created)
