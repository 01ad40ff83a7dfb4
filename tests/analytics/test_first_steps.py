"""The "first steps" list on the tenant admin's start page: for admins only, each step done
when the data says so, gone when all are done or the admin hides it, and per tenant."""

from __future__ import annotations

from django.test import Client
from django.utils import timezone

from accounts import roles
from accounts.models import User
from analytics.selectors import first_steps
from core.tenancy import connection
from messengers.models import Connection
from subscribers.models import Source, Subscriber, Subscription
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp


def _admin(username: str = "first_admin") -> User:
    user = make_user(roles.ADMIN, username=username)
    enrol_totp(user)
    return user


def _subscribe_through_the_page(source: str = Source.WEB_FORM) -> None:
    channel = make_channel(name="Verkehr", keywords=["VERKEHR"])
    Subscription.objects.create(
        subscriber=Subscriber.objects.create(name="Erika"),
        channel=channel,
        source=source,
        subscribed_at=timezone.now(),
    )


def test_a_new_tenants_admin_sees_the_three_steps_with_their_links(client_a: Client, tenant: Tenant) -> None:
    client_a.force_login(_admin())
    html = client_a.get("/admin/").content.decode()
    assert 'id="first-steps"' in html
    assert 'href="/admin/messengers/connection/add/">Connect a messenger' in html
    assert 'href="/admin/channels/channel/add/">Create a channel' in html
    assert 'href="http://tenant-a.localhost:8000/subscribe/"' in html
    # the sandbox that onboarding adds is no real messenger, and nothing is done yet
    assert html.count('class="todo"') == 3


def test_the_start_page_is_in_german_for_german_admins(tenant: Tenant) -> None:
    client = Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(_admin())
    html = client.get("/admin/").content.decode()
    assert "Erste Schritte" in html and "Messenger verbinden" in html and "Kanal anlegen" in html


def test_each_step_is_done_when_the_data_says_so(tenant: Tenant) -> None:
    admin = _admin()
    steps = first_steps(user=admin)
    assert steps is not None
    assert (steps.messenger_connected, steps.channel_created, steps.subscribe_page_used) == (False, False, False)

    Connection.objects.create(provider="telegram", name="Bot", public_address="@stadt_a_bot", external_id="77")
    make_channel(name="Feinstaubalarm")
    Subscription.objects.create(
        subscriber=Subscriber.objects.create(name="Max"),
        channel=make_channel(name="U3", keywords=["U3"]),
        source=Source.KEYWORD,  # a keyword comes from anywhere, not necessarily the website
        subscribed_at=timezone.now(),
    )
    steps = first_steps(user=admin)
    assert steps is not None
    assert (steps.messenger_connected, steps.channel_created, steps.subscribe_page_used) == (True, True, False)

    _subscribe_through_the_page(Source.WIDGET)
    assert first_steps(user=admin) is None  # every step done: the list goes away


def test_done_steps_are_ticked_on_the_page(client_a: Client, tenant: Tenant) -> None:
    make_channel(name="Feinstaubalarm")
    client_a.force_login(_admin())
    html = client_a.get("/admin/").content.decode()
    assert 'class="ok" id="first-step-channel"' in html
    assert 'class="todo" id="first-step-messenger"' in html


def test_only_admins_see_the_list(client_a: Client, tenant: Tenant) -> None:
    for role in [roles.EDITOR, roles.APPROVER, roles.INBOX_AGENT]:
        user = make_user(role, username=f"not_admin_{role.replace(' ', '_')}")
        assert first_steps(user=user) is None
        enrol_totp(user)
        client_a.force_login(user)
        assert 'id="first-steps"' not in client_a.get("/admin/").content.decode()


def test_an_admin_can_hide_the_list_and_others_cannot_use_the_switch(client_a: Client, tenant: Tenant) -> None:
    admin = _admin()
    client_a.force_login(admin)
    assert client_a.get("/admin/first-steps/dismiss/").status_code == 405  # a change is a POST
    response = client_a.post("/admin/first-steps/dismiss/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    admin.refresh_from_db()
    assert admin.first_steps_dismissed_at is not None
    assert 'id="first-steps"' not in client_a.get("/admin/").content.decode()
    # another admin of the same tenant still sees it: hiding is per person
    assert first_steps(user=_admin("second_admin")) is not None

    editor = make_user(roles.EDITOR, username="curious_editor")
    enrol_totp(editor)
    client_a.force_login(editor)
    assert client_a.post("/admin/first-steps/dismiss/").status_code == 403
    editor.refresh_from_db()
    assert editor.first_steps_dismissed_at is None


def test_steps_are_per_tenant(client_b: Client, tenant: Tenant, tenant_b: Tenant) -> None:
    # tenant A connects a messenger, creates a channel and gets a web subscriber ...
    Connection.objects.create(provider="telegram", name="Bot", public_address="@stadt_a_bot", external_id="77")
    _subscribe_through_the_page()
    # ... which does nothing for tenant B, whose admin still sees three open steps on B's domain
    connection.set_tenant(tenant_b)
    admin_b = _admin("admin_b")
    client_b.force_login(admin_b)
    html = client_b.get("/admin/").content.decode()
    assert html.count('class="todo"') == 3
    assert 'href="http://tenant-b.localhost:8000/subscribe/"' in html
    client_b.post("/admin/first-steps/dismiss/")
    connection.set_tenant(tenant)
    assert first_steps(user=_admin("admin_a")) is None  # A's steps are all done anyway
    connection.set_tenant(tenant_b)
    admin_b.refresh_from_db()
    assert admin_b.first_steps_dismissed_at is not None
