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


def _copy(table: str, columns: Sequence[str], lines: Sequence[str]) -> None:
    """COPY rows into a table of the current tenant schema (search_path): many times faster than
    INSERT for thousands of rows. `lines` are rows in COPY's text format, each ending in a line
    break (built with the helpers below: one string per chunk and table, no per-row call into the
    driver)."""
    if not lines:
        return
    with db.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write("".join(lines))


# COPY's text format: a backslash, tab, line feed or carriage return in a value is escaped, NULL is \N.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


def _text(value: str) -> str:
    """A text value for COPY (never NULL)."""
    return value.translate(_COPY_ESCAPES)


def _number(value: int | None) -> str:
    return NULL if value is None else str(value)


def _array(values: Sequence[str]) -> str:
    """A text[] literal: every element quoted (so NULL, braces, commas and spaces stay text), its
    quotes and backslashes escaped."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _ids(values: Any) -> str:
    """A bigint[] literal, for `= ANY(%s::bigint[])`: one short string parameter instead of
    thousands of placeholders or array elements the driver adapts one by one."""
    return "{" + ",".join(map(str, values)) + "}"


class _Formats:
    """Values that repeat across a chunk's rows (timestamps, tag lists, consent sources) are
    formatted once each."""

    def __init__(self) -> None:
        self._times: dict[datetime, str] = {}
        self._arrays: dict[tuple[str, ...], str] = {}
        self._texts: dict[str, str] = {}

    def time(self, value: datetime) -> str:
        # an aware datetime as psycopg sends it (ISO 8601 with its offset)
        text = self._times.get(value)
        if text is None:
            text = self._times[value] = value.isoformat()
        return text

    def text(self, value: str) -> str:
        text = self._texts.get(value)
        if text is None:
            text = self._texts[value] = _text(value)
        return text

    def array(self, values: Sequence[str]) -> str:
        key = tuple(values)
        text = self._arrays.get(key)
        if text is None:
            text = self._arrays[key] = _text(_array(key))
        return text


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
                "WHERE connection_id = %s AND address = ANY(%s::text[])",
                [connection_id, _array(sorted(addresses))],
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
    erased: set[int] = set()
    if linked:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM subscribers_subscriber WHERE id = ANY(%s::bigint[]) AND status = %s",
                [_ids(sorted(linked)), Subscriber.Status.ERASED.value],
            )
            erased = {int(row[0]) for row in cursor.fetchall()}
    return Known(contacts, refs, erased)


def _match(records: list[Record], known: Known, errors: list[RowError]) -> Matching:
    """Decide for each row whose it is; a row whose addresses or reference point at two different
    people is rejected."""
    matching = Matching()
    # keys of this chunk's rows → their target: (connection id, address), or ("ref", reference)
    seen: dict[tuple[Any, ...], tuple[str, int]] = {}
    person_of = known.person_of
    for record in records:
        keys: list[tuple[Any, ...]] = list(record.addresses)
        candidates: set[tuple[str, int]] = set()
        for key in record.addresses:
            pk = person_of(key)
            if pk is not None:
                candidates.add(("old", pk))
        if record.external_ref:
            keys.insert(0, ("ref", record.external_ref))
            if record.external_ref in known.refs:
                candidates.add(("old", known.refs[record.external_ref]))
        for key in keys:
            target = seen.get(key)
            if target is not None:
                candidates.add(target)
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
    formats = _Formats()
    head = f"\t{formats.time(now)}\t{formats.time(now)}\t"
    default_language = _text(lookups.default_language)
    _copy(
        "subscribers_subscriber",
        ["id", "created_at", "updated_at", "name", "language", "district_id", "tags", "status", "link_secret",
         "external_ref"],
        [
            f"{pk}{head}{_text(r.name)}\t{_text(r.language) if r.language else default_language}\t"
            f"{_number(r.district_id)}\t{formats.array(r.tags)}\t{active}\t{secret}\t{_text(r.external_ref)}\n"
            for pk, r, secret in zip(pks, people, link_secrets, strict=True)
        ],
    )  # fmt: skip
    return pks


def _people_update(pairs: list[tuple[Record, int]], old_pks: set[int]) -> None:
    """People we knew: fill in what is empty, add interests; never overwrite their own choices."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT id, name, district_id, tags FROM subscribers_subscriber WHERE id = ANY(%s::bigint[])",
            [_ids(sorted(old_pks))],
        )
        # plain values, not model instances: most known people need no change at all
        old = {int(pk): [name, district_id, list(tags)] for pk, name, district_id, tags in cursor.fetchall()}
    changed: set[int] = set()
    for record, subscriber_id in pairs:
        person = old.get(subscriber_id)
        if person is None:
            continue
        if record.name and not person[0]:
            person[0] = record.name
            changed.add(subscriber_id)
        if record.district_id and person[1] is None:
            person[1] = record.district_id
            changed.add(subscriber_id)
        extra = [t for t in record.tags if t not in person[2]]
        if extra:
            person[2] = [*person[2], *extra]
            changed.add(subscriber_id)
    if changed:
        Subscriber.objects.bulk_update(
            [Subscriber(pk=pk, name=old[pk][0], district_id=old[pk][1], tags=old[pk][2]) for pk in sorted(changed)],
            ["name", "district", "tags"],
            batch_size=UPDATE_BATCH_ROWS,
        )


def _contacts_write(pairs: list[tuple[Record, int]], known: Known, now: datetime) -> None:
    """COPY new addresses; link known ones that belong to nobody (or to an erased person)."""
    new_contacts: dict[ConnectionAddress, str] = {}
    relink: list[Contact] = []
    formats = _Formats()
    stamps = f"{formats.time(now)}\t{formats.time(now)}\t"
    tail = f"\t{Contact.Status.ACTIVE.value}\t\n"
    for record, subscriber_id in pairs:
        for key in record.addresses:
            found = known.contacts.get(key)
            if found is None:
                if key not in new_contacts:
                    new_contacts[key] = (
                        f"{stamps}{key[0]}\t{subscriber_id}\t{_text(key[1])}\t{formats.text(record.name)}{tail}"
                    )
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
            "SELECT subscriber_id, channel_id FROM subscribers_subscription WHERE subscriber_id = ANY(%s::bigint[])",
            [_ids(sorted(old_pks))],
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
    subscriptions: list[str] = []
    events: list[str] = []
    formats = _Formats()
    evidence = _text(f"import #{job.pk} {job.filename[:120]} (sha256 {job.file_sha256[:12]}) row ")
    status, source, kind = Subscription.Status.ACTIVE.value, Source.IMPORT.value, ConsentEvent.Kind.OPT_IN.value
    stamps = f"{formats.time(now)}\t{formats.time(now)}\t"
    text_id, explicit_text = _number(job.consent_text_id), "t" if explicit else "f"
    for record, subscriber_id in pairs:
        at, detail = formats.time(record.consent_at), formats.text(record.consent_source)
        for channel_id in record.channel_ids:
            if (subscriber_id, channel_id) in existing:
                continue
            existing.add((subscriber_id, channel_id))
            subscriptions.append(f"{stamps}{subscriber_id}\t{channel_id}\t{status}\t{source}\t{detail}\t{at}\n")
            # no connection: the consent was given elsewhere; the evidence names file and row
            events.append(
                f"{subscriber_id}\t{channel_id}\t{kind}\t{source}\t{detail}\t{at}\t{text_id}\t{evidence}{record.row}"
                f"\t{explicit_text}\n"
            )
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
