"""The messenger connections changelist costs the same number of queries for 2 connections as for
12 (the issue's query budget for admin lists): contact counts come with the rows, not per row."""

from __future__ import annotations

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import roles
from messengers.models import Connection, Contact
from tenants.models import Tenant
from tests.factories import make_user
from tests.helpers import enrol_totp

LIST = "/admin/messengers/connection/"


@pytest.fixture
def admin_client(tenant: Tenant, client_a: Client) -> Client:
    user = make_user(roles.ADMIN)
    enrol_totp(user)
    client_a.force_login(user)
    return client_a


def query_count(client: Client, url: str) -> tuple[int, str]:
    client.get(url)  # the first request of a client also resolves the domain (cached afterwards)
    with CaptureQueriesContext(db_connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response
    return len(queries.captured_queries), response.content.decode()


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
