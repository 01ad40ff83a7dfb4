"""The messenger connections changelist costs the same number of queries for 2 connections as for
12 (the issue's query budget for admin lists): contact counts come with the rows, not per row."""

from __future__ import annotations

import pytest
from django.test import Client

from messengers.models import Connection, Contact
from tenants.models import Tenant
from tests.helpers import query_count, signed_in_admin

LIST = "/admin/messengers/connection/"


@pytest.fixture
def admin_client(tenant: Tenant, client_a: Client) -> Client:
    return signed_in_admin(client_a)


def add_connections(first: int, last: int) -> None:
    for i in range(first, last):
        connection = Connection.objects.create(
            provider="email", name=f"Newsletter {i}", external_id=f"news{i}@stadt-a.example", last_check_ok=i % 2 == 0
        )
        Contact.objects.bulk_create(
            [Contact(connection=connection, address=f"person{i}-{n}@example.org") for n in range(2)]
        )


def test_the_connection_list_costs_the_same_number_of_queries_for_2_or_12_connections(admin_client: Client) -> None:
    existing = Connection.objects.count()  # onboarding's sandbox
    add_connections(0, 2)
    small, html = query_count(admin_client, LIST)
    assert "Newsletter 1" in html
    add_connections(2, 12)
    large, html = query_count(admin_client, LIST)
    assert html.count('class="action-select"') == existing + 12
    assert large == small, f"{small} queries for 2 connections, {large} for 12"
