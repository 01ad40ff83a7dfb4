"""E-mails about the approval workflow: asking the approvers who may approve a broadcast, and
telling its author why it was rejected. Sent after the transaction commits."""

from __future__ import annotations

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q

from accounts.models import User
from broadcasts import selectors
from broadcasts.models import Broadcast
from tenants.selectors import tenant_absolute_url


def _admin_url(broadcast: Broadcast) -> str:
    return tenant_absolute_url(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/")


def notify_approvers(broadcast: Broadcast) -> None:
    """Ask the approvers who may approve it: not its author nor anyone who changed it."""
    approvers = [
        u.email
        for u in User.objects.filter(is_active=True)
        .filter(
            Q(groups__permissions__codename="approve_broadcast") | Q(user_permissions__codename="approve_broadcast")
        )
        .exclude(pk__in=list(selectors.broadcast_contributors(broadcast)))
        .distinct()
        if u.email
    ]
    if not approvers:
        return
    subject = f"Freigabe erbeten / Approval requested: {broadcast.title}"
    body = (
        f"„{broadcast.title}“ wartet auf Ihre Freigabe.\n{_admin_url(broadcast)}\n\n"
        f'"{broadcast.title}" is waiting for your approval.\n'
    )
    transaction.on_commit(lambda: send_mail(subject, body, None, approvers, fail_silently=True))


def notify_author(broadcast: Broadcast, comment: str) -> None:
    author = broadcast.author
    if not author or not author.email:
        return
    subject = f"Abgelehnt / Rejected: {broadcast.title}"
    body = f"{comment}\n\n{_admin_url(broadcast)}\n"
    transaction.on_commit(lambda: send_mail(subject, body, None, [author.email], fail_silently=True))
