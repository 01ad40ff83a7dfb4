"""Public alarm status: JSON and widget, their headers (CORS, framing, CSP), and isolation."""

from __future__ import annotations

from django.test import Client

from channels.services import channel_set_alarm_state
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant


def test_status_json_shows_the_public_state(tenant: Tenant, client_a: Client) -> None:
    channel = make_channel(is_alarm=True)
    channel_set_alarm_state(channel=channel, state="active", note="internal remark")
    response = client_a.get("/status/feinstaubalarm.json")
    assert response.status_code == 200
    data = response.json()
    assert data["channel"] == "feinstaubalarm" and data["state"] == "active" and data["colour"] == "red"
    assert data["label"] == {"de": "Alarm aktiv", "en": "Alarm active"}
    assert data["since"]
    assert "internal remark" not in response.content.decode()
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "max-age=30" in response["Cache-Control"]


def test_state_colours(tenant: Tenant, client_a: Client) -> None:
    channel = make_channel(is_alarm=True)
    colours = {}
    for state in ("inactive", "announced", "active", "all_clear"):
        channel_set_alarm_state(channel=channel, state=state)
        colours[state] = client_a.get("/status/feinstaubalarm.json").json()["colour"]
    assert colours == {"inactive": "green", "announced": "amber", "active": "red", "all_clear": "green"}


def test_internal_unknown_and_non_alarm_channels_have_no_status(tenant: Tenant, client_a: Client) -> None:
    make_channel("Intern", ["INTERN"], is_alarm=True, is_public=False)
    make_channel("Verkehr", ["VERKEHR"])
    for slug in ("intern", "verkehr", "nothing"):
        assert client_a.get(f"/status/{slug}.json").status_code == 404
        assert client_a.get(f"/status/{slug}/widget/").status_code == 404


def test_widget_can_be_framed_by_other_sites_but_other_pages_cannot(tenant: Tenant, client_a: Client) -> None:
    make_channel(is_alarm=True)
    widget = client_a.get("/status/feinstaubalarm/widget/")
    assert widget.status_code == 200
    assert "X-Frame-Options" not in widget
    policy = widget["Content-Security-Policy"]
    assert "frame-ancestors *" in policy
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert script_src.strip().startswith("script-src 'self'") and "unsafe" not in script_src  # as strict as elsewhere
    html = widget.content.decode()
    assert 'role="status"' in html and "Kein Alarm" in html and "/static/channels/widget.js" in html
    page = client_a.get("/subscribe/")
    assert page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'self'" in page["Content-Security-Policy"]


def test_widget_language(tenant: Tenant, client_a: Client) -> None:
    make_channel(is_alarm=True)
    assert "No alarm" in client_a.get("/status/feinstaubalarm/widget/?lang=en").content.decode()
    assert 'lang="de"' in client_a.get("/status/feinstaubalarm/widget/").content.decode()


def test_a_tenants_status_is_never_shown_on_another_tenants_domain(
    tenant: Tenant, tenant_b: Tenant, client_a: Client, client_b: Client
) -> None:
    channel = make_channel(is_alarm=True)
    channel_set_alarm_state(channel=channel, state="active")
    make_channel("Nur A", ["NURA"], is_alarm=True)
    with in_tenant(tenant_b):
        make_channel(is_alarm=True)  # same slug in B, still inactive
    assert client_a.get("/status/feinstaubalarm.json").json()["state"] == "active"
    assert client_b.get("/status/feinstaubalarm.json").json()["state"] == "inactive"
    assert client_b.get("/status/nur-a.json").status_code == 404
    assert client_b.get("/status/nur-a/widget/").status_code == 404
    assert "Kein Alarm" in client_b.get("/status/feinstaubalarm/widget/").content.decode()
