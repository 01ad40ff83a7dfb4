"""The channels changelist costs the same number of queries for 2 channels as for 12 (the issue's
query budget for admin lists): subscriber counts and alarm states come with the rows, not per row."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.helpers import query_count, signed_in_admin
from tests.subscribers.factories import make_people

LIST = "/admin/channels/channel/"


@pytest.fixture
def admin_client(tenant: Tenant, client_a: Client) -> Client:
    return signed_in_admin(client_a)


def add_channels(first: int, last: int) -> None:
    for i in range(first, last):
        channel = make_channel(f"Kanal {i}", [f"KANAL{i}"], is_alarm=i % 2 == 0)
        make_people(2, [channel])


def test_the_channel_list_costs_the_same_number_of_queries_for_2_or_12_channels(admin_client: Client) -> None:
    add_channels(0, 2)
    small, html = query_count(admin_client, LIST)
    assert "Kanal 1" in html
    add_channels(2, 12)
    large, html = query_count(admin_client, LIST)
    assert html.count('class="action-select"') == 12
    assert large == small, f"{small} queries for 2 channels, {large} for 12"
