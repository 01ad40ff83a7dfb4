"""The four-eyes rule of issue 8: nobody who wrote or changed the content or targeting of a
broadcast may approve it (or review its emergency bypass), enforced in the services, whatever
the role (the admin side is in test_four_eyes_admin.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from accounts import roles
from accounts.models import AuditEvent
from broadcasts import selectors, services
from broadcasts.models import Broadcast, BroadcastEdit
from core.errors import ApplicationError
from messengers.selectors import connection_sandbox
from subscribers.models import District
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.broadcasts.four_eyes_support import (
    TEXT,
    S,
    bypassed,
    status,
    submitted,
)
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user


# --------------------------------------------------------------------------------------------
# The hole as reported, and its class
# --------------------------------------------------------------------------------------------
def test_an_approver_who_edited_a_submitted_broadcast_cannot_approve_it(team: dict[str, Any]) -> None:
    broadcast = submitted(team)
    approver = team["approver"]
    services.broadcast_update(broadcast=broadcast, actor=approver, variants={"de": "Mein eigener Text."})
    with pytest.raises(ApplicationError, match="four-eyes"):
        services.broadcast_approve(broadcast=broadcast, actor=approver)
    assert status(broadcast) == S.SUBMITTED
    refusal = AuditEvent.objects.get(action="broadcast.co_editor_approval_refused", target_id=str(broadcast.pk))
    assert refusal.actor == approver and refusal.details["changed"] == ["text"]
    # another approver, who did not change it, may
    services.broadcast_approve(broadcast=broadcast, actor=team["approver2"])
    assert status(broadcast) == S.APPROVED
    assert Broadcast.objects.get(pk=broadcast.pk).approved_by == team["approver2"]


def test_editing_approved_content_reopens_it_and_the_editor_cannot_approve_it_again(team: dict[str, Any]) -> None:
    broadcast = submitted(team, scheduled_at=timezone.now() + timedelta(days=1))
    services.broadcast_approve(broadcast=broadcast, actor=team["approver"])
    assert status(broadcast) == S.SCHEDULED
    services.broadcast_update(broadcast=broadcast, actor=team["approver2"], variants={"de": "Anders."})
    assert status(broadcast) == S.SUBMITTED  # the old rule still holds: changed approved content goes back
    with pytest.raises(ApplicationError, match="four-eyes"):
        services.broadcast_approve(broadcast=broadcast, actor=team["approver2"])
    services.broadcast_approve(broadcast=broadcast, actor=team["approver"])  # did not change it
    assert status(broadcast) == S.SCHEDULED


@pytest.mark.parametrize(
    ("aspect", "change"),
    [
        ("title", {"title": "Anderer Titel"}),
        ("priority", {"priority": "normal"}),
        ("text", {"variants": {**TEXT, "en": "Other words."}}),
        ("text", {"variants": TEXT, "subjects": {"de": "Neuer Betreff"}}),
        ("channels", {"channels": "both"}),
        ("districts", {"districts": "one"}),
        ("languages", {"languages": ["de"]}),
        ("tags", {"tags": ["rad"]}),
        ("buttons", {"buttons": [{"title": "Mehr", "url": "https://example.org/x"}]}),
        ("template", {"wa_template_name": "newsletter_update", "wa_template_language": "de"}),
        ("template", {"wa_template_params": ["Stuttgart"]}),
    ],
)
def test_every_change_of_content_or_targeting_blocks_the_editor(
    team: dict[str, Any], aspect: str, change: dict[str, Any]
) -> None:
    broadcast = submitted(team)
    if change.get("channels") == "both":
        change["channels"] = [team["channel"], team["other"]]
    if change.get("districts") == "one":
        change["districts"] = [District.objects.create(name="Mitte")]
    services.broadcast_update(broadcast=broadcast, actor=team["approver"], **change)
    edit = BroadcastEdit.objects.get(broadcast=broadcast)
    assert edit.editor == team["approver"] and edit.changed == [aspect] and edit.status == S.SUBMITTED
    assert services.broadcast_actions_for(broadcast, team["approver"])["approve"] is not None
    with pytest.raises(ApplicationError, match="four-eyes"):
        services.broadcast_approve(broadcast=broadcast, actor=team["approver"])


def test_a_save_that_changes_nothing_does_not_count(team: dict[str, Any]) -> None:
    """Decision: opening the form and saving it unchanged (or changing only when it goes out,
    which is neither content nor targeting) does not make an approver a co-editor."""
    broadcast = submitted(team)
    approver = team["approver"]
    services.broadcast_update(
        broadcast=broadcast,
        actor=approver,
        title="Feinstaubalarm ab morgen",
        variants=dict(TEXT),
        channels=[team["channel"]],
        districts=[],
        languages=[],
        tags=[],
        buttons=[],
    )
    services.broadcast_update(broadcast=broadcast, actor=approver, scheduled_at=timezone.now() + timedelta(hours=3))
    assert not BroadcastEdit.objects.filter(broadcast=broadcast).exists()
    assert Broadcast.objects.get(pk=broadcast.pk).revision == 1
    assert services.broadcast_actions_for(broadcast, approver)["approve"] is None
    services.broadcast_approve(broadcast=broadcast, actor=approver)
    assert status(broadcast) == S.SCHEDULED


def test_an_approver_who_changed_the_draft_before_it_was_submitted_cannot_approve_it(team: dict[str, Any]) -> None:
    """Decision: contributions are not cleared by a new submission. What the co-editor wrote is
    still in the version being approved, so they stay ineligible for this broadcast."""
    broadcast = services.broadcast_create(
        author=team["editor"], title="Entwurf", variants=dict(TEXT), channels=[team["channel"]]
    )
    services.broadcast_update(broadcast=broadcast, actor=team["approver"], tags=["rad"])
    services.broadcast_submit(broadcast=broadcast, actor=team["editor"])
    with pytest.raises(ApplicationError, match="four-eyes"):
        services.broadcast_approve(broadcast=broadcast, actor=team["approver"])
    services.broadcast_approve(broadcast=broadcast, actor=team["approver2"])
    assert status(broadcast) == S.APPROVED


def test_an_approver_who_rejected_and_then_rewrote_it_cannot_approve_the_rewrite(team: dict[str, Any]) -> None:
    broadcast = submitted(team)
    approver = team["approver"]
    services.broadcast_reject(broadcast=broadcast, actor=approver, comment="Uhrzeit fehlt")
    services.broadcast_update(broadcast=broadcast, actor=approver, variants={"de": "Ab morgen 6 Uhr."})
    assert status(broadcast) == S.DRAFT
    services.broadcast_submit(broadcast=broadcast, actor=team["editor"])
    with pytest.raises(ApplicationError, match="four-eyes"):
        services.broadcast_approve(broadcast=broadcast, actor=approver)


def test_edits_record_who_changed_what_and_when(team: dict[str, Any]) -> None:
    broadcast = submitted(team)
    services.broadcast_update(broadcast=broadcast, actor=team["editor"], title="Neu", tags=["rad"])
    services.broadcast_update(broadcast=broadcast, actor=team["approver"], channels=[team["other"]])
    edits = list(BroadcastEdit.objects.filter(broadcast=broadcast).order_by("pk"))
    assert [(e.editor, e.changed, e.revision) for e in edits] == [
        (team["editor"], ["title", "tags"], 2),
        (team["approver"], ["channels"], 3),
    ]
    assert Broadcast.objects.get(pk=broadcast.pk).revision == 3
    edited = AuditEvent.objects.filter(action="broadcast.edited", target_id=str(broadcast.pk)).order_by("id")
    assert [e.details["changed"] for e in edited] == [["title", "tags"], ["channels"]]  # in aspect order
    contributors = selectors.broadcast_contributors(broadcast)
    assert contributors == {team["editor"].pk: {"author", "tags", "title"}, team["approver"].pk: {"channels"}}


def test_an_approval_is_for_the_revision_the_approver_saw(team: dict[str, Any]) -> None:
    """An approver opens revision 1; someone else changes the text; the click on the old page
    must not approve text the approver never read."""
    broadcast = submitted(team)
    seen = Broadcast.objects.get(pk=broadcast.pk).revision
    services.broadcast_update(broadcast=broadcast, actor=team["editor"], variants={"de": "Heimlich geändert."})
    with pytest.raises(ApplicationError, match="changed after you opened it"):
        services.broadcast_approve(broadcast=broadcast, actor=team["approver"], revision=seen)
    assert status(broadcast) == S.SUBMITTED
    services.broadcast_approve(broadcast=broadcast, actor=team["approver"], revision=seen + 1)
    assert status(broadcast) == S.APPROVED


# --------------------------------------------------------------------------------------------
# Every role against every step
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "may_approve"),
    [("admin", True), ("approver", True), ("editor", False), ("agent", False)],
)
def test_every_role_against_approve_and_reject(team: dict[str, Any], role: str, may_approve: bool) -> None:
    approve_me, reject_me = submitted(team), submitted(team)
    if may_approve:
        services.broadcast_approve(broadcast=approve_me, actor=team[role])
        services.broadcast_reject(broadcast=reject_me, actor=team[role], comment="Nein")
        assert (status(approve_me), status(reject_me)) == (S.APPROVED, S.REJECTED)
    else:
        with pytest.raises(ApplicationError, match="approver role"):
            services.broadcast_approve(broadcast=approve_me, actor=team[role])
        with pytest.raises(ApplicationError, match="approver role"):
            services.broadcast_reject(broadcast=reject_me, actor=team[role], comment="Nein")
        assert (status(approve_me), status(reject_me)) == (S.SUBMITTED, S.SUBMITTED)


@pytest.mark.parametrize(
    ("role", "may_edit", "refusal"),
    [
        ("admin", True, "four-eyes"),
        ("approver", True, "four-eyes"),
        ("editor", True, "approver role"),
        ("agent", False, "approver role"),
    ],
)
def test_every_role_against_edit_then_approve(team: dict[str, Any], role: str, may_edit: bool, refusal: str) -> None:
    broadcast = submitted(team)
    if may_edit:
        services.broadcast_update(broadcast=broadcast, actor=team[role], variants={"de": f"Von {role}."})
    else:
        with pytest.raises(ApplicationError, match="cannot change broadcasts"):
            services.broadcast_update(broadcast=broadcast, actor=team[role], variants={"de": f"Von {role}."})
        assert not BroadcastEdit.objects.filter(broadcast=broadcast).exists()
    with pytest.raises(ApplicationError, match=refusal):
        services.broadcast_approve(broadcast=broadcast, actor=team[role])
    assert status(broadcast) == S.SUBMITTED


@pytest.mark.parametrize("role", ["admin", "approver", "editor"])
def test_the_author_of_any_role_cannot_approve(team: dict[str, Any], role: str) -> None:
    broadcast = submitted(team, author=role)
    with pytest.raises(ApplicationError, match="four-eyes" if role != "editor" else "approver role"):
        services.broadcast_approve(broadcast=broadcast, actor=team[role])
    assert status(broadcast) == S.SUBMITTED


def test_a_co_editor_may_still_reject(team: dict[str, Any]) -> None:
    """Decision: rejecting only stops a broadcast, so the four-eyes rule does not forbid it."""
    broadcast = submitted(team)
    services.broadcast_update(broadcast=broadcast, actor=team["approver"], tags=["rad"])
    services.broadcast_reject(broadcast=broadcast, actor=team["approver"], comment="Doch nicht")
    assert status(broadcast) == S.REJECTED


@pytest.mark.parametrize(("role", "allowed"), [("admin", True), ("approver", True), ("editor", True), ("agent", False)])
def test_every_role_against_submit_and_cancel(team: dict[str, Any], role: str, allowed: bool) -> None:
    draft = services.broadcast_create(author=team["editor"], title="D", variants=dict(TEXT), channels=[team["channel"]])
    waiting = submitted(team)
    if allowed:
        services.broadcast_submit(broadcast=draft, actor=team[role])
        services.broadcast_cancel(broadcast=waiting, actor=team[role])
        assert (status(draft), status(waiting)) == (S.SUBMITTED, S.CANCELLED)
    else:
        with pytest.raises(ApplicationError):
            services.broadcast_submit(broadcast=draft, actor=team[role])
        with pytest.raises(ApplicationError):
            services.broadcast_cancel(broadcast=waiting, actor=team[role])
        assert (status(draft), status(waiting)) == (S.DRAFT, S.SUBMITTED)


@pytest.mark.parametrize("role", ["agent"])
def test_roles_without_control_cannot_pause_or_resume(team: dict[str, Any], role: str) -> None:
    broadcast = submitted(team)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENDING)
    with pytest.raises(ApplicationError):
        services.broadcast_pause(broadcast=broadcast, actor=team[role])
    assert status(broadcast) == S.SENDING
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.PAUSED)
    with pytest.raises(ApplicationError):
        services.broadcast_resume(broadcast=broadcast, actor=team[role])
    assert status(broadcast) == S.PAUSED


def test_whoever_sent_without_approval_cannot_review_it(team: dict[str, Any]) -> None:
    broadcast = bypassed(team)
    assert broadcast.bypassed_by == team["admin"]
    with pytest.raises(ApplicationError, match="four-eyes"):
        services.broadcast_review(broadcast=broadcast, actor=team["admin"], comment="passt")
    assert Broadcast.objects.get(pk=broadcast.pk).needs_review
    assert AuditEvent.objects.filter(action="broadcast.self_review_refused", target_id=str(broadcast.pk)).exists()
    services.broadcast_review(broadcast=broadcast, actor=team["approver"], comment="passt")
    broadcast.refresh_from_db()
    assert not broadcast.needs_review and broadcast.reviewed_by == team["approver"]


def test_the_author_or_a_co_editor_of_a_bypassed_broadcast_cannot_review_it(team: dict[str, Any]) -> None:
    broadcast = services.broadcast_create(
        author=team["approver"], title="Alarm", variants=dict(TEXT), channels=[team["channel"]]
    )
    services.broadcast_update(broadcast=broadcast, actor=team["approver2"], variants={"de": "Alarm jetzt!"})
    services.broadcast_send_without_approval(broadcast=broadcast, actor=team["admin"])
    for person in ("approver", "approver2"):
        with pytest.raises(ApplicationError, match="four-eyes"):
            services.broadcast_review(broadcast=broadcast, actor=team[person])
    assert Broadcast.objects.get(pk=broadcast.pk).needs_review


@pytest.mark.parametrize(("role", "allowed"), [("approver", True), ("editor", False), ("agent", False)])
def test_every_role_against_review(team: dict[str, Any], role: str, allowed: bool) -> None:
    broadcast = bypassed(team, author="admin")
    if allowed:
        services.broadcast_review(broadcast=broadcast, actor=team[role])
        assert not Broadcast.objects.get(pk=broadcast.pk).needs_review
    else:
        with pytest.raises(ApplicationError):
            services.broadcast_review(broadcast=broadcast, actor=team[role])
        assert Broadcast.objects.get(pk=broadcast.pk).needs_review


# --------------------------------------------------------------------------------------------
# Concurrency: an approver edits and approves at the same time
# --------------------------------------------------------------------------------------------
def test_a_concurrent_edit_and_approval_by_the_same_approver_never_approve_their_own_edit(
    committed_tenant: Callable[..., Tenant],
) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
        make_subscribers(1, [channel], sandbox)
        editor, approver = make_user(roles.EDITOR, username="e"), make_user(roles.APPROVER, username="a")
        broadcast = services.broadcast_create(author=editor, title="T", channels=[channel], variants={"de": "Alt"})
        services.broadcast_submit(broadcast=broadcast, actor=editor)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def run(name: str, step: Callable[[], Any]) -> None:
        try:
            with in_tenant(tenant):
                barrier.wait()
                step()
                outcomes[name] = "ok"
        except ApplicationError as exc:
            outcomes[name] = exc.message
        finally:
            connections.close_all()

    threads = [
        threading.Thread(
            target=run,
            args=(
                "edit",
                lambda: services.broadcast_update(broadcast=broadcast, actor=approver, variants={"de": "Neu"}),
            ),
        ),
        threading.Thread(
            target=run, args=("approve", lambda: services.broadcast_approve(broadcast=broadcast, actor=approver))
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with in_tenant(tenant):
        final = Broadcast.objects.get(pk=broadcast.pk)
        edited = BroadcastEdit.objects.filter(broadcast=broadcast, editor=approver).exists()
        # either the approval came first (and the edit was refused or reopened it), or the edit
        # came first and the approval was refused: never an approval of their own words
        assert not (final.approved_by_id == approver.pk and edited), (outcomes, final.status)
        if outcomes["approve"] == "ok" and outcomes["edit"] == "ok":
            assert final.status == S.SUBMITTED and final.approved_by_id is None


# --------------------------------------------------------------------------------------------
# Who is asked, and what is listed as waiting for whom
# --------------------------------------------------------------------------------------------
def test_co_editors_are_not_asked_to_approve(
    team: dict[str, Any], django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    broadcast = services.broadcast_create(
        author=team["editor"], title="Entwurf", variants=dict(TEXT), channels=[team["channel"]]
    )
    services.broadcast_update(broadcast=broadcast, actor=team["approver"], tags=["rad"])
    with django_capture_on_commit_callbacks(execute=True):
        services.broadcast_submit(broadcast=broadcast, actor=team["editor"])
    (mail,) = mailoutbox
    assert team["approver2"].email in mail.to and team["admin"].email in mail.to
    assert team["approver"].email not in mail.to and team["editor"].email not in mail.to
