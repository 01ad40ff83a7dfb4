"""E-mails about the approval workflow: asking the approvers who may approve a broadcast, and
telling its author why it was rejected.

The workflow decides who is asked (inside its transaction) and queues a task with their ids;
the task renders each mail in the recipient's language (their own, else the tenant's default)
and sends it, so a slow mail server never holds a transaction open."""

from __future__ import annotations

from itertools import groupby

from django.core.mail import send_mail
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext

from accounts.models import User
from broadcasts import schedule, selectors, tasks
from broadcasts.models import Broadcast
from core.tasks import enqueue_tenant_task
from tenants.selectors import tenant_absolute_url


def _admin_url(broadcast: Broadcast) -> str:
    return tenant_absolute_url(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/")


def _language(user: User) -> str:
    return user.language or getattr(schedule.current_tenant(), "default_language", "") or "de"


def notify_approvers(broadcast: Broadcast) -> None:
    """Ask the approvers who may approve it: not its author nor anyone who changed it."""
    approvers = [
        u.pk
        for u in User.objects.filter(is_active=True)
        .filter(
            Q(groups__permissions__codename="approve_broadcast") | Q(user_permissions__codename="approve_broadcast")
        )
        .exclude(pk__in=list(selectors.broadcast_contributors(broadcast)))
        .distinct()
        if u.email
    ]
    if approvers:
        enqueue_tenant_task(tasks.broadcast_notify_approvers_task, broadcast_id=broadcast.pk, user_ids=approvers)


def notify_author(broadcast: Broadcast, comment: str) -> None:
    author = broadcast.author
    if author and author.email:
        enqueue_tenant_task(
            tasks.broadcast_notify_author_task, broadcast_id=broadcast.pk, user_id=author.pk, comment=comment
        )


def broadcast_notify_approvers(*, broadcast_id: int, user_ids: list[int]) -> int:
    """One mail per language to the approvers chosen by `notify_approvers`. Returns the mails sent."""
    broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
    if broadcast is None:
        return 0
    users = sorted(User.objects.filter(pk__in=user_ids).exclude(email=""), key=_language)
    url = _admin_url(broadcast)
    sent = 0
    for language, group in groupby(users, key=_language):
        with translation.override(language):
            subject = gettext("Approval requested: %(title)s") % {"title": broadcast.title}
            body = gettext("“%(title)s” is waiting for your approval.\n%(url)s\n") % {
                "title": broadcast.title,
                "url": url,
            }
        sent += send_mail(subject, body, None, [u.email for u in group], fail_silently=True)
    return sent


def broadcast_notify_author(*, broadcast_id: int, user_id: int, comment: str) -> int:
    """Tell the author of a rejected broadcast the approver's comment. Returns the mails sent."""
    broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
    author = User.objects.filter(pk=user_id).exclude(email="").first()
    if broadcast is None or author is None:
        return 0
    with translation.override(_language(author)):
        subject = gettext("Rejected: %(title)s") % {"title": broadcast.title}
        body = gettext("“%(title)s” was not approved. The approver's comment:\n\n%(comment)s\n\n%(url)s\n") % {
            "title": broadcast.title,
            "comment": comment,
            "url": _admin_url(broadcast),
        }
    return send_mail(subject, body, None, [author.email], fail_silently=True)
