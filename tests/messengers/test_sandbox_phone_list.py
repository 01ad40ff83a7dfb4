"""The phone simulator's list of phones (issue 10, item 5): server-side search by name, number and
last message (hostile input included), 25 phones per page with safe page bounds, "New phone" at
the top, the chosen phone's chat beside the list, a query count independent of the number of
phones, tenant isolation and who may open it."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts import roles
from messengers import services
from messengers.models import Connection, Contact, SandboxMessage
from messengers.selectors import connection_sandbox, sandbox_phone_list
from tenants.models import Tenant
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp, query_count, signed_in_admin

pytestmark = pytest.mark.usefixtures("tenant")


@pytest.fixture
def sandbox() -> Connection:
    found = connection_sandbox()
    assert found is not None
    return found


@pytest.fixture
def editor(client_a: Client) -> Client:
    client_a.force_login(make_user(roles.EDITOR, username="simulantin"))
    return client_a


def phones(sandbox: Connection) -> str:
    return f"/admin/messengers/connection/{sandbox.pk}/phones/"


def add_phones(sandbox: Connection, first: int, last: int) -> None:
    contacts = [
        Contact(connection=sandbox, address=f"+4915570{n:06d}", display_name=f"Person {n:03d}")
        for n in range(first, last)
    ]
    Contact.objects.bulk_create(contacts)
    SandboxMessage.objects.bulk_create(
        [
            SandboxMessage(
                connection=sandbox, address=c.address, direction="in", text=f"Nachricht {n}",
                provider_message_id=f"sbx-test-{n}",
            )
            for n, c in enumerate(contacts, start=first)
        ]
    )  # fmt: skip


def listed(html: str) -> list[str]:
    return re.findall(r'<span class="who">([^<]*)</span>', html)


def test_new_phone_search_and_list_sit_above_the_chat_beside_them(editor: Client, sandbox: Connection) -> None:
    erika = services.sandbox_person_create(connection=sandbox, name="Erika Muster")
    services.sandbox_receive(connection=sandbox, address=erika.address, text="Wann ist Feinstaubalarm?")
    max_ = services.sandbox_person_create(connection=sandbox, name="Max Mustermann")
    html = editor.get(phones(sandbox)).content.decode()
    assert html.index("New phone") < html.index('id="phone-search"') < html.index('class="people"')
    assert "Wann ist Feinstaubalarm?" in html  # the last message under the name
    assert 'id="phone"' not in html and "its chat opens here" in html
    chosen = editor.get(f"{phones(sandbox)}{max_.pk}/", {"q": "Muster", "page": "1"}).content.decode()
    # both panes on one bookmarkable URL: the list (still searched) and Max's chat
    assert listed(chosen) == ["Erika Muster", "Max Mustermann"]
    assert 'id="phone"' in chosen and f"{phones(sandbox)}{max_.pk}/messages.json" in chosen
    assert re.search(rf'href="{phones(sandbox)}{max_.pk}/\?q=Muster&amp;page=1" aria-current="page"', chosen)


def test_a_new_phone_can_send_its_first_message_at_once(editor: Client, sandbox: Connection) -> None:
    form = editor.get(phones(sandbox), {"text": "START FEINSTAUB"}).content.decode()
    assert 'name="text" value="START FEINSTAUB"' in form  # what the demo's messenger links pre-fill
    created = editor.post(phones(sandbox), {"name": "Neu", "text": "START FEINSTAUB"})
    person = Contact.objects.get(connection=sandbox, display_name="Neu")
    assert created["Location"] == f"{phones(sandbox)}{person.pk}/"
    assert list(SandboxMessage.objects.filter(address=person.address).values_list("direction", "text")) == [
        ("in", "START FEINSTAUB")
    ]


def test_search_finds_by_name_number_and_last_message(editor: Client, sandbox: Connection) -> None:
    anna = services.sandbox_person_create(connection=sandbox, name="Anna Åström-Yılmaz")
    bert = services.sandbox_person_create(connection=sandbox, name="Bert")
    services.sandbox_receive(connection=sandbox, address=bert.address, text="alt: Baustelle")
    services.sandbox_receive(connection=sandbox, address=bert.address, text="STOP")
    digits = bert.address[1:]
    spaced = f"+{digits[:2]} {digits[2:5]} {digits[5:9]}-{digits[9:]}"

    def search(q: str) -> list[str]:
        response = editor.get(phones(sandbox), {"q": q})
        assert response.status_code == 200
        return listed(response.content.decode())

    assert search("yılmaz") == ["Anna Åström-Yılmaz"]
    assert search("ÅSTRÖM") == ["Anna Åström-Yılmaz"]
    assert search(bert.address) == ["Bert"]
    assert search(spaced) == ["Bert"]  # typed with spaces and a dash
    assert search("stop") == ["Bert"]  # the last message
    assert search("Baustelle") == []  # an older message is not the last one
    assert sorted(search("")) == ["Anna Åström-Yılmaz", "Bert"]
    assert anna.pk != bert.pk


@pytest.mark.parametrize("hostile", ["%", "_", "%%", "\\", "' OR 1=1 --", "a" * 5000, "🙂" * 300, "<script>"])
def test_hostile_search_input_matches_literally_and_never_fails(
    editor: Client, sandbox: Connection, hostile: str
) -> None:
    services.sandbox_person_create(connection=sandbox, name="Plain")
    response = editor.get(phones(sandbox), {"q": hostile})
    assert response.status_code == 200
    html = response.content.decode()
    assert listed(html) == []  # % and _ are not wildcards; nothing else matches "Plain"
    assert "<script>" not in html.split('id="content-main"')[1]


def test_a_nul_character_is_never_a_server_error(editor: Client, sandbox: Connection) -> None:
    services.sandbox_person_create(connection=sandbox, name="Plain")
    assert editor.get(phones(sandbox), {"q": "Pla\x00in"}).status_code in (200, 400)
    assert [p.display_name for p in sandbox_phone_list(sandbox, query="Pla\x00in")] == ["Plain"]


def test_a_literal_percent_sign_is_found(editor: Client, sandbox: Connection) -> None:
    sale = services.sandbox_person_create(connection=sandbox, name="100% Rabatt")
    services.sandbox_person_create(connection=sandbox, name="100 Rabatt")
    assert listed(editor.get(phones(sandbox), {"q": "100%"}).content.decode()) == [sale.display_name]


def test_pages_of_25_with_safe_bounds(editor: Client, sandbox: Connection) -> None:
    add_phones(sandbox, 0, 60)
    first = editor.get(phones(sandbox)).content.decode()
    assert len(listed(first)) == 25 and "60 phones" in first
    assert re.search(r'href="[^"]*\?page=1" aria-current="page">1</a>', first)
    assert f'href="{phones(sandbox)}?page=3"' in first
    third = editor.get(phones(sandbox), {"page": "3"}).content.decode()
    assert len(listed(third)) == 10
    for bad, expected in (("0", 3), ("abc", 1), ("99999", 3), ("-1", 3), ("", 1), ("1e9", 1), ("٣", 3)):
        response = editor.get(phones(sandbox), {"page": bad})
        assert response.status_code == 200, bad
        page = re.search(r'\?page=(\d+)" aria-current="page"', response.content.decode())
        assert page and int(page.group(1)) == expected, bad
    searched = editor.get(phones(sandbox), {"q": "Person 0", "page": "2"}).content.decode()
    # newest conversation first; the search stays in the page links
    assert listed(searched) == [f"Person {n:03d}" for n in range(34, 9, -1)]
    assert f'href="{phones(sandbox)}?q=Person+0&amp;page=3"' in searched


def test_the_list_costs_the_same_queries_for_5_or_60_phones(client_a: Client, sandbox: Connection) -> None:
    admin = signed_in_admin(client_a)
    add_phones(sandbox, 0, 5)
    small, html = query_count(admin, phones(sandbox))
    assert len(listed(html)) == 5
    add_phones(sandbox, 5, 60)
    large, html = query_count(admin, phones(sandbox))
    assert len(listed(html)) == 25
    assert large == small, f"{small} queries for 5 phones, {large} for 60"
    person = Contact.objects.filter(connection=sandbox).first()
    assert person is not None
    with_chat, _html = query_count(admin, f"{phones(sandbox)}{person.pk}/")
    assert with_chat <= small + 2


def test_tenant_b_phones_are_never_listed_found_or_opened_in_a(
    editor: Client, sandbox: Connection, tenant: Tenant, tenant_b: Tenant
) -> None:
    with in_tenant(tenant_b):
        sandbox_b = connection_sandbox()
        assert sandbox_b is not None
        bertha = services.sandbox_person_create(connection=sandbox_b, name="Bertha aus B")
        services.sandbox_receive(connection=sandbox_b, address=bertha.address, text="Geheimnis von B")
    mine = services.sandbox_person_create(connection=sandbox, name="Anton aus A")
    for q in ("", "Bertha", bertha.address, "Geheimnis"):
        html = editor.get(phones(sandbox), {"q": q}).content.decode()
        assert listed(html) == ([] if q else ["Anton aus A"]) and "Geheimnis von B" not in html
    if bertha.pk != mine.pk:
        assert editor.get(f"{phones(sandbox)}{bertha.pk}/").status_code == 404
        assert editor.get(f"{phones(sandbox)}{bertha.pk}/messages.json").status_code == 404
    # B's own sandbox id in A's admin is A's connection or nothing: never B's phones
    response = editor.get(f"/admin/messengers/connection/{sandbox_b.pk}/phones/", {"q": "Bertha"})
    assert response.status_code == 404 or listed(response.content.decode()) == []


@pytest.mark.parametrize("role", [roles.ADMIN, roles.EDITOR, roles.APPROVER, roles.INBOX_AGENT])
def test_every_role_with_the_simulator_permission_may_open_it(client_a: Client, sandbox: Connection, role: str) -> None:
    user = make_user(role, username=f"r-{role.replace(' ', '-')}")
    enrol_totp(user)  # roles that must use two-factor are sent to set it up first
    client_a.force_login(user)
    person = services.sandbox_person_create(connection=sandbox, name="Zeuge")
    assert client_a.get(phones(sandbox), {"q": "Zeu", "page": "2"}).status_code == 200
    assert client_a.get(f"{phones(sandbox)}{person.pk}/").status_code == 200


def test_without_the_permission_search_and_pages_are_refused(client_a: Client, sandbox: Connection) -> None:
    nobody = make_user(roles.EDITOR, username="ohne-recht")
    nobody.groups.clear()
    nobody.is_staff = True
    nobody.save()
    client_a.force_login(nobody)
    services.sandbox_person_create(connection=sandbox, name="Versteckt")
    for params in ({"q": "Versteckt"}, {"page": "1"}):
        response = client_a.get(phones(sandbox), params)
        assert response.status_code == 403
        assert "Versteckt" not in response.content.decode()
    assert Contact.objects.filter(connection=sandbox).count() == 1


def test_the_simulator_speaks_german(editor: Client, sandbox: Connection) -> None:
    add_phones(sandbox, 0, 30)
    html = editor.get(phones(sandbox), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    for german in ("Neues Telefon", "Telefone durchsuchen", "30 Telefone", "Weiter", "Seiten der Telefonliste"):
        assert german in html, german
    assert "New phone" not in html
    nothing = editor.get(phones(sandbox), {"q": "zzz"}, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Kein Telefon passt zu „zzz“." in nothing
