"""Writing one chunk of validated rows: find who is already known (by address or external
reference), then add what is new with COPY (people, contacts, subscriptions, ledger entries) and
fill in what known people lack. A constant number of queries per chunk, whatever its size.

Runs inside the chunk's transaction; what exists was looked up in it, so the COPYs only ever add
rows that are new. A subscription the person ended is never switched on again, and a known
person's own choices (name, district) are never overwritten.
"""

from __future__ import annotations

import base64
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from core.tenancy import connection as db
from messengers.models import Contact
from subscribers.models import ConsentEvent, Source, Subscriber, SubscriberImport, Subscription
from subscribers.services.imports.validation import Lookups, Record, RowError

# Rows per UPDATE statement of the bulk updates (as many as a chunk has rows).
UPDATE_BATCH_ROWS = 5000

ConnectionAddress = tuple[int, str]


@dataclass
class ChunkResult:
    created: int = 0
    matched: int = 0
    subscriptions: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass
class Known:
    """What the database already holds about the chunk's people."""

    contacts: dict[ConnectionAddress, tuple[int, int | None]]  # → (contact id, subscriber id)
    refs: dict[str, int]  # external reference → subscriber id
    erased: set[int]  # erased people among the contacts' subscribers

    def person_of(self, key: ConnectionAddress) -> int | None:
        """The living person an address belongs to, if any."""
        known = self.contacts.get(key)
        if known is None or known[1] is None or known[1] in self.erased:
            return None
        return known[1]


@dataclass
class Matching:
    """Who is who: ("old", subscriber id) for people we know, ("new", index into `new_people`)
    for people first seen in this chunk; `accepted` and `targets` run in parallel."""

    accepted: list[Record] = field(default_factory=list)
    targets: list[tuple[str, int]] = field(default_factory=list)
    new_people: list[Record] = field(default_factory=list)


def _copy(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """COPY rows into a table of the current tenant schema (search_path): many times faster than
    INSERT for thousands of rows. psycopg adapts each value (None is NULL)."""
    if not rows:
        return
    with db.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _new_ids(table: str, count: int) -> list[int]:
    with db.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
        return [int(row[0]) for row in cursor.fetchall()]


def _known(records: list[Record]) -> Known:
    by_connection: dict[int, set[str]] = defaultdict(set)
    for record in records:
        for connection_id, address in record.addresses:
            by_connection[connection_id].add(address)
    contacts: dict[ConnectionAddress, tuple[int, int | None]] = {}
    with db.cursor() as cursor:
        for connection_id, addresses in by_connection.items():
            # one array parameter instead of thousands of IN placeholders (client-side binding)
            cursor.execute(
                "SELECT id, address, subscriber_id FROM messengers_contact "
                "WHERE connection_id = %s AND address = ANY(%s)",
                [connection_id, list(addresses)],
            )
            for pk, address, subscriber_id in cursor.fetchall():
                contacts[(connection_id, address)] = (pk, subscriber_id)
    refs: dict[str, int] = {}
    wanted = {r.external_ref for r in records if r.external_ref}
    if wanted:
        living = Subscriber.objects.filter(external_ref__in=wanted, status=Subscriber.Status.ACTIVE).order_by("pk")
        for ref, pk in living.values_list("external_ref", "pk"):
            refs.setdefault(ref, pk)
    linked = {sid for _, sid in contacts.values() if sid is not None}
    erased = set(
        Subscriber.objects.filter(pk__in=linked, status=Subscriber.Status.ERASED).values_list("pk", flat=True)
    ) if linked else set()  # fmt: skip
    return Known(contacts, refs, erased)


def _match(records: list[Record], known: Known, errors: list[RowError]) -> Matching:
    """Decide for each row whose it is; a row whose addresses or reference point at two different
    people is rejected."""
    matching = Matching()
    seen: dict[tuple[Any, ...], tuple[str, int]] = {}  # keys of this chunk's rows → their target
    for record in records:
        keys: list[tuple[Any, ...]] = [("contact", *key) for key in record.addresses]
        candidates = {("old", pk) for key in record.addresses if (pk := known.person_of(key)) is not None}
        if record.external_ref:
            keys.insert(0, ("ref", record.external_ref))
            if record.external_ref in known.refs:
                candidates.add(("old", known.refs[record.external_ref]))
        candidates |= {seen[key] for key in keys if key in seen}
        if len(candidates) > 1:
            errors.append(
                RowError(record.row, "address", "These addresses belong to different people already; fix the row.")
            )
            continue
        if candidates:
            target = candidates.pop()
        else:
            target = ("new", len(matching.new_people))
            matching.new_people.append(record)
        seen.update(dict.fromkeys(keys, target))
        matching.targets.append(target)
        matching.accepted.append(record)
    return matching


def _people_create(people: list[Record], lookups: Lookups, now: datetime) -> list[int]:
    """COPY the chunk's new people; returns their ids (in order)."""
    pks = _new_ids("subscribers_subscriber", len(people)) if people else []
    # link secrets like subscribers.models.new_link_secret (12 random bytes, URL-safe), in one go
    randomness = base64.urlsafe_b64encode(secrets.token_bytes(12 * len(pks))).decode()
    link_secrets = [randomness[i * 16 : (i + 1) * 16] for i in range(len(pks))]
    active = Subscriber.Status.ACTIVE.value
    _copy(
        "subscribers_subscriber",
        ["id", "created_at", "updated_at", "name", "language", "district_id", "tags", "status", "link_secret",
         "external_ref"],
        [
            (pk, now, now, r.name, r.language or lookups.default_language, r.district_id, r.tags, active, secret,
             r.external_ref)
            for pk, r, secret in zip(pks, people, link_secrets, strict=True)
        ],
    )  # fmt: skip
    return pks


def _people_update(pairs: list[tuple[Record, int]], old_pks: set[int]) -> None:
    """People we knew: fill in what is empty, add interests; never overwrite their own choices."""
    old = {s.pk: s for s in Subscriber.objects.filter(pk__in=old_pks).only("pk", "name", "district", "tags")}
    changed: dict[int, Subscriber] = {}
    for record, subscriber_id in pairs:
        person = old.get(subscriber_id)
        if person is None:
            continue
        if record.name and not person.name:
            person.name = record.name
            changed[person.pk] = person
        if record.district_id and person.district_id is None:
            person.district_id = record.district_id
            changed[person.pk] = person
        extra = [t for t in record.tags if t not in person.tags]
        if extra:
            person.tags = [*person.tags, *extra]
            changed[person.pk] = person
    if changed:
        Subscriber.objects.bulk_update(
            list(changed.values()), ["name", "district", "tags"], batch_size=UPDATE_BATCH_ROWS
        )


def _contacts_write(pairs: list[tuple[Record, int]], known: Known, now: datetime) -> None:
    """COPY new addresses; link known ones that belong to nobody (or to an erased person)."""
    new_contacts: dict[ConnectionAddress, tuple[Any, ...]] = {}
    relink: list[Contact] = []
    active = Contact.Status.ACTIVE.value
    for record, subscriber_id in pairs:
        for key in record.addresses:
            found = known.contacts.get(key)
            if found is None:
                if key not in new_contacts:
                    new_contacts[key] = (now, now, key[0], subscriber_id, key[1], record.name, active, "")
            elif found[1] is None or found[1] in known.erased:
                relink.append(Contact(pk=found[0], subscriber_id=subscriber_id))
    _copy(
        "messengers_contact",
        ["created_at", "updated_at", "connection_id", "subscriber_id", "address", "display_name", "status",
         "status_reason"],
        list(new_contacts.values()),
    )  # fmt: skip
    if relink:
        Contact.objects.bulk_update(relink, ["subscriber"], batch_size=UPDATE_BATCH_ROWS)


def _existing_subscriptions(old_pks: set[int]) -> set[tuple[int, int]]:
    """(subscriber, channel) pairs known people already have, in any state (people new in this
    chunk have none yet)."""
    if not old_pks:
        return set()
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT subscriber_id, channel_id FROM subscribers_subscription WHERE subscriber_id = ANY(%s)",
            [sorted(old_pks)],
        )
        return {(int(a), int(b)) for a, b in cursor.fetchall()}


