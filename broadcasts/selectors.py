"""Reads on broadcasts: who may approve (the four-eyes rule), progress, the send plan, review
queue, public archive."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from broadcasts import pipeline
from broadcasts.headlines import headline
from broadcasts.models import Broadcast, BroadcastEdit, BroadcastVariant, Delivery, LinkClick
from core.tenancy import connection as db
from messengers import ratelimit
from messengers.adapters.base import Provider
from messengers.models import Connection, WhatsAppTemplate

Step = Literal["approve", "review"]


# --------------------------------------------------------------------------------------------
# The four-eyes rule
# --------------------------------------------------------------------------------------------
def broadcast_contributors(broadcast: Broadcast) -> dict[int, set[str]]:
    """Everybody who wrote or changed the content or targeting of this broadcast, by user id,
    with what they changed ("author" for its author, else BroadcastEdit.Aspect values).

    Contributions are never cleared by a later submission: what a co-editor wrote is still in
    the version being approved. API keys (not built yet) must be recorded as the person they act
    for, so a key counts as that person here."""
    contributors: dict[int, set[str]] = {}
    if broadcast.author_id is not None:
        contributors[broadcast.author_id] = {"author"}
    rows = BroadcastEdit.objects.filter(broadcast_id=broadcast.pk, editor__isnull=False).values_list(
        "editor_id", "changed"
    )
    for editor_id, changed in rows:
        contributors.setdefault(editor_id, set()).update(changed)
    return contributors


@dataclass(frozen=True)
class FourEyesConflict:
    """Why a person may not approve a broadcast, or review its emergency bypass."""

    kind: Literal["author", "editor", "bypasser"]
    step: Step
    changed: tuple[str, ...] = ()  # BroadcastEdit.Aspect values, for kind "editor"

    @property
    def reason(self) -> str:
        """The explanation in the active language (the admin shows it instead of the button)."""
        if self.kind == "bypasser":
            return gettext(
                "You sent this broadcast without approval, so you cannot review it: another person with the "
                "approver role must (four-eyes rule)."
            )
        if self.kind == "author":
            if self.step == "review":
                return gettext(
                    "You wrote this broadcast, so you cannot review it: another person with the approver role "
                    "must (four-eyes rule)."
                )
            return gettext(
                "You wrote this broadcast, so you cannot approve it: another person with the approver role "
                "must (four-eyes rule)."
            )
        labels = dict(BroadcastEdit.Aspect.choices)
        changed = ", ".join(str(labels.get(aspect, aspect)) for aspect in self.changed)
        if self.step == "review":
            return gettext(
                "You changed this broadcast (%(changed)s), so you cannot review it: another person with the "
                "approver role who did not change it must (four-eyes rule)."
            ) % {"changed": changed}
        return gettext(
            "You changed this broadcast (%(changed)s), so you cannot approve it: another person with the "
            "approver role who did not change it must (four-eyes rule)."
        ) % {"changed": changed}


def broadcast_four_eyes_conflict(broadcast: Broadcast, user: Any, *, step: Step = "approve") -> FourEyesConflict | None:
    """Whether `user` wrote or changed this broadcast (or, for a review, sent it without
    approval). None: the four-eyes rule allows them; role and status are checked separately."""
    if user is None or user.pk is None:
        return None
    if step == "review" and broadcast.bypassed_by_id == user.pk:
        return FourEyesConflict(kind="bypasser", step=step)
    if broadcast.author_id == user.pk:
        return FourEyesConflict(kind="author", step=step)
    changed: set[str] = set()
    for aspects in BroadcastEdit.objects.filter(broadcast_id=broadcast.pk, editor_id=user.pk).values_list(
        "changed", flat=True
    ):
        changed.update(aspects)
    if changed:
        order = list(BroadcastEdit.Aspect.values)
        return FourEyesConflict(
            kind="editor",
            step=step,
            changed=tuple(sorted(changed, key=lambda a: order.index(a) if a in order else len(order))),
        )
    return None


def user_can_approve(user: Any) -> bool:
    """The role: approve (and reject) broadcasts at all."""
    return bool(user and user.is_active and user.has_perm("broadcasts.approve_broadcast"))


def user_can_review(user: Any) -> bool:
    """The role: review broadcasts sent without approval at all."""
    return bool(user and user.is_active and user.has_perm("broadcasts.review_broadcast"))


def broadcast_list_awaiting_approval_by(user: Any) -> QuerySet[Broadcast]:
    """Broadcasts waiting for approval that `user` may approve: they have the approver role and
    neither wrote nor changed the broadcast (four-eyes rule). Empty for everybody else.
    The navigation badge, the start page and the list filter "to approve: me" all use this."""
    if not user_can_approve(user):
        return Broadcast.objects.none()
    changed_by_user = BroadcastEdit.objects.filter(editor_id=user.pk).values("broadcast_id")
    return (
        Broadcast.objects.filter(status=Broadcast.Status.SUBMITTED)
        .exclude(author_id=user.pk)
        .exclude(pk__in=changed_by_user)
        .order_by("submitted_at", "pk")
    )


def broadcast_list_sending() -> QuerySet[Broadcast]:
    """Broadcasts being delivered now (the "sending" badge and the start page's live list)."""
    return Broadcast.objects.filter(status=Broadcast.Status.SENDING).order_by("send_started_at", "pk")


def broadcast_list_awaiting_review_by(user: Any) -> QuerySet[Broadcast]:
    """Broadcasts sent without approval that `user` may review: they have the role and neither
    wrote, changed nor bypassed the broadcast (four-eyes rule). Empty for everybody else."""
    if not user_can_review(user):
        return Broadcast.objects.none()
    changed_by_user = BroadcastEdit.objects.filter(editor_id=user.pk).values("broadcast_id")
    return (
        Broadcast.objects.filter(needs_review=True)
        .exclude(author_id=user.pk)
        .exclude(bypassed_by_id=user.pk)
        .exclude(pk__in=changed_by_user)
        .order_by("send_started_at", "pk")
    )


def broadcast_list_rejected_of(user: Any) -> QuerySet[Broadcast]:
    """`user`'s own broadcasts that an approver sent back, newest first (with rejection_comment)."""
    if user is None or user.pk is None:
        return Broadcast.objects.none()
    return Broadcast.objects.filter(author_id=user.pk, status=Broadcast.Status.REJECTED).order_by("-updated_at", "pk")


def broadcast_list_paused() -> QuerySet[Broadcast]:
    """Broadcasts whose sending is paused (by a person or after too many errors; see paused_reason)."""
    return Broadcast.objects.filter(status=Broadcast.Status.PAUSED).order_by("-updated_at", "pk")


def broadcast_list_latest_sent() -> QuerySet[Broadcast]:
    """Sent broadcasts, the most recently finished first."""
    return Broadcast.objects.filter(status=Broadcast.Status.SENT).order_by("-send_finished_at", "-pk")


@dataclass
class Progress:
    total: int
    queued: int
    in_flight: int
    sent: int
    delivered: int
    read: int
    failed: int
    skipped: int
    possible_duplicates: int
    status: str
    failures_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.sent + self.delivered + self.read + self.failed + self.skipped

    @property
    def percent(self) -> float:
        return round(100.0 * self.done / self.total, 1) if self.total else (100.0 if self.status == "sent" else 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "done": self.done, "percent": self.percent}


def broadcast_progress(broadcast: Broadcast) -> Progress:
    """Counts by status in one grouped query (uses the (broadcast, status) index)."""
    counts = dict(Delivery.objects.filter(broadcast=broadcast).values_list("status").annotate(n=Count("pk")).order_by())
    failures = dict(
        Delivery.objects.filter(broadcast=broadcast, status__in=[Delivery.Status.FAILED, Delivery.Status.SKIPPED])
        .values_list("error_kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    duplicates = Delivery.objects.filter(broadcast=broadcast, possible_duplicate=True).count()
    total = sum(counts.values())
    return Progress(
        total=total,
        queued=counts.get("queued", 0),
        in_flight=counts.get("claimed", 0) + counts.get("sending", 0),
        # delivered/read imply sent; "sent" here counts everything that left us successfully
        sent=counts.get("sent", 0),
        delivered=counts.get("delivered", 0),
        read=counts.get("read", 0),
        failed=counts.get("failed", 0),
        skipped=counts.get("skipped", 0),
        possible_duplicates=duplicates,
        status=broadcast.status,
        failures_by_reason={str(k or "unknown"): v for k, v in failures.items()},
    )


def broadcast_progress_many(broadcasts: Sequence[Broadcast]) -> dict[int, Progress]:
    """Progress of several broadcasts by id in one grouped query (the start page's lists).

    Counts by status only: failures_by_reason and possible_duplicates stay empty (the broadcast's
    own page has them, from broadcast_progress)."""
    if not broadcasts:
        return {}
    counts: dict[int, dict[str, int]] = {b.pk: {} for b in broadcasts}
    rows = (
        Delivery.objects.filter(broadcast_id__in=list(counts))
        .values_list("broadcast_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for broadcast_id, status, n in rows:
        counts[broadcast_id][status] = n
    return {
        b.pk: Progress(
            total=sum(counts[b.pk].values()),
            queued=counts[b.pk].get("queued", 0),
            in_flight=counts[b.pk].get("claimed", 0) + counts[b.pk].get("sending", 0),
            sent=counts[b.pk].get("sent", 0),
            delivered=counts[b.pk].get("delivered", 0),
            read=counts[b.pk].get("read", 0),
            failed=counts[b.pk].get("failed", 0),
            skipped=counts[b.pk].get("skipped", 0),
            possible_duplicates=0,
            status=b.status,
        )
        for b in broadcasts
    }


@dataclass
class PlanLine:
    connection_id: int
    name: str
    provider: str
    recipients: int
    needs_template: int
    rate_per_second: float
    seconds: float
    cost_eur: Decimal
    tier: int | None = None
    tier_headroom: int | None = None
    segments: int = 1


@dataclass
class SendPlan:
    lines: list[PlanLine]
    warnings: list[str]

    @property
    def recipients(self) -> int:
        return sum(line.recipients for line in self.lines)

    @property
    def seconds(self) -> float:
        return max((line.seconds for line in self.lines), default=0.0)  # connections send in parallel

    @property
    def cost_eur(self) -> Decimal:
        return sum((line.cost_eur for line in self.lines), Decimal("0"))


def sms_segments(text: str) -> int:
    """GSM-7 texts: 160 characters, 153 per part when split; anything else (UCS-2): 70 / 67."""
    gsm = set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
    )
    extended = set("^{}\\[~]|€")
    if all(ch in gsm for ch in text):
        units = sum(2 if ch in extended else 1 for ch in text)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def send_plan(broadcast: Broadcast) -> SendPlan:
    """Recipients per connection, WhatsApp template needs and tier headroom, time at each
    connection's rate, cost estimate — from the same query the fan-out uses."""
    sql, params = pipeline.recipients_sql(broadcast)
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT x.conn, count(*), count(*) FILTER (WHERE x.tpl) FROM ("  # noqa: S608 - our own SQL
            f"SELECT r.* FROM ({sql}) AS r(b, sub, contact, conn, lang, tpl, st, att, nxt, p1, p2, p3, p4, p5, p6)"
            ") x GROUP BY x.conn",
            params,
        )
        rows = cursor.fetchall()
    connections = {c.pk: c for c in Connection.objects.filter(pk__in=[r[0] for r in rows])}
    bodies = [v.body for v in broadcast.variants.all()] or [""]
    segments = max(sms_segments(body) for body in bodies)
    lines: list[PlanLine] = []
    warnings: list[str] = []
    for connection_id, recipients, needs_template in rows:
        connection = connections[connection_id]
        rate = float(connection.rate_limit_per_second)
        per_message = segments if connection.provider == "sms" else 1
        line = PlanLine(
            connection_id=connection_id,
            name=connection.name,
            provider=connection.provider,
            recipients=recipients,
            needs_template=needs_template,
            rate_per_second=round(ratelimit.effective_rate(rate), 1),
            seconds=pipeline.estimated_seconds(recipients, rate),
            cost_eur=(connection.price_per_message * recipients * per_message).quantize(Decimal("0.01")),
            segments=per_message,
        )
        if connection.provider == "whatsapp":
            line.tier = connection.whatsapp_tier
            if connection.whatsapp_tier:
                line.tier_headroom = connection.whatsapp_tier - needs_template
                if line.tier_headroom < 0:
                    warnings.append(
                        gettext(
                            "%(connection)s: %(count)d people need a template, but the messaging tier allows "
                            "%(tier)d per 24 hours; %(missed)d will not be reached today."
                        )
                        % {
                            "connection": connection.name,
                            "count": needs_template,
                            "tier": connection.whatsapp_tier,
                            "missed": -line.tier_headroom,
                        }
                    )
            if needs_template and not broadcast.wa_template_name:
                warnings.append(
                    gettext(
                        "%(connection)s: %(count)d recipients have not written in the last 24 hours; choose an "
                        "approved WhatsApp template, or they will not get this message."
                    )
                    % {"connection": connection.name, "count": needs_template}
                )
        if connection.status != Connection.Status.ACTIVE:
            warnings.append(
                gettext("%(connection)s is %(status)s: its recipients wait.")
                % {"connection": connection.name, "status": connection.get_status_display()}
            )
        lines.append(line)
    if not lines:
        warnings.append(gettext("Nobody matches this targeting yet."))
    return SendPlan(lines=sorted(lines, key=lambda line: line.name), warnings=warnings)


def broadcast_list_archive() -> QuerySet[Broadcast]:
    """Sent broadcasts on at least one public channel, newest first (public pages and RSS)."""
    return (
        Broadcast.objects.filter(status=Broadcast.Status.SENT, channels__is_public=True)
        .filter(variants__isnull=False)
        .distinct()
        .prefetch_related("variants", "channels")
        .order_by("-send_finished_at")
    )


def broadcast_public_variant(broadcast: Broadcast, languages: Sequence[str]) -> BroadcastVariant | None:
    """The text the public reads: the first of `languages` the broadcast has, else German, else any.

    Reads the prefetched variants (broadcast_list_archive), so a page of items costs no query."""
    variants = {v.language: v for v in broadcast.variants.all()}
    for language in [*languages, "de"]:
        if language in variants:
            return variants[language]
    return next(iter(variants.values()), None)


def broadcast_public_item(broadcast: Broadcast, languages: Sequence[str]) -> dict[str, str]:
    """Headline and text of a sent broadcast for the archive and RSS; never its internal title."""
    variant = broadcast_public_variant(broadcast, languages)
    if variant is None:
        return {"headline": "", "text": ""}
    return {"headline": headline(subject=variant.subject, body=variant.body), "text": variant.body}


def broadcast_rollup() -> dict[str, int]:
    """Per-tenant figures for the operator overview (a source of analytics.services.tenant_rollup_compute)."""
    since = timezone.now() - timedelta(days=1)
    deliveries = Delivery.objects.filter(sent_at__gte=since)
    return {
        "broadcasts_sending": Broadcast.objects.filter(status=Broadcast.Status.SENDING).count(),
        "broadcasts_waiting_approval": Broadcast.objects.filter(status=Broadcast.Status.SUBMITTED).count(),
        "messages_sent_24h": deliveries.count(),
        "messages_failed_24h": Delivery.objects.filter(
            status=Delivery.Status.FAILED, broadcast__send_started_at__gte=since
        ).count(),
        "broadcasts_needing_review": Broadcast.objects.filter(needs_review=True).count(),
    }


def delivery_list_for_subscriber(subscriber_id: int) -> list[dict[str, Any]]:
    """The broadcasts one person was sent, for their GDPR export (Art. 15): when, on which
    messenger, what it said in their language, what became of it and which links they opened."""
    deliveries = list(
        Delivery.objects.filter(subscriber_id=subscriber_id)
        .select_related("connection")
        .order_by("pk")
        .only("pk", "broadcast_id", "language", "status", "sent_at", "delivered_at", "read_at", "error_kind",
              "connection__provider")
    )  # fmt: skip
    if not deliveries:
        return []
    texts = {
        (v.broadcast_id, v.language): v.body
        for v in BroadcastVariant.objects.filter(broadcast_id__in={d.broadcast_id for d in deliveries})
    }
    clicks: dict[int, list[str]] = {}
    for delivery_id, url, at in LinkClick.objects.filter(delivery_id__in=[d.pk for d in deliveries]).values_list(
        "delivery_id", "link__url", "at"
    ):
        clicks.setdefault(delivery_id, []).append(f"{at.isoformat()} {url}")
    return [
        {
            "broadcast": d.broadcast_id,
            "messenger": d.connection.provider,
            "language": d.language,
            "text": texts.get((d.broadcast_id, d.language), ""),
            "status": d.status,
            "error": d.error_kind,
            "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            "read_at": d.read_at.isoformat() if d.read_at else None,
            "links_opened": clicks.get(d.pk, []),
        }
        for d in deliveries
    ]


def broadcast_answered_by(
    *, connection_id: int, reply_to_provider_id: str, subscriber_id: int | None, at: Any, window: timedelta
) -> int | None:
    """The broadcast a person's message answers, by id: the one their reply quotes (WhatsApp's
    context id), else the last one delivered to them in `window` before `at`. Reads only
    broadcasts that were sending in that window, then the (broadcast, subscriber) unique index,
    so it stays cheap with millions of deliveries."""
    if reply_to_provider_id:
        quoted = (
            Delivery.objects.filter(connection_id=connection_id, provider_message_id=reply_to_provider_id)
            .values_list("broadcast_id", flat=True)
            .first()
        )
        if quoted is not None:
            return int(quoted)
    if subscriber_id is None:
        return None
    since = at - window
    recent = Broadcast.objects.filter(send_started_at__isnull=False, send_started_at__lte=at).exclude(
        send_finished_at__lt=since
    )
    found = (
        Delivery.objects.filter(
            broadcast_id__in=recent.values("pk"), subscriber_id=subscriber_id, sent_at__gte=since, sent_at__lte=at
        )
        .order_by("-sent_at")
        .values_list("broadcast_id", flat=True)
        .first()
    )
    return int(found) if found is not None else None


# --------------------------------------------------------------------------------------------
# Compose: the WhatsApp template picker, the preview's messengers and what went out
# --------------------------------------------------------------------------------------------
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
PREVIEW_KINDS = ("whatsapp", "telegram", "sms", "email")


@dataclass(frozen=True)
class TemplateChoice:
    """One approved WhatsApp template the compose form offers (per name and language)."""

    name: str
    language: str
    body: str
    parameters: int

    @property
    def value(self) -> str:
        return f"{self.name}|{self.language}"


def template_parameter_count(template: WhatsAppTemplate) -> int:
    """The body's parameters: the synced count, or the highest {{n}} of the body if that is more."""
    numbers = [int(n) for n in PLACEHOLDER.findall(template.body or "")]
    return max([template.parameter_count, *numbers])


def template_fill(body: str, params: Sequence[str]) -> str:
    """The template body with {{1}}, {{2}} … replaced by the parameters (missing ones stay)."""

    def replace(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return params[index - 1] if 0 < index <= len(params) and params[index - 1] else match.group(0)

    return PLACEHOLDER.sub(replace, body or "")


def broadcast_template_text(broadcast: Broadcast) -> str:
    """The broadcast's WhatsApp template body with its parameters filled in ("" without one)."""
    if not broadcast.wa_template_name:
        return ""
    body = (
        WhatsAppTemplate.objects.filter(name=broadcast.wa_template_name, language=broadcast.wa_template_language)
        .order_by("pk")
        .values_list("body", flat=True)
        .first()
    )
    return template_fill(body or "", list(broadcast.wa_template_params))


def whatsapp_template_choices() -> list[TemplateChoice]:
    """The approved templates of this tenant's WhatsApp connections (synced from Meta or
    entered by hand), one per name and language: a template approved on two numbers is one
    choice. The schema is the tenant's, so another tenant's templates are never here."""
    choices: dict[tuple[str, str], TemplateChoice] = {}
    rows = WhatsAppTemplate.objects.filter(status="APPROVED", connection__provider=Provider.WHATSAPP).order_by(
        "name", "language", "pk"
    )
    for template in rows:
        choices.setdefault(
            (template.name, template.language),
            TemplateChoice(
                name=template.name,
                language=template.language,
                body=template.body,
                parameters=template_parameter_count(template),
            ),
        )
    return list(choices.values())


def broadcast_preview_kinds(broadcast: Broadcast | None) -> list[str]:
    """The messengers the preview offers: those of the targeted channels' connections (a demo
    look-alike counts as what it poses as), else all of them (nothing targeted yet, or only the
    plain sandbox)."""
    if broadcast is None or broadcast.pk is None:
        return list(PREVIEW_KINDS)
    kinds = set()
    for provider, look in Connection.objects.filter(channels__broadcasts=broadcast).values_list(
        "provider", "demo_presents_as"
    ):
        kinds.add(look if provider == Provider.SANDBOX else provider)
    found = [kind for kind in PREVIEW_KINDS if kind in kinds]
    return found or list(PREVIEW_KINDS)


@dataclass
class SentMessage:
    """What one group of recipients got: one messenger, one language, with or without the
    WhatsApp template."""

    provider: str
    language: str
    recipients: int
    text: str
    subject: str = ""
    template_name: str = ""
    template_language: str = ""
    template_params: list[str] = field(default_factory=list)
    template_text: str = ""
    media_url: str = ""
    media_kind: str = ""
    buttons: list[dict[str, str]] = field(default_factory=list)


WENT_OUT = (Delivery.Status.SENT, Delivery.Status.DELIVERED, Delivery.Status.READ)


def broadcast_sent_content(
    broadcast: Broadcast,
    *,
    default_language: str = "de",
    groups: Iterable[tuple[str, str, str, bool, int]] | None = None,
) -> list[SentMessage]:
    """What went out, per messenger and language, as the sender composed it
    (broadcasts.pipeline.composer): the text of the recipient's language (else the tenant's
    default language), the template with its parameters for WhatsApp recipients outside the
    24-hour window, media and buttons. Content cannot change once sending started, so the
    stored broadcast is what was sent. Two queries plus the variants; one fewer when the caller
    has the counts already (`groups`: provider, demo look, language, use template, recipients,
    of the rows sent, delivered or read, e.g. from a roll-up of a finished broadcast)."""
    if groups is None:
        groups = (
            Delivery.objects.filter(broadcast=broadcast, status__in=WENT_OUT)
            .values_list("connection__provider", "connection__demo_presents_as", "language", "use_template")
            .annotate(n=Count("pk"))
            .order_by("connection__provider", "language", "use_template")
        )
    variants = {v.language: v for v in broadcast.variants.all()}
    fallback = default_language if default_language in variants else next(iter(sorted(variants)), "")
    template_text = broadcast_template_text(broadcast)
    params = list(broadcast.wa_template_params)
    merged: dict[tuple[str, str, bool], SentMessage] = {}
    for provider, look, language, use_template, count in groups:
        kind = look if provider == Provider.SANDBOX and look else provider
        key = (kind, language, bool(use_template))
        if key in merged:
            merged[key].recipients += count
            continue
        variant = variants.get(language) or variants.get(fallback)
        templated = bool(use_template) and provider == Provider.WHATSAPP and bool(broadcast.wa_template_name)
        message = SentMessage(
            provider=kind,
            language=variant.language if variant else language,
            recipients=count,
            text="" if templated else (variant.body if variant else ""),
            subject=headline(subject=variant.subject, body=variant.body)[:200]
            if variant and provider == Provider.EMAIL
            else "",
            media_url=broadcast.media.url if broadcast.media else "",
            media_kind=broadcast.media_kind if broadcast.media else "",
            buttons=[dict(b) for b in broadcast.buttons or [] if b.get("url")],
        )
        if templated:
            message.template_name = broadcast.wa_template_name
            message.template_language = broadcast.wa_template_language or language.split("-")[0]
            message.template_params = params
            message.template_text = template_text
        merged[key] = message
    return list(merged.values())
