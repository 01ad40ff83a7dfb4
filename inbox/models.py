"""The shared inbox: what citizens write that is not a keyword command becomes a conversation
that the team answers, notes on, assigns, forwards and closes.

One open conversation per contact at a time (a partial unique constraint). A message after the
conversation was closed starts a NEW conversation: each case keeps its own first-response and
resolution times, and the closed thread stays as it was when it was closed.

A conversation's thread is a list of entries in both directions: what the person wrote
(pointing at messengers.InboundMessage), our replies (pointing at messengers.OutboundMessage,
whose status the single-message status sink keeps current), internal notes and system events."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

OPEN_STATES = ("open", "waiting")


class Department(models.Model):
    """A city department (Fachamt) questions can be forwarded to by e-mail."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    email = models.EmailField(_("e-mail address"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CannedReply(models.Model):
    """A prepared answer; `{{ name }}` and `{{ channel }}` are filled in per conversation."""

    title = models.CharField(_("title"), max_length=120, unique=True)
    body = models.TextField(_("text"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")  # the team owes an answer
        WAITING = "waiting", _("Waiting")  # answered or forwarded; waiting for the person or department
        CLOSED = "closed", _("Closed")

    contact = models.ForeignKey(
        "messengers.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="conversations"
    )
    connection = models.ForeignKey(
        "messengers.Connection", verbose_name=_("messenger"), on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned to"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    department = models.ForeignKey(
        Department, verbose_name=_("department"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labels = ArrayField(models.CharField(max_length=40), verbose_name=_("labels"), default=list, blank=True)
    unread_count = models.PositiveIntegerField(_("unread"), default=0)
    preview = models.CharField(_("last message"), max_length=200, blank=True)
    # the broadcast the person answers: their WhatsApp reply's context id, else the last
    # broadcast delivered to them within INBOX_ANSWER_WINDOW before the first message
    answers_broadcast = models.ForeignKey(
        "broadcasts.Broadcast",
        verbose_name=_("answers broadcast"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    opened_at = models.DateTimeField(_("opened"), auto_now_add=True)
    last_activity_at = models.DateTimeField(_("last activity"))
    # the oldest message of the person nobody has answered yet (the list sorts by it); null
    # when everything is answered
    waiting_since = models.DateTimeField(_("waiting since"), null=True, blank=True)
    first_response_at = models.DateTimeField(_("first response"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    auto_replied_at = models.DateTimeField(null=True, blank=True)
    # bumped on every change (time, and the id of the transaction that made it). The inbox page
    # polls by transaction id, not time: a change made at 10:00:01 in a transaction that commits
    # at 10:00:03 would slip past a poll at 10:00:02 that then asks "after 10:00:02?".
    changed_at = models.DateTimeField()
    change_xid = models.BigIntegerField(default=0, db_index=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        constraints = [
            models.UniqueConstraint(
                fields=["contact"], condition=Q(status__in=OPEN_STATES), name="conversation_one_open_per_contact"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "waiting_since"], name="conversation_queue_idx"),
            models.Index(fields=["assignee", "status"], name="conversation_assignee_idx"),
            models.Index(fields=["-last_activity_at"], name="conversation_activity_idx"),
            # the inbox figures (analytics.selectors_inbox) read the conversations opened in a period
            models.Index(fields=["opened_at"], name="conversation_opened_idx"),
        ]
        permissions = [
            ("reply_conversation", _("Can answer conversations")),
            ("forward_conversation", _("Can forward conversations to departments")),
            ("view_contact_details", _("Can see phone numbers and names in the inbox")),
            ("view_inbox_figures", _("Can see the inbox figures (response times per department)")),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.contact_id} ({self.status})"


class Entry(models.Model):
    """One item of a conversation's thread."""

    class Kind(models.TextChoices):
        INBOUND = "inbound", _("Message from the person")
        REPLY = "reply", _("Reply")
        AUTO_REPLY = "auto", _("Automatic reply")
        NOTE = "note", _("Internal note")
        EVENT = "event", _("Event")
        DEPARTMENT = "dept", _("Answer from the department")  # a draft: an agent checks and sends it

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="entries", db_index=False)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    text = models.TextField(_("text"), blank=True)
    inbound = models.ForeignKey(
        "messengers.InboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outbound = models.ForeignKey(
        "messengers.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event = models.CharField(_("event"), max_length=32, blank=True)  # assigned, status, labels, forwarded …
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("thread entry")
        verbose_name_plural = _("thread entries")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="entry_thread_idx"),
            GinIndex(SearchVector("text", config="german"), name="entry_text_search_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:40]}"


class Forward(models.Model):
    """A question sent to a department by e-mail. The department sees a pseudonymous reference
    (never the person's number or name unless the agent chose to include them) and answers
    through a signed one-time link, or by replying to the e-mail when the tenant receives mail
    (the Reply-To address and the Message-ID carry the forward's signed tag); the answer lands
    in the conversation as a draft."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="forwards")
    department = models.ForeignKey(
        Department, verbose_name=_("department"), on_delete=models.PROTECT, related_name="forwards"
    )
    question = models.TextField(_("question as sent"))
    note = models.TextField(_("note to the department"), blank=True)
    include_contact = models.BooleanField(_("contact details included"), default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("forwarded"), auto_now_add=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    # the Message-ID of the e-mail to the department (a reply's In-Reply-To names it)
    message_id = models.CharField(_("e-mail message ID"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("forwarded question")
        verbose_name_plural = _("forwarded questions")

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return f"A-{self.pk:05d}"


class InboxSettings(models.Model):
    """The inbox's settings of this tenant (one row): office hours, holidays, the automatic
    answer outside them, and what happens with departments' answers."""

    key = models.CharField(max_length=8, default="inbox", unique=True, editable=False)  # keeps it one row
    office_hours = models.TextField(
        _("office hours"),
        blank=True,
        help_text=_("One rule per line, e.g. “Mo-Do 08:00-16:00” and “Fr 08:00-12:00”. Empty: always open."),
    )
    holidays = models.TextField(
        _("holidays"), blank=True, help_text=_("One date per line, e.g. 24.12.2026. The office is closed then.")
    )
    auto_reply_de = models.TextField(
        _("automatic answer (German)"),
        blank=True,
        help_text=_(
            "Sent once per conversation outside office hours. {{ next_open }} is replaced by the next opening time."
        ),
    )
    auto_reply_en = models.TextField(_("automatic answer (English)"), blank=True)
    answer_window_hours = models.PositiveSmallIntegerField(
        _("replies count as answers to a broadcast for (hours)"),
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 14)],
        help_text=_("A message within this time after a broadcast reached the person is linked to that broadcast."),
    )
    send_department_answers = models.BooleanField(
        _("send departments' answers directly"),
        default=False,
        help_text=_("Off: a department's answer waits as a draft until an agent sends it."),
    )

    class Meta:
        verbose_name = _("inbox settings")
        verbose_name_plural = _("inbox settings")

    def __str__(self) -> str:
        return str(_("Inbox settings"))