def _subscriptions_write(
    pairs: list[tuple[Record, int]],
    existing: set[tuple[int, int]],
    job: SubscriberImport,
    explicit: bool,
    now: datetime,
) -> int:
    """COPY the new subscriptions and one opt-in ledger entry each; returns how many."""
    subscriptions: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    evidence = f"import #{job.pk} {job.filename[:120]} (sha256 {job.file_sha256[:12]}) row "
    status, source, kind = Subscription.Status.ACTIVE.value, Source.IMPORT.value, ConsentEvent.Kind.OPT_IN.value
    for record, subscriber_id in pairs:
        at, detail = record.consent_at, record.consent_source
        for channel_id in record.channel_ids:
            if (subscriber_id, channel_id) in existing:
                continue
            existing.add((subscriber_id, channel_id))
            subscriptions.append((now, now, subscriber_id, channel_id, status, source, detail, at))
            # no connection: the consent was given elsewhere; the evidence names file and row
            events.append(
                (subscriber_id, channel_id, kind, source, detail, at, job.consent_text_id, f"{evidence}{record.row}",
                 explicit)
            )  # fmt: skip
    _copy(
        "subscribers_subscription",
        ["created_at", "updated_at", "subscriber_id", "channel_id", "status", "source", "source_detail",
         "subscribed_at"],
        subscriptions,
    )  # fmt: skip
    _copy(
        "subscribers_consentevent",
        ["subscriber_id", "channel_id", "kind", "source", "source_detail", "at", "consent_text_id", "evidence",
         "explicit"],
        events,
    )  # fmt: skip
    return len(subscriptions)


def chunk_write(records: list[Record], job: SubscriberImport, explicit: bool, lookups: Lookups) -> ChunkResult:
    """Write one chunk of valid rows (inside the chunk's transaction)."""
    result = ChunkResult()
    known = _known(records)
    matching = _match(records, known, result.errors)
    now = timezone.now()
    new_pks = _people_create(matching.new_people, lookups, now)
    result.created = len(new_pks)
    pairs = [
        (record, new_pks[value] if kind == "new" else value)
        for record, (kind, value) in zip(matching.accepted, matching.targets, strict=True)
    ]
    old_pairs = [(record, value) for record, (kind, value) in zip(matching.accepted, matching.targets, strict=True)
                 if kind == "old"]  # fmt: skip
    old_pks = {pk for _, pk in old_pairs}
    result.matched = len(old_pks)
    if old_pks:
        _people_update(old_pairs, old_pks)
    _contacts_write(pairs, known, now)
    result.subscriptions = _subscriptions_write(pairs, _existing_subscriptions(old_pks), job, explicit, now)
    return result
