"""Import (CSV, XLSX) with consent per row, per-row error report, idempotent re-import; export
of a channel's subscribers; the admin import page. Imports run as tenant tasks (inline here)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone, translation
from openpyxl import Workbook, load_workbook

from accounts import roles
from accounts.models import AuditEvent
from channels.models import Channel
from core.errors import ApplicationError
from messengers.models import Connection, Contact
from messengers.services import connection_create
from subscribers.models import ConsentEvent, Source, Subscriber, SubscriberImport, Subscription
from subscribers.services import (
    district_create,
    subscriber_import_create,
    subscriber_import_resume,
    subscriber_unsubscribe_all,
    subscribers_export,
)
from subscribers.services.imports import job as import_job
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp
from tests.subscribers.factories import sandbox

BERLIN = ZoneInfo("Europe/Berlin")
GOOD = """name,whatsapp,email,channels,district,language,tags,consent_source,consent_date
Anna Alt,+49 170 1111111,anna@example.org,feinstaub,Mitte,de,"Radverkehr, ÖPNV",Papierformular Bürgerbüro,2023-04-01
Ben Bauer,0170 2222222,,verkehr;feinstaub,,en,,Alter Newsletter,01.02.2024
Cem Can,,cem@example.org,,Süd,,,Webformular,2024-05-06 14:30
"""


@pytest.fixture
def setup(tenant: Tenant) -> dict[str, Any]:
    whatsapp = connection_create(
        provider="whatsapp", name="WhatsApp", external_id="import-test-number",
        credentials={"access_token": "t", "app_secret": "s"},
    )  # fmt: skip
    email = Connection.objects.create(provider="email", name="Newsletter", external_id="news@stadt-a.example")
    connections = [whatsapp, email, sandbox()]
    return {
        "dust": make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=connections),
        "traffic": make_channel("Verkehr", ["VERKEHR"], connections=connections),
        "mitte": district_create(name="Mitte"),
        "sued": district_create(name="Süd"),
        "whatsapp": whatsapp,
    }


def run_import(capture: Any, content: bytes | str, filename: str = "liste.csv", **options: Any) -> SubscriberImport:
    data = content.encode() if isinstance(content, str) else content
    with capture(execute=True):
        job = subscriber_import_create(filename=filename, data=data, **options)
    job.refresh_from_db()
    return job


def test_a_csv_import_creates_people_contacts_subscriptions_and_their_consent(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    job = run_import(django_capture_on_commit_callbacks, GOOD, default_channels=[setup["traffic"]])
    assert job.status == SubscriberImport.Status.DONE, job.failure
    assert (job.total_rows, job.subscribers_created, job.subscriptions_created, job.rows_rejected) == (3, 3, 5, 0)
    assert bytes(job.data) == b""  # the file (personal data) is gone once imported
    anna = Subscriber.objects.get(name="Anna Alt")
    assert (anna.language, anna.district, anna.tags) == ("de", setup["mitte"], ["Radverkehr", "ÖPNV"])
    assert set(Contact.objects.filter(subscriber=anna).values_list("address", flat=True)) == {
        "+491701111111", "anna@example.org"
    }  # fmt: skip
    assert Contact.objects.get(address="+491702222222").connection == setup["whatsapp"]
    subscription = Subscription.objects.get(subscriber=anna, channel=setup["dust"])
    assert (subscription.source, subscription.source_detail, subscription.status) == (
        Source.IMPORT, "Papierformular Bürgerbüro", "active"
    )  # fmt: skip
    assert timezone.localtime(subscription.subscribed_at, BERLIN).date().isoformat() == "2023-04-01"
    event = ConsentEvent.objects.get(subscriber=anna, channel=setup["dust"])
    assert (event.kind, event.source, event.source_detail) == ("opt_in", Source.IMPORT, "Papierformular Bürgerbüro")
    assert event.evidence.startswith(f"import #{job.pk} liste.csv (sha256 ") and event.evidence.endswith(" row 2")
    assert event.at == subscription.subscribed_at
    ben = Subscriber.objects.get(name="Ben Bauer")
    assert set(ben.subscriptions.values_list("channel__slug", flat=True)) == {"verkehr", "feinstaubalarm"}
    assert Subscription.objects.get(subscriber__name="Cem Can").subscribed_at == datetime.fromisoformat(
        "2024-05-06T14:30:00+02:00"
    )
    assert AuditEvent.objects.filter(action="subscribers.imported").exists()


def test_rows_without_consent_or_with_bad_values_are_rejected_and_reported(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    content = (
        "name;whatsapp;channels;district;consent_source;consent_date\n"
        "Ohne Quelle;+491703333333;feinstaub;;;2024-01-01\n"
        "Ohne Datum;+491704444444;feinstaub;;Formular;\n"
        "Falsches Datum;+491705555555;feinstaub;;Formular;31.02.2024x\n"
        "Zukunft;+491706666666;feinstaub;;Formular;2999-01-01\n"
        "Kaputte Nummer;12;feinstaub;;Formular;2024-01-01\n"
        "Unbekannt;+491707777777;kuchen;Atlantis;Formular;2024-01-01\n"
        "Richtig;+491708888888;feinstaub;;Formular;2024-01-01\n"
    )
    job = run_import(django_capture_on_commit_callbacks, content)
    assert job.status == SubscriberImport.Status.DONE
    assert (job.subscribers_created, job.rows_rejected) == (1, 6)
    found = {(e["row"], e["column"]) for e in job.errors}
    assert found == {
        (2, "consent_source"), (3, "consent_date"), (4, "consent_date"), (5, "consent_date"), (6, "whatsapp"),
        (7, "channels"), (7, "district"),
    }  # fmt: skip
    assert Subscriber.objects.get().name == "Richtig"
    assert not Contact.objects.filter(address="+491703333333").exists()


def test_importing_the_same_file_again_changes_nothing(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    run_import(django_capture_on_commit_callbacks, GOOD, default_channels=[setup["traffic"]])
    counts = (Subscriber.objects.count(), Contact.objects.count(), Subscription.objects.count(),
              ConsentEvent.objects.count())  # fmt: skip
    again = run_import(django_capture_on_commit_callbacks, GOOD, default_channels=[setup["traffic"]])
    assert (again.subscribers_created, again.subscribers_matched, again.subscriptions_created) == (0, 3, 0)
    assert counts == (Subscriber.objects.count(), Contact.objects.count(), Subscription.objects.count(),
                      ConsentEvent.objects.count())  # fmt: skip


def test_a_re_import_never_subscribes_someone_who_unsubscribed(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    run_import(django_capture_on_commit_callbacks, GOOD)
    anna = Subscriber.objects.get(name="Anna Alt")
    subscriber_unsubscribe_all(subscriber=anna, source=Source.KEYWORD)
    run_import(django_capture_on_commit_callbacks, GOOD)
    assert not Subscription.objects.filter(subscriber=anna, status="active").exists()
    assert not Contact.objects.filter(subscriber=anna, status="active").exists()


def test_people_are_recognised_by_external_reference_and_known_addresses(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    first = "external_ref,whatsapp,channels,consent_source,consent_date\nK-1,+491709999999,feinstaub,CRM,2024-01-01\n"
    run_import(django_capture_on_commit_callbacks, first)
    second = (
        "id,email,whatsapp,channels,consent_source,consent_date\n"
        "K-1,k1@example.org,,verkehr,CRM,2024-02-01\n"  # same reference, new address
        ",,+491709999999,verkehr,CRM,2024-02-01\n"  # same number
        "K-2,k2@example.org,+491709999999,verkehr,CRM,2024-02-01\n"  # a new reference but a known number
    )
    job = run_import(django_capture_on_commit_callbacks, second)
    assert Subscriber.objects.count() == 1
    person = Subscriber.objects.get()
    assert set(Contact.objects.filter(subscriber=person).values_list("address", flat=True)) == {
        "+491709999999", "k1@example.org", "k2@example.org"
    }  # fmt: skip
    assert job.rows_rejected == 0 and job.subscriptions_created == 1


def test_known_people_get_what_they_lack_but_keep_their_own_choices(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    first = (
        "name,whatsapp,district,tags,channels,consent_source,consent_date\n"
        ",+491701000001,,A,feinstaub,CRM,2024-01-01\n"
        "Eigen,+491701000002,Süd,A,feinstaub,CRM,2024-01-01\n"
    )
    run_import(django_capture_on_commit_callbacks, first)
    second = (
        "name,whatsapp,district,tags,channels,consent_source,consent_date\n"
        'Neu,+491701000001,Mitte,"A, B",feinstaub,CRM,2024-02-01\n'
        "Anders,+491701000002,Mitte,C,feinstaub,CRM,2024-02-01\n"
        "Noch anders,+491701000002,,D,feinstaub,CRM,2024-02-01\n"  # the same person twice in a file
    )
    job = run_import(django_capture_on_commit_callbacks, second)
    assert (job.subscribers_created, job.subscribers_matched, job.subscriptions_created) == (0, 2, 0)
    empty = Contact.objects.get(address="+491701000001").subscriber
    own = Contact.objects.get(address="+491701000002").subscriber
    assert empty is not None and own is not None
    assert (empty.name, empty.district, empty.tags) == ("Neu", setup["mitte"], ["A", "B"])
    assert (own.name, own.district, own.tags) == ("Eigen", setup["sued"], ["A", "C", "D"])


def test_backslashes_tabs_line_breaks_quotes_and_braces_arrive_as_written(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    """The import writes COPY's text format itself: what that format (or an array literal) treats
    specially must arrive unchanged."""
    name = 'Back\\slash "Tab"\there\nzweite Zeile \\N'
    tags = ["NULL", "{a}", '"q"', "c\\d", "\\N", "x y"]
    source = "Liste\\t\tzwei \\"
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL).writerows([
        ["name", "email", "channels", "tags", "consent_source", "consent_date", "external_ref"],
        [name, "x@example.org", "feinstaub", ";".join(tags), source, "2024-01-01", "ref\\1"],
    ])  # fmt: skip
    job = run_import(django_capture_on_commit_callbacks, buffer.getvalue(), filename="a\\b\tc.csv")
    assert job.rows_rejected == 0, job.errors
    person = Subscriber.objects.get()
    assert (person.name, person.tags, person.external_ref) == (name, tags, "ref\\1")
    assert Contact.objects.get().display_name == name
    assert Subscription.objects.get().source_detail == source
    event = ConsentEvent.objects.get()
    assert event.source_detail == source and event.evidence.endswith(
        "a\\b\tc.csv (sha256 " + job.file_sha256[:12] + ") row 2"
    )
    again = run_import(django_capture_on_commit_callbacks, buffer.getvalue())
    assert (again.subscribers_created, again.subscribers_matched, again.subscriptions_created) == (0, 1, 0)
    person.refresh_from_db()
    assert person.tags == tags


def test_addresses_of_two_known_people_in_one_row_are_rejected(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    run_import(django_capture_on_commit_callbacks, GOOD, default_channels=[setup["traffic"]])
    job = run_import(
        django_capture_on_commit_callbacks,
        "whatsapp,email,channels,consent_source,consent_date\n+491701111111,cem@example.org,verkehr,X,2024-01-01\n",
    )
    assert job.rows_rejected == 1 and job.errors[0]["column"] == "address"


def test_an_excel_file_with_german_headers(setup: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Name", "WhatsApp", "Kanäle", "Bezirk", "Sprache", "Einwilligung Quelle", "Einwilligungsdatum"])
    sheet.append(["Dora Dach", 4917012121212, "Feinstaub", "süd", "Englisch", "Messe-Stand", datetime(2024, 3, 1, 9)])
    sheet.append([None, None, None, None, None, None, None])
    sheet.append(["Emil Ernst", "+49 170 3434343", "verkehr", None, None, "Messe-Stand", "2024-03-02"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = run_import(django_capture_on_commit_callbacks, buffer.getvalue(), filename="messe.xlsx")
    assert job.file_format == "xlsx" and job.status == "done" and job.rows_rejected == 0, job.errors
    dora = Subscriber.objects.get(name="Dora Dach")
    assert (dora.language, dora.district) == ("en", setup["sued"])
    assert Contact.objects.get(subscriber=dora).address == "+4917012121212"


def test_a_windows_csv_with_semicolons(setup: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    content = "Name;SMS;Kanal;Einwilligung Quelle;Einwilligung Datum\nJürgen Öz;;Verkehr;Bürgerbüro;03.04.2024\n"
    job = run_import(django_capture_on_commit_callbacks, content.encode("cp1252"))
    assert job.rows_rejected == 1 and job.errors[-1]["column"] == "address"
    content = "Name;Email;Kanal;Einwilligung Quelle;Einwilligung Datum;Lieblingsfarbe\nJürgen Öz;j@example.org;Verkehr;Bürgerbüro;03.04.2024;blau\n"
    job = run_import(django_capture_on_commit_callbacks, content.encode("cp1252"))
    assert Subscriber.objects.get().name == "Jürgen Öz"
    assert {"row": 1, "column": "Lieblingsfarbe", "message": "Unknown column, ignored."} in job.errors


def test_files_without_the_required_columns_are_refused_at_once(setup: dict[str, Any]) -> None:
    # The messages are checked in English; without the override the test passed only when an
    # earlier test had left English active.
    with translation.override("en"):
        with pytest.raises(ApplicationError, match="consent_source, consent_date"):
            subscriber_import_create(filename="x.csv", data=b"name,whatsapp\nA,+491701111111\n")
        with pytest.raises(ApplicationError, match="no address column"):
            subscriber_import_create(filename="x.csv", data=b"name,consent_source,consent_date\nA,X,2024-01-01\n")
        with pytest.raises(ApplicationError, match="empty"):
            subscriber_import_create(filename="x.csv", data=b"")
    assert not SubscriberImport.objects.exists()


def test_a_party_must_confirm_explicit_consent(
    setup: dict[str, Any], tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    tenant.kind = Tenant.Kind.PARTY
    tenant.save(update_fields=["kind"])  # the worker reads the tenant afresh (rolled back after the test)
    try:
        with pytest.raises(ApplicationError, match="explicit"):
            subscriber_import_create(filename="x.csv", data=GOOD.encode())
        run_import(django_capture_on_commit_callbacks, GOOD, explicit_consent=True)
        assert set(ConsentEvent.objects.values_list("explicit", flat=True)) == {True}
    finally:
        tenant.kind = Tenant.Kind.CITY


def test_long_imports_hand_over_to_a_new_task_and_finish(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(f"P{i},+4917055{i:05d},feinstaub,Liste,2024-01-01\n" for i in range(9))
    content = "name,whatsapp,channels,consent_source,consent_date\n" + rows
    monkeypatch.setattr(import_job, "CHUNK_ROWS", 2)
    monkeypatch.setattr(import_job, "TIME_BUDGET_SECONDS", -1)  # every chunk hands over
    job = run_import(django_capture_on_commit_callbacks, content)
    assert job.status == "done" and job.subscribers_created == 9 and job.processed_rows == 9
    assert Subscriber.objects.count() == 9


def test_an_import_whose_worker_died_can_be_resumed_without_duplicates(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as first:
        job = subscriber_import_create(filename="liste.csv", data=GOOD.encode(), default_channels=[setup["traffic"]])
    monkeypatch.setattr(import_job, "CHUNK_ROWS", 1)
    monkeypatch.setattr(import_job, "TIME_BUDGET_SECONDS", -1)
    with django_capture_on_commit_callbacks(execute=False) as lost:
        first[0]()  # the worker imports one row and hands over; the hand-over is lost
    monkeypatch.undo()
    assert len(lost) == 1
    job.refresh_from_db()
    assert (job.status, job.processed_rows, Subscriber.objects.count()) == ("running", 1, 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert subscriber_import_resume(job=job)
    job.refresh_from_db()
    assert (job.status, job.subscribers_created, Subscriber.objects.count(), Contact.objects.count()) == (
        "done", 3, 3, 4
    )  # fmt: skip
    assert not subscriber_import_resume(job=job)  # finished: nothing to resume


# ------------------------------------------------------------------------------------- export
def test_export_of_a_channel_as_csv_and_xlsx(setup: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    run_import(
        django_capture_on_commit_callbacks,
        GOOD + '=HYPERLINK("http://evil"),+491707070707,,feinstaub,,,,Liste,2024-01-01\n',
    )
    admin = make_user(roles.ADMIN)
    export = subscribers_export(channel=setup["dust"], file_format="csv", actor=admin)
    rows = list(csv.reader(io.StringIO(b"".join(export.chunks).decode("utf-8-sig"))))
    assert rows[0][:3] == ["subscriber_id", "name", "language"]
    by_name = {row[1]: row for row in rows[1:]}
    assert set(by_name) == {"Anna Alt", "Ben Bauer", '\'=HYPERLINK("http://evil")'}
    assert by_name["Anna Alt"][5] == "+491701111111" and by_name["Anna Alt"][8] == "anna@example.org"
    assert AuditEvent.objects.get(action="channel.subscribers_exported").details == {"format": "csv"}
    workbook = load_workbook(io.BytesIO(b"".join(
        subscribers_export(channel=setup["dust"], file_format="xlsx", actor=admin).chunks
    )))  # fmt: skip
    sheet = workbook.worksheets[0]
    assert sheet.max_row == 4 and sheet["B1"].value == "name"


def test_export_leaves_out_people_who_unsubscribed(
    setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    run_import(django_capture_on_commit_callbacks, GOOD)
    subscriber_unsubscribe_all(subscriber=Subscriber.objects.get(name="Anna Alt"), source=Source.KEYWORD)
    export = subscribers_export(channel=setup["dust"], file_format="csv", actor=None)
    names = [row[1] for row in csv.reader(io.StringIO(b"".join(export.chunks).decode("utf-8-sig")))][1:]
    assert names == ["Ben Bauer"]


# ------------------------------------------------------------------------------------- admin
def _admin(client: Client) -> None:
    user = make_user(roles.ADMIN)
    enrol_totp(user)
    client.force_login(user)


def test_the_admin_import_page_uploads_shows_progress_and_the_error_report(
    setup: dict[str, Any], client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    _admin(client_a)
    assert client_a.get("/admin/subscribers/subscriberimport/add/").status_code == 200
    upload = io.BytesIO((GOOD + "Ohne,+491701212121,feinstaub,,,,,,\n").encode())
    upload.name = "liste.csv"
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(
            "/admin/subscribers/subscriberimport/add/", {"file": upload, "channels": [setup["traffic"].pk]}
        )
    assert response.status_code == 302
    job = SubscriberImport.objects.get()
    detail = client_a.get(response["Location"]).content.decode()
    assert "consent source is missing" in detail and "liste.csv" in detail
    progress = client_a.get(f"/admin/subscribers/subscriberimport/{job.pk}/progress.json").json()
    assert progress["finished"] and progress["created"] == 3 and progress["rejected"] == 1
    report = client_a.get(f"/admin/subscribers/subscriberimport/{job.pk}/errors.csv").content.decode("utf-8-sig")
    assert report.splitlines()[0] == "row,column,message" and "5,consent_source," in report


def test_the_admin_upload_reports_a_broken_file_as_a_form_error(setup: dict[str, Any], client_a: Client) -> None:
    _admin(client_a)
    upload = io.BytesIO(b"name,whatsapp\nA,+491701111111\n")
    upload.name = "liste.csv"
    response = client_a.post("/admin/subscribers/subscriberimport/add/", {"file": upload})
    assert response.status_code == 200 and "consent_source, consent_date" in response.content.decode()


def test_the_channel_admin_exports_subscribers(
    setup: dict[str, Any], client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    run_import(django_capture_on_commit_callbacks, GOOD)
    _admin(client_a)
    response = client_a.post(
        "/admin/channels/channel/", {"action": "export_csv", "_selected_action": [setup["dust"].pk]}
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "Anna Alt" in b"".join(response.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    assert Channel.objects.count() == 2
