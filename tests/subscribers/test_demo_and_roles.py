"""The demo seed (idempotent, fast, realistic spread) and the role permissions."""

from __future__ import annotations

import io
from collections import Counter
from types import SimpleNamespace

from django.contrib.auth.models import Group

from accounts import roles
from accounts.services import roles_sync
from channels import demo as channel_demo
from channels.models import Channel
from messengers.models import Contact
from subscribers import demo as subscriber_demo
from subscribers.models import ConsentEvent, District, Poster, Subscriber, Subscription
from tenants.models import Tenant
from tests.subscribers.factories import sandbox


def seed(schema: str, kind: str = "city") -> str:
    out = io.StringIO()
    fake = SimpleNamespace(schema_name=schema, kind=kind)
    channel_demo.seed(tenant=fake, stdout=out)
    subscriber_demo.seed(tenant=fake, stdout=out)
    return out.getvalue()


def test_the_stuttgart_demo(tenant: Tenant) -> None:
    output = seed("stuttgart")
    dust = Channel.objects.get(slug="feinstaubalarm")
    assert dust.is_alarm and dust.requires_approval and dust.keywords == ["FEINSTAUB", "FEINSTAUBALARM"]
    assert dust.welcome_text_de and dust.welcome_text_en and dust.alarm_text_start and dust.alarm_text_end
    assert set(Channel.objects.values_list("slug", flat=True)) == {"feinstaubalarm", "verkehr"}
    assert all(sandbox() in c.connections.all() for c in Channel.objects.all())
    assert list(District.objects.values_list("name", flat=True)) == ["Mitte", "Nord", "Ost", "Süd", "West",
                                                                    "Bad Cannstatt"]  # fmt: skip
    people = Subscriber.objects.filter(external_ref__startswith="demo-")
    assert people.count() == 300 and "300 demo subscriber(s) created" in output
    assert Contact.objects.filter(connection=sandbox(), subscriber__in=people).count() == 300
    languages = Counter(people.values_list("language", flat=True))
    assert set(languages) == {"de", "en", "de-ls"} and languages["de"] > languages["en"]
    assert people.filter(district__isnull=False).count() > 150
    assert Subscription.objects.filter(channel=dust, status="active").count() > 50
    # every subscription has its consent in the ledger
    assert ConsentEvent.objects.filter(kind="opt_in").count() == Subscription.objects.count()
    assert {"keyword", "import"} <= set(ConsentEvent.objects.values_list("source", flat=True))
    assert Poster.objects.count() == 1

    before = (Subscriber.objects.count(), Contact.objects.count(), ConsentEvent.objects.count(),
              Channel.objects.count(), District.objects.count(), Poster.objects.count())  # fmt: skip
    assert "0 demo subscriber(s) created" in seed("stuttgart")
    assert before == (Subscriber.objects.count(), Contact.objects.count(), ConsentEvent.objects.count(),
                      Channel.objects.count(), District.objects.count(), Poster.objects.count())  # fmt: skip


def test_the_hochbahn_and_party_demos(tenant: Tenant) -> None:
    seed("hochbahn")
    assert list(Channel.objects.order_by("position").values_list("keywords", flat=True)) == [
        ["U1"], ["U2"], ["U3"], ["U4"]
    ]  # fmt: skip
    assert Subscriber.objects.count() == 250
    # the same schema plays the party next
    Contact.objects.all().delete()
    Subscriber.objects.all().delete()
    Channel.objects.all().delete()
    seed("spd", kind="party")
    assert Channel.objects.get().slug == "koalitionsverhandlungen"
    party_events = ConsentEvent.objects.filter(kind="opt_in", channel__slug="koalitionsverhandlungen")
    assert party_events.exists() and set(party_events.values_list("explicit", flat=True)) == {True}


def test_other_tenants_get_no_demo_data(tenant: Tenant) -> None:
    seed("bochum")
    assert not Channel.objects.exists() and not Subscriber.objects.exists()


def test_roles_get_sensible_permissions(tenant: Tenant) -> None:
    roles_sync()

    def perms(role: str) -> set[str]:
        group = Group.objects.get(name=role)
        return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}

    admin, editor, approver, agent = (perms(r) for r in (roles.ADMIN, roles.EDITOR, roles.APPROVER, roles.INBOX_AGENT))
    assert {"subscribers.gdpr_subscriber", "subscribers.export_subscribers", "channels.change_alarm_state",
            "channels.add_channel", "subscribers.import_subscribers"} <= admin  # fmt: skip
    assert {"subscribers.change_subscriber", "subscribers.import_subscribers", "channels.change_channel",
            "channels.change_alarm_state"} <= editor  # fmt: skip
    assert not {"subscribers.gdpr_subscriber", "subscribers.export_subscribers"} & editor
    assert "subscribers.view_subscriber" in approver and not any(p.startswith("subscribers.change") for p in approver)
    assert "channels.change_alarm_state" not in approver
    assert "subscribers.view_subscriber" in agent and "subscribers.view_consentevent" not in agent


def test_the_operator_roll_up_counts_subscribers(tenant: Tenant) -> None:
    from analytics.services import tenant_rollup_compute
    from tests.channels.factories import make_channel
    from tests.subscribers.factories import make_people

    dust, traffic = make_channel(), make_channel("Verkehr", ["VERKEHR"])
    make_people(3, [dust, traffic])
    make_people(2, [traffic])
    figures = tenant_rollup_compute()
    assert (figures["subscribers_active"], figures["subscriptions_active"], figures["channels_public"]) == (5, 8, 2)
