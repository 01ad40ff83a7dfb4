"""The workflow's e-mails: queued as tasks, each rendered in its recipient's language."""

from __future__ import annotations

from typing import Any

from accounts import roles
from broadcasts import services
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.factories import make_user


def test_approvers_are_asked_in_their_language_and_the_author_told_in_theirs(
    tenant: Tenant, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
    editor = make_user(roles.EDITOR, username="autorin")
    editor.language = "en"
    editor.save(update_fields=["language"])
    german = make_user(roles.APPROVER, username="pruefer")
    english = make_user(roles.APPROVER, username="reviewer")
    english.language = "en"
    english.save(update_fields=["language"])
    broadcast = services.broadcast_create(author=editor, title="Baustelle", variants={"de": "Text"}, channels=[channel])
    with django_capture_on_commit_callbacks(execute=True):
        services.broadcast_submit(broadcast=broadcast, actor=editor)
    subjects = {mail.subject: mail.to for mail in mailoutbox}
    assert german.email in subjects["Freigabe erbeten: Baustelle"]
    assert subjects["Approval requested: Baustelle"] == [english.email]
    assert editor.email not in [address for to in subjects.values() for address in to]
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.broadcast_reject(broadcast=broadcast, actor=german, comment="Bitte mit Umleitung.")
    (mail,) = mailoutbox
    assert mail.subject == "Rejected: Baustelle" and mail.to == [editor.email]
    assert "Bitte mit Umleitung." in mail.body and "was not approved" in mail.body
