"""Recovery: the lease sweeper re-queues the rows of a worker that died mid-batch. The database
is the source of truth (django-q2's broker drops in-flight tasks on a crash), so nothing is lost;
rows that may have reached the provider are flagged as possible duplicates.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from broadcasts.models import Delivery

logger = logging.getLogger(__name__)


def sweep_expired_leases(broadcast_id: int | None = None) -> tuple[int, int]:
    """Re-queue rows whose worker died. `claimed` rows were never sent: re-queue silently.
    `sending` rows may have reached the provider: re-queue, flag and log each as a possible
    duplicate. Returns (claimed, sending) counts."""
    now = timezone.now()
    base = Delivery.objects.filter(lease_expires_at__lt=now)
    if broadcast_id is not None:
        base = base.filter(broadcast_id=broadcast_id)
    claimed = base.filter(status=Delivery.Status.CLAIMED).update(
        status=Delivery.Status.QUEUED, lease_expires_at=None, claimed_by="", next_attempt_at=now
    )
    in_flight = list(base.filter(status=Delivery.Status.SENDING).values_list("pk", "broadcast_id", "claimed_by"))
    if in_flight:
        for pk, bid, owner in in_flight:
            logger.warning(
                "delivery %s of broadcast %s was in flight when worker %s stopped; re-queued as a possible duplicate",
                pk,
                bid,
                owner,
                extra={"delivery_id": pk, "broadcast_id": bid},
            )
        Delivery.objects.filter(pk__in=[pk for pk, _, _ in in_flight], status=Delivery.Status.SENDING).update(
            status=Delivery.Status.QUEUED,
            lease_expires_at=None,
            claimed_by="",
            next_attempt_at=now,
            possible_duplicate=True,
        )
    return claimed, len(in_flight)
