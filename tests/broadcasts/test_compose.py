"""Compose in two panes (issue 10, item 4): the WhatsApp template picker (only this tenant's
approved templates, parameters in fields, checked by broadcast_template_check), "send a test to
me" (to the user's own simulated phone only; every role, every state, the rate limit and the
audit event), the send plan beside the form, "what went out" on a sent broadcast, and a change
form whose query count does not grow with the templates."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from accounts.models import AuditEvent
from broadcasts import pipeline, services
from broadcasts.models import Broadcast, Delivery
from broadcasts.services.testsend import sandbox_test_address
from core.errors import ApplicationError
from messengers.models import Connection, OutboundMessage, SandboxMessage, WhatsAppTemplate
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.broadcasts.four_eyes_support import TEXT, S, submitted
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.helpers import query_count

ADD = "/admin/broadcasts/broadcast/add/"
BODY = "Neu im Amtsblatt: {{1}}. Mehr unter {{2}}"


def change_url(broadcast: Broadcast) -> str:
    return f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"


def send_test_url(broadcast: Broadcast) -> str:
    return f"/admin/broadcasts/broadcast/{broadcast.pk}/test/"


def whatsapp(name: str = "WhatsApp Stadt") -> Connection:
    return Connection.objects.create(provider="whatsapp", name=name, whatsapp_tier=1000)


def template(connection: Connection, name: str, *, status: str = "APPROVED", body: str = BODY, count: int = 2) -> None:
    WhatsAppTemplate.objects.create(
        connection=connection, name=name, language="de", status=status, body=body, parameter_count=count
    )


@pytest.fixture
def templates(team: dict[str, Any], tenant_b: Tenant, tenant: Tenant) -> Connection:
    """Tenant A: one approved template with two parameters, a pending and a rejected one;
    tenant B: an approved template of its own."""
    connection = whatsapp()
    template(connection, "amtsblatt_neu")
    template(connection, "noch_in_pruefung", status="PENDING")
    template(connection, "abgelehnt", status="REJECTED")
    with in_tenant(tenant_b):
        template(whatsapp("WhatsApp B"), "nur_in_b")
    return connection


def form(team: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {
        "title": "Amtsblatt",
        "priority": "normal",
        "channels": [team["other"].pk],
        "body_de": "Das neue Amtsblatt ist da.",
        **values,
    }


def json_of(html: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def page(client: Client, user: Any, url: str, language: str = "en") -> str:
    client.force_login(user)
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


# --------------------------------------------------------------------------------------------
# The template picker
# --------------------------------------------------------------------------------------------
def test_the_picker_offers_only_this_tenants_approved_templates(
    team: dict[str, Any], templates: Connection, client_a: Client
) -> None:
    html = page(client_a, team["editor"], ADD)
    options = re.findall(r'<option value="([^"]*)"', html.split('name="wa_template"')[1].split("</select>")[0])
    assert options == ["", "amtsblatt_neu|de"]  # not the pending, the rejected or tenant B's
    assert "nur_in_b" not in html and "noch_in_pruefung" not in html
    data = json_of(html, "bc-templates")
    assert data == {"amtsblatt_neu|de": {"name": "amtsblatt_neu", "language": "de", "body": BODY, "parameters": 2}}
    assert 'name="wa_param_1"' in html and 'name="wa_param_2"' in html and 'name="wa_param_3"' not in html
    assert 'name="wa_template_name"' not in html  # no more typing the name


def test_a_chosen_template_is_stored_with_its_parameters(
    team: dict[str, Any], templates: Connection, client_a: Client
) -> None:
    client_a.force_login(team["editor"])
    values = {"wa_template": "amtsblatt_neu|de", "wa_param_1": "Parkregeln", "wa_param_2": "stuttgart.de/amtsblatt"}
    response = client_a.post(ADD, form(team, **values))
    assert response.status_code == 302, response.content.decode()[:2000]
    broadcast = Broadcast.objects.get(title="Amtsblatt")
    assert (broadcast.wa_template_name, broadcast.wa_template_language) == ("amtsblatt_neu", "de")
    assert broadcast.wa_template_params == ["Parkregeln", "stuttgart.de/amtsblatt"]
    html = page(client_a, team["editor"], change_url(broadcast))
    assert '<option value="amtsblatt_neu|de" selected>' in html
    assert 'value="Parkregeln"' in html
    content = json_of(html, "bc-content")
    assert content["wa_template_text"] == "Neu im Amtsblatt: Parkregeln. Mehr unter stuttgart.de/amtsblatt"


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("en", "The template “amtsblatt_neu” needs 2 parameters; 1 filled in."),
        ("de", "Die Vorlage „amtsblatt_neu“ braucht 2 Parameter; ausgefüllt: 1."),
    ],
)
def test_a_wrong_number_of_parameters_is_refused(
    team: dict[str, Any], templates: Connection, client_a: Client, language: str, message: str
) -> None:
    client_a.force_login(team["editor"])
    response = client_a.post(
        ADD, form(team, wa_template="amtsblatt_neu|de", wa_param_1="Parkregeln"), HTTP_ACCEPT_LANGUAGE=language
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Broadcast.objects.filter(title="Amtsblatt").exists()


@pytest.mark.parametrize("value", ["nur_in_b|de", "noch_in_pruefung|de", "erfunden|de"])
def test_templates_that_are_not_offered_cannot_be_posted(
    team: dict[str, Any], templates: Connection, client_a: Client, value: str
) -> None:
    client_a.force_login(team["editor"])
    response = client_a.post(ADD, form(team, wa_template=value, wa_param_1="a", wa_param_2="b"))
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Broadcast.objects.filter(title="Amtsblatt").exists()


def test_the_template_check_says_what_is_wrong(team: dict[str, Any], templates: Connection) -> None:
    check = services.broadcast_template_check
    assert check(name="", language="", params=[]) is None
    found = check(name="amtsblatt_neu", language="de", params=["a", "b"])
    assert found is not None and found.name == "amtsblatt_neu"
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"name": "nur_in_b", "language": "de", "params": []}, "None of your WhatsApp connections has"),
        ({"name": "noch_in_pruefung", "language": "de", "params": ["a", "b"]}, "is not approved (PENDING)"),
        ({"name": "amtsblatt_neu", "language": "de", "params": ["a", "b", "c"]}, "needs 2 parameters; 3 filled in"),
        ({"name": "amtsblatt_neu", "language": "de", "params": ["a", " "]}, "Fill in parameter 2"),
        ({"name": "", "language": "", "params": ["a"]}, "Choose the WhatsApp template"),
    ]
    for kwargs, text in refusals:
        with pytest.raises(ApplicationError, match=re.escape(text)):
            check(**kwargs)


def test_a_saved_template_that_was_withdrawn_is_shown_and_refused(
    team: dict[str, Any], templates: Connection, client_a: Client
) -> None:
    broadcast = services.broadcast_create(
        author=team["editor"],
        title="Alt",
        variants={"de": "Text"},
        channels=[team["other"]],
        wa_template_name="abgelehnt",
        wa_template_language="de",
        wa_template_params=["a", "b"],
    )
    html = page(client_a, team["editor"], change_url(broadcast))
    assert "abgelehnt (de) – not approved" in html
    response = client_a.post(
        change_url(broadcast),
        form(team, title="Alt", wa_template="abgelehnt|de", wa_param_1="a", wa_param_2="b"),
    )
    assert response.status_code == 200 and "is not approved (REJECTED)" in response.content.decode()


# --------------------------------------------------------------------------------------------
# "Send a test to me"
# --------------------------------------------------------------------------------------------
def draft(team: dict[str, Any], author: str = "editor", **kwargs: Any) -> Broadcast:
    return services.broadcast_create(
        author=team[author],
        title="Feinstaubalarm ab morgen",
        variants=dict(TEXT),
        channels=[team["channel"]],
        buttons=[{"title": "Infos", "url": "https://www.stuttgart.de/feinstaub"}],
        **kwargs,
    )


def press(client: Client, user: Any, broadcast: Broadcast, capture: Any, language: str = "de") -> str:
    client.force_login(user)
    with capture(execute=True):
        response = client.post(send_test_url(broadcast), {"language": language}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("role", ["editor", "approver", "admin"])
def test_the_test_goes_to_the_users_own_phone_and_never_to_subscribers(
    team: dict[str, Any], client_a: Client, django_capture_on_commit_callbacks: Any, role: str
) -> None:
    broadcast = draft(team)
    user = team[role]
    html = press(client_a, user, broadcast, django_capture_on_commit_callbacks)
    address = sandbox_test_address(user)
    assert f"Test sent to your test phone {address}." in html
    (bubble,) = SandboxMessage.objects.filter(direction=SandboxMessage.Direction.TO_PHONE)
    assert bubble.address == address and bubble.text == TEXT["de"]
    assert bubble.buttons[0]["title"] == "Infos"
    assert not Delivery.objects.filter(broadcast=broadcast).exists()  # no subscriber gets anything
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.DRAFT
    event = AuditEvent.objects.get(action="broadcast.test_sent")
    assert event.actor == user and event.target_id == str(broadcast.pk)
    assert event.details["address"] == address and event.details["language"] == "de"
    # the simulator shows it on the user's own phone
    outbound = OutboundMessage.objects.get(purpose="broadcast_test")
    phone = page(client_a, user, f"/admin/messengers/connection/{outbound.connection_id}/phones/{outbound.contact_id}/")
    assert TEXT["de"] in phone


def test_the_test_sends_the_language_shown_and_the_filled_template(
    team: dict[str, Any], templates: Connection, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    broadcast = draft(
        team, wa_template_name="amtsblatt_neu", wa_template_language="de", wa_template_params=["Parken", "x.de"]
    )
    press(client_a, team["editor"], broadcast, django_capture_on_commit_callbacks, language="en")
    texts = list(SandboxMessage.objects.order_by("pk").values_list("text", flat=True))
    assert texts == [TEXT["en"], "Neu im Amtsblatt: Parken. Mehr unter x.de"]


def test_the_inbox_agent_may_not_send_a_test(
    team: dict[str, Any], client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    broadcast = draft(team)
    html = press(client_a, team["agent"], broadcast, django_capture_on_commit_callbacks)
    assert "Your role cannot send tests of broadcasts." in html
    assert not OutboundMessage.objects.exists() and not AuditEvent.objects.filter(action="broadcast.test_sent")
    assert 'id="bc-test-send"' not in page(client_a, team["agent"], change_url(broadcast))


def test_the_button_is_shown_to_those_who_may_press_it(team: dict[str, Any], client_a: Client) -> None:
    broadcast = draft(team)
    for role in ("editor", "approver", "admin"):
        assert 'id="bc-test-send"' in page(client_a, team[role], change_url(broadcast))
    services.broadcast_submit(broadcast=broadcast, actor=team["editor"])
    assert 'id="bc-test-send"' not in page(client_a, team["editor"], change_url(broadcast))


def test_a_test_needs_a_post(team: dict[str, Any], client_a: Client) -> None:
    client_a.force_login(team["editor"])
    assert client_a.get(send_test_url(draft(team))).status_code == 403
    assert not OutboundMessage.objects.exists()


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        (S.DRAFT, True),
        (S.REJECTED, True),
        (S.SUBMITTED, False),
        (S.APPROVED, False),
        (S.SCHEDULED, False),
        (S.SENDING, False),
        (S.PAUSED, False),
        (S.SENT, False),
        (S.CANCELLED, False),
    ],
)
def test_tests_are_for_drafts_and_rejected_broadcasts_only(
    team: dict[str, Any], client_a: Client, django_capture_on_commit_callbacks: Any, state: str, allowed: bool
) -> None:
    broadcast = draft(team)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=state)
    html = press(client_a, team["editor"], broadcast, django_capture_on_commit_callbacks)
    assert OutboundMessage.objects.exists() is allowed
    if not allowed:
        assert "Tests can be sent from drafts and rejected broadcasts only." in html


def test_one_test_per_user_every_20_seconds(
    team: dict[str, Any], client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    broadcast = draft(team)
    press(client_a, team["editor"], broadcast, django_capture_on_commit_callbacks)
    html = press(client_a, team["editor"], broadcast, django_capture_on_commit_callbacks, language="en")
    assert "You sent a test a moment ago; wait" in html
    assert OutboundMessage.objects.count() == 1
    # another user is not held up by it
    press(client_a, team["approver"], broadcast, django_capture_on_commit_callbacks)
    assert OutboundMessage.objects.count() == 2
    # 20 seconds later the editor may again
    event = AuditEvent.objects.filter(action="broadcast.test_sent", actor=team["editor"])
    event.update(at=event.get().at - timedelta(seconds=21))
    press(client_a, team["editor"], broadcast, django_capture_on_commit_callbacks)
    assert OutboundMessage.objects.count() == 3
    assert SandboxMessage.objects.filter(address=sandbox_test_address(team["editor"])).count() == 2


def test_without_a_sandbox_the_test_says_so(
    team: dict[str, Any], client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    broadcast = draft(team)
    Connection.objects.filter(provider="sandbox").update(status=Connection.Status.PAUSED)
    html = press(client_a, team["editor"], broadcast, django_capture_on_commit_callbacks)
    assert "There is no active sandbox connection" in html
    assert not OutboundMessage.objects.exists()


def test_tenant_b_cannot_test_tenant_as_broadcast(
    team: dict[str, Any], tenant_b: Tenant, client_b: Client, django_capture_on_commit_callbacks: Any
) -> None:
    broadcast = draft(team)
    with in_tenant(tenant_b):
        from accounts import roles
        from tests.factories import make_user

        editor_b = make_user(roles.EDITOR, username="redaktion_b")
        client_b.force_login(editor_b)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_b.post(send_test_url(broadcast), {"language": "de"})
        assert response.status_code == 404
        assert not OutboundMessage.objects.exists()
    assert not OutboundMessage.objects.exists()


# --------------------------------------------------------------------------------------------
# The send plan beside the form, "what went out"
# --------------------------------------------------------------------------------------------
def test_the_plan_is_in_the_right_pane_before_submitting(team: dict[str, Any], client_a: Client) -> None:
    broadcast = draft(team)
    html = page(client_a, team["editor"], change_url(broadcast))
    side = html.split('id="bc-side"')[1]
    assert 'id="bc-plan"' in side and 'id="bc-preview"' in side and 'role="tablist"' in side
    assert 'id="bc-plan-total">2<' in side  # two subscribers of the channel
    assert 'id="bc-plan-later"' in page(client_a, team["editor"], ADD)


def test_plan_warnings_are_in_german(team: dict[str, Any], client_a: Client) -> None:
    empty = make_channel("Leer", ["LEER"])
    broadcast = services.broadcast_create(author=team["editor"], title="Leer", variants=dict(TEXT), channels=[empty])
    html = page(client_a, team["editor"], change_url(broadcast), language="de")
    assert "Diese Auswahl trifft noch auf niemanden zu." in html
    wa = whatsapp()
    channel = make_channel("WA", ["WA"], connections=[wa])
    make_subscribers(3, [channel], wa, prefix="+4917000")
    broadcast = services.broadcast_create(author=team["editor"], title="WA", variants=dict(TEXT), channels=[channel])
    html = page(client_a, team["editor"], change_url(broadcast), language="de")
    assert "3 Empfänger haben in den letzten 24 Stunden nicht geschrieben" in html


def test_the_preview_tabs_are_the_targeted_messengers_and_the_texts_languages(
    team: dict[str, Any], client_a: Client
) -> None:
    wa = whatsapp()
    channel = make_channel("WA", ["WA"], connections=[wa])
    broadcast = services.broadcast_create(author=team["editor"], title="WA", variants=dict(TEXT), channels=[channel])
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENT)
    html = page(client_a, team["editor"], change_url(broadcast), language="de")
    assert re.findall(r'role="tab" id="bc-tab-(\w+)"', html) == ["whatsapp"]
    assert re.findall(r'role="tab" id="bc-tab-lang-([\w-]+)"', html) == ["de", "en"]
    assert 'role="tabpanel"' in html and 'aria-selected="true"' in html
    texts = json_of(html, "bc-texts")
    assert texts["noTemplate"].startswith("Ohne Vorlage") and "/" not in texts["noTemplate"]


def test_what_went_out_per_messenger_and_language(
    team: dict[str, Any], templates: Connection, client_a: Client
) -> None:
    channel = make_channel("Amtsblatt", ["AMTSBLATT"], connections=[templates])
    make_subscribers(3, [channel], templates, prefix="+4917100")  # no message from them: template
    make_subscribers(2, [channel], templates, prefix="+4917200", language="en", last_inbound=True)
    broadcast = services.broadcast_create(
        author=team["editor"],
        title="Amtsblatt intern",
        variants=dict(TEXT),
        channels=[channel],
        buttons=[{"title": "Infos", "url": "https://www.stuttgart.de/feinstaub"}],
        wa_template_name="amtsblatt_neu",
        wa_template_language="de",
        wa_template_params=["Feinstaub", "stuttgart.de"],
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENDING)
    pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
    Delivery.objects.filter(broadcast=broadcast).update(status=Delivery.Status.DELIVERED)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENT)
    html = page(client_a, team["editor"], change_url(broadcast))
    section = html.split('id="bc-went-out"')[1].split("</section>")[0]
    assert "What went out" in html
    assert "WhatsApp · German · 3 recipients" in section or "WhatsApp · Deutsch · 3 recipients" in section
    assert "amtsblatt_neu (de)" in section and "<li>Feinstaub</li><li>stuttgart.de</li>" in section
    assert "Neu im Amtsblatt: Feinstaub. Mehr unter stuttgart.de" in section
    assert "2 recipients" in section and TEXT["en"] in section
    assert "Infos: https://www.stuttgart.de/feinstaub" in section


def test_a_sent_broadcast_without_deliveries_says_nothing_went_out(team: dict[str, Any], client_a: Client) -> None:
    broadcast = draft(team)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.CANCELLED)
    html = page(client_a, team["editor"], change_url(broadcast))
    assert "Nothing has gone out yet." in html


# --------------------------------------------------------------------------------------------
# Query count
# --------------------------------------------------------------------------------------------
def test_the_change_form_costs_the_same_with_more_templates(team: dict[str, Any], client_a: Client) -> None:
    broadcast = submitted(team)
    client_a.force_login(team["editor"])
    connection = whatsapp()
    template(connection, "eins")
    few, html = query_count(client_a, change_url(broadcast))
    assert "eins|de" in html
    for i in range(8):
        template(connection, f"vorlage_{i}", count=i)
    template(whatsapp("WhatsApp 2"), "eins")  # the same template on a second number: one choice
    many, html = query_count(client_a, change_url(broadcast))
    assert "vorlage_7|de" in html and html.count('value="eins|de"') == 1
    assert many == few
    add_few, _html = query_count(client_a, ADD)
    template(connection, "noch_eine")
    add_many, _html = query_count(client_a, ADD)
    assert add_many == add_few
