"""Who may act on messenger connections: every role against every connection action, through
the admin actions, the admin's own URLs and the services (so a later API cannot skip the check).

Only administrators (permission `messengers.manage_connection`) may add, change, test, pause,
resume, sync templates of or re-register the webhook of a connection. Editors and approvers see
the list read-only and without the buttons; inbox agents do not see connections at all. Every
role that has the phone simulator today (all four) keeps it: editors try their texts there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client

from accounts import roles
from accounts.models import User
from core.errors import ApplicationError
from messengers import services
from messengers.models import Connection, WhatsAppTemplate
from tenants.models import Tenant
from tests.factories import make_user
from tests.fakes.telegram import FakeTelegram
from tests.fakes.whatsapp import FakeWhatsApp
from tests.helpers import enrol_totp
from tests.messengers.support import telegram_connection, whatsapp_connection

pytestmark = pytest.mark.usefixtures("tenant")

LIST = "/admin/messengers/connection/"
ALL_ROLES = [roles.ADMIN, roles.EDITOR, roles.APPROVER, roles.INBOX_AGENT]
# Roles that see the connection list (read-only unless they may manage connections).
VIEWERS = {roles.ADMIN, roles.EDITOR, roles.APPROVER}


def login(client: Client, role: str) -> tuple[Client, User]:
    user = make_user(role, username=f"u-{role.replace(' ', '-')}")
    enrol_totp(user)  # admins and approvers must have 2FA; harmless for the others
    client.force_login(user)
    return client, user


@dataclass
class World:
    whatsapp: Connection
    telegram: Connection
    wa_fake: FakeWhatsApp
    tg_fake: FakeTelegram

    @property
    def pks(self) -> list[int]:
        return [self.whatsapp.pk, self.telegram.pk]


@pytest.fixture
def world(wa_fake: FakeWhatsApp, tg_fake: FakeTelegram) -> World:
    return World(
        whatsapp=whatsapp_connection(api_base=wa_fake.url),
        telegram=telegram_connection(api_base=tg_fake.url),
        wa_fake=wa_fake,
        tg_fake=tg_fake,
    )


def _checked(w: World) -> bool:
    return Connection.objects.filter(pk__in=w.pks, last_check_at__isnull=False).exists()


def _synced(w: World) -> bool:
    return WhatsAppTemplate.objects.filter(connection=w.whatsapp).exists()


def _registered(w: World) -> bool:
    return bool(w.tg_fake.requests(path_contains="setWebhook"))


def _paused(w: World) -> bool:
    return Connection.objects.filter(pk__in=w.pks, status=Connection.Status.PAUSED).exists()


def _resumed(w: World) -> bool:
    return Connection.objects.filter(pk__in=w.pks, status=Connection.Status.ACTIVE).exists()


def _pause_all(w: World) -> None:
    for conn in (w.whatsapp, w.telegram):
        services.connection_set_status(connection=conn, status=Connection.Status.PAUSED, detail="test")


# action name → (set-up before, did it happen?)
ACTIONS: dict[str, tuple[Callable[[World], None], Callable[[World], bool]]] = {
    "test_connection": (lambda w: None, _checked),
    "sync_templates": (lambda w: None, _synced),
    "register_webhook": (lambda w: None, _registered),
    "pause": (lambda w: None, _paused),
    "activate": (_pause_all, _resumed),
}


# --------------------------------------------------------------------------------------------
# Admin actions on the connection list
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("role", ALL_ROLES)
def test_list_actions_run_for_admins_only(client_a: Client, world: World, role: str, action: str) -> None:
    prepare, happened = ACTIONS[action]
    prepare(world)
    client, _ = login(client_a, role)
    assert not happened(world)
    response = client.post(LIST, {"action": action, "_selected_action": world.pks})
    allowed = role == roles.ADMIN
    assert happened(world) is allowed, f"{role} ran {action}"
    if not allowed:
        assert response.status_code in (200, 302, 403)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_list_offers_the_actions_to_admins_only(client_a: Client, world: World, role: str) -> None:
    client, _ = login(client_a, role)
    page = client.get(LIST)
    if role not in VIEWERS:
        assert page.status_code == 403
        return
    assert page.status_code == 200
    html = page.content.decode()
    for action in ACTIONS:
        assert (f'value="{action}"' in html) is (role == roles.ADMIN), f"{role} is offered {action}"
    assert ('href="/admin/messengers/connection/add/"' in html) is (role == roles.ADMIN)


# --------------------------------------------------------------------------------------------
# The admin's own URLs and the change form
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_check_url_is_for_admins_only(client_a: Client, world: World, role: str) -> None:
    client, _ = login(client_a, role)
    response = client.post(f"{LIST}{world.whatsapp.pk}/check/")
    world.whatsapp.refresh_from_db()
    if role == roles.ADMIN:
        assert response.status_code == 302 and world.whatsapp.last_check_at is not None
    else:
        assert response.status_code == 403 and world.whatsapp.last_check_at is None
    assert client.get(f"{LIST}{world.whatsapp.pk}/check/").status_code == 403  # never on GET


@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_change_form_shows_test_connection_to_admins_only(client_a: Client, world: World, role: str) -> None:
    client, _ = login(client_a, role)
    page = client.get(f"{LIST}{world.whatsapp.pk}/change/")
    if role not in VIEWERS:
        assert page.status_code == 403
        return
    assert page.status_code == 200
    assert ('id="test-connection"' in page.content.decode()) is (role == roles.ADMIN)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_add_change_and_delete_are_refused_to_everyone_but_admins(client_a: Client, world: World, role: str) -> None:
    client, _ = login(client_a, role)
    is_admin = role == roles.ADMIN
    assert (client.get(f"{LIST}add/?provider=sandbox").status_code == 200) is is_admin
    created = client.post(
        f"{LIST}add/?provider=sandbox",
        {"provider": "sandbox", "name": "Zweite Sandbox", "public_address": "", "rate_limit_per_second": "5",
         "price_per_message": "0", "_save": "Save"},
    )  # fmt: skip
    assert Connection.objects.filter(name="Zweite Sandbox").exists() is is_admin
    if not is_admin:
        assert created.status_code == 403
    changed = client.post(
        f"{LIST}{world.telegram.pk}/change/",
        {"name": "Umbenannt", "external_id": world.telegram.external_id, "account_id": "",
         "public_address": "", "api_base": world.telegram.api_base, "rate_limit_per_second": "30",
         "price_per_message": "0", "_save": "Save"},
    )  # fmt: skip
    world.telegram.refresh_from_db()
    assert (world.telegram.name == "Umbenannt") is is_admin
    if not is_admin:
        assert changed.status_code == 403
    # nobody deletes connections (deliveries and consent records point at them): disable instead
    assert client.post(f"{LIST}{world.telegram.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Connection.objects.filter(pk=world.telegram.pk).exists()


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_role_keeps_the_phone_simulator(client_a: Client, role: str) -> None:
    client, _ = login(client_a, role)
    sandbox = Connection.objects.get(provider="sandbox")
    start = client.get(f"{LIST}sandbox/")
    assert start.status_code == 302 and start["Location"] == f"{LIST}{sandbox.pk}/phones/"
    assert client.get(f"{LIST}{sandbox.pk}/phones/").status_code == 200
    assert client.post(f"{LIST}{sandbox.pk}/phones/", {"name": "Erika"}).status_code == 302


# --------------------------------------------------------------------------------------------
# The services refuse too (the admin is not the only way in)
# --------------------------------------------------------------------------------------------
def _svc_check(w: World, actor: User) -> None:
    services.connection_check(connection=w.whatsapp, actor=actor)


def _svc_register(w: World, actor: User) -> None:
    services.connection_register_webhook(connection=w.telegram, actor=actor)


def _svc_sync(w: World, actor: User) -> None:
    services.connection_sync_templates(connection=w.whatsapp, actor=actor)


def _svc_pause(w: World, actor: User) -> None:
    services.connection_set_status(connection=w.whatsapp, status=Connection.Status.PAUSED, actor=actor)


def _svc_update(w: World, actor: User) -> None:
    services.connection_update(connection=w.whatsapp, actor=actor, name="Umbenannt")


def _svc_create(w: World, actor: User) -> None:
    services.connection_create(provider="sandbox", name="Zweite Sandbox", actor=actor)


SERVICE_CALLS: dict[str, tuple[Callable[[World, User], None], Callable[[World], bool]]] = {
    "check": (_svc_check, _checked),
    "register_webhook": (_svc_register, _registered),
    "sync_templates": (_svc_sync, _synced),
    "set_status": (_svc_pause, _paused),
    "update": (_svc_update, lambda w: Connection.objects.filter(name="Umbenannt").exists()),
    "create": (_svc_create, lambda w: Connection.objects.filter(name="Zweite Sandbox").exists()),
}


@pytest.mark.parametrize("call", list(SERVICE_CALLS))
@pytest.mark.parametrize("role", ALL_ROLES)
def test_services_refuse_users_without_the_permission(tenant: Tenant, world: World, role: str, call: str) -> None:
    run, happened = SERVICE_CALLS[call]
    actor = make_user(role, username=f"svc-{role.replace(' ', '-')}")
    if role == roles.ADMIN:
        run(world, actor)
        assert happened(world)
        return
    with pytest.raises(ApplicationError, match="administrator"):
        run(world, actor)
    assert not happened(world)


def test_a_deactivated_admin_may_not_act(tenant: Tenant, world: World) -> None:
    actor = make_user(roles.ADMIN, username="gone")
    User.objects.filter(pk=actor.pk).update(is_active=False)
    actor.refresh_from_db()
    with pytest.raises(ApplicationError):
        _svc_pause(world, actor)
    assert not _paused(world)


def test_the_platform_itself_still_pauses_a_failing_connection(tenant: Tenant, world: World) -> None:
    """No actor: the send pipeline pauses a connection whose credentials stopped working."""
    services.connection_set_status(connection=world.whatsapp, status=Connection.Status.PAUSED, detail="auto")
    assert _paused(world)


def test_only_the_admin_role_gets_the_permission(tenant: Tenant) -> None:
    from django.contrib.auth.models import Group

    from accounts.services import roles_sync

    roles_sync()
    holders = set(
        Group.objects.filter(
            permissions__codename="manage_connection", permissions__content_type__app_label="messengers"
        ).values_list("name", flat=True)
    )
    assert holders == {roles.ADMIN}
