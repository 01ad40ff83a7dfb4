"""Issue 11's browser test, against a live server: an agent has the inbox open; a citizen writes
on a sandbox phone and the question appears without reloading; the agent opens it, assigns it to
themself with the keyboard, answers with a canned reply, and the phone receives the answer. Two
more people ask the same and get one answer from the groups page. A complaint is forwarded to a
department, which answers through its link without ever seeing the number or name; the agent
sends that answer and the citizen receives it. axe-core checks every page visited."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import expect

from accounts import roles
from inbox.models import CannedReply, Conversation, Department
from messengers.models import SandboxMessage
from messengers.selectors import connection_sandbox
from messengers.services import sandbox_person_create, sandbox_receive
from tenants.models import Domain, Tenant
from tests.browser.a11y import assert_accessible
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.browser

ANSWER = "Hallo Erika, der Feinstaubalarm gilt bis Freitag."


def test_a_question_appears_live_and_the_answer_reaches_the_phone(
    page: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    server = live_server_multitenant
    tenant = committed_tenant("Stadt Inbox")
    domain = Domain.objects.get(tenant=tenant, is_primary=True).domain
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        make_user(roles.INBOX_AGENT, username="buergerbuero")
        CannedReply.objects.create(title="Alarm gilt", body="Hallo {{ name }}, der Feinstaubalarm gilt bis Freitag.")
        erika = sandbox_person_create(connection=sandbox, name="Erika")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None)

    page.goto(server.url(domain, "/admin/inbox/"))
    page.fill("input[name=login]", "buergerbuero")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".inbox-empty").first).to_be_visible()
    nav_badge = page.locator('.task-nav-badge[data-badge="inbox"]')
    expect(nav_badge).to_be_hidden()  # nothing unanswered yet: the badge waits, hidden
    assert_accessible(page, "inbox, empty")

    with in_tenant(tenant):  # the citizen writes while the agent looks at the list
        sandbox_receive(connection=sandbox, address=erika.address, text="Gilt der Feinstaubalarm morgen noch?")
    row = page.locator(".conversation-row", has_text="Gilt der Feinstaubalarm morgen noch?")
    expect(row).to_be_visible(timeout=20_000)  # no reload: the poll brought it
    expect(row.locator(".badge")).to_contain_text("1")
    expect(nav_badge).to_be_visible()  # the navigation's count follows the same poll
    expect(nav_badge).to_contain_text("1")

    row.locator("a").click()
    expect(page.locator("#thread .entry-inbound")).to_contain_text("Gilt der Feinstaubalarm morgen noch?")
    assert_accessible(page, "inbox, conversation")
    page.keyboard.press("a")  # assign to me
    expect(page.locator(".thread-state")).to_contain_text("buergerbuero")
    page.select_option("#canned", label="Alarm gilt")
    expect(page.locator("#reply-text")).to_have_value(ANSWER)
    page.click("#reply-form button[type=submit]")
    expect(page.locator("#thread .entry-reply")).to_contain_text(ANSWER)
    assert_accessible(page, "inbox, answered")
    with in_tenant(tenant):
        assert SandboxMessage.objects.filter(address=erika.address, direction="out", text=ANSWER).exists()
        assert Conversation.objects.get(contact=erika).status == "waiting"
    # two more people ask the same: answered together from the groups page
    with in_tenant(tenant):
        for name in ("Jonas", "Aylin"):
            person = sandbox_person_create(connection=sandbox, name=name)
            sandbox_receive(connection=sandbox, address=person.address, text="Gilt der Feinstaubalarm morgen noch?")
    page.goto(server.url(domain, "/admin/inbox/groups/"))
    expect(page.locator(".inbox-group h2")).to_contain_text("2")
    assert_accessible(page, "inbox, answer many at once")
    page.fill(".inbox-group textarea", "Ja, bis Freitag.")
    page.click(".inbox-group button[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("2")
    with in_tenant(tenant):
        assert SandboxMessage.objects.filter(direction="out", text="Ja, bis Freitag.").count() == 2

    # a complaint goes to a department, which answers through its link; the agent sends it on
    with in_tenant(tenant):
        Department.objects.create(name="Amt für Umweltschutz", email="umwelt@stadt.example")
        aylin = sandbox_person_create(connection=sandbox, name="Aylin Kaya")
        sandbox_receive(connection=sandbox, address=aylin.address, text="Die Baustelle qualmt seit Tagen.")
        complaint = Conversation.objects.get(contact=aylin)
    page.goto(server.url(domain, f"/admin/inbox/{complaint.pk}/"))
    page.select_option("#forward-department", label="Amt für Umweltschutz")
    page.click("#forward-form button[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("A-")
    assert_accessible(page, "inbox, forwarded")
    sent = mail.outbox[-1]
    assert "Die Baustelle qualmt seit Tagen." in sent.body
    assert aylin.address not in sent.body and aylin.address[1:] not in sent.body and "Aylin" not in sent.body
    link = re.search(r"https?://\S+/inbox/answer/\S+/", str(sent.body))
    assert link is not None, sent.body
    department = page.context.browser.new_context(locale="de-DE").new_page()
    department.goto(server.url(domain, urlsplit(link.group(0)).path))
    assert aylin.address not in department.content() and "Aylin" not in department.content()
    assert_accessible(department, "department answer page", known=())
    department.fill("#answer", "Wir prüfen die Baustelle morgen.")
    department.click("#answer-form button[type=submit]")
    expect(department.locator("h1")).to_contain_text("Vielen Dank")
    department.context.close()
    page.reload()
    page.click(".use-answer")
    expect(page.locator("#reply-text")).to_have_value("Wir prüfen die Baustelle morgen.")
    page.click("#reply-form button[type=submit]")
    expect(page.locator("#thread .entry-reply").last).to_contain_text("Wir prüfen die Baustelle morgen.")
    with in_tenant(tenant):
        assert SandboxMessage.objects.filter(
            address=aylin.address, direction="out", text="Wir prüfen die Baustelle morgen."
        ).exists()
    page.goto("about:blank")  # stop polling before the tenant is dropped
    assert not [p for p in problems if "favicon.ico" not in p], problems  # no CSP errors, no script errors
