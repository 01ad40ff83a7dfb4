"""Uploads from outside: odd encodings, damaged and hostile files (zip bombs, huge cells, a
million empty rows), failures in any stage. Each must end as a clear message, with nothing
half-read, and the uploaded file (personal data) deleted. Jobs that go wrong on the way (lost
tasks, dead workers): test_import_jobs.py.

Every hostile file is built here (tests/subscribers/spreadsheets.py) and goes through the real
upload service and the real worker task (inline in tests)."""

from __future__ import annotations

import base64
import codecs
import io
import itertools
import os
import tracemalloc
import zipfile
from typing import Any

import pytest
from django.test import Client
from django.utils import translation
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from openpyxl import Workbook

from channels.models import Channel
from core.errors import ApplicationError
from subscribers.models import Subscriber, SubscriberImport
from subscribers.services import imports as import_service
from tenants.models import Tenant
from tests.subscribers import spreadsheets as xl
from tests.subscribers.import_helpers import (
    CSV_HEADER,
    assert_failed,
    csv_rows,
    import_channel,
    refused_at_upload,
    sign_in_as_admin,
    upload,
)


@pytest.fixture
def channel(tenant: Tenant) -> Channel:
    return import_channel()


# ----------------------------------------------------------------------------------- encodings
PEOPLE = "name\temail\tchannels\tconsent_source\tconsent_date\n" + (
    "Jürgen Öz\tj@example.org\tfeinstaub\tBürgerbüro\t03.04.2024\n"
    "Zoë Ünal\tz@example.org\tfeinstaub\tStraßenfest\t2024-04-05\n"
)


@pytest.mark.parametrize(
    ("codec", "bom"),
    [
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-32-be", codecs.BOM_UTF32_BE),
        ("utf-8", codecs.BOM_UTF8),
    ],
)
def test_text_files_with_a_byte_order_mark_are_decoded_by_it(
    channel: Channel, django_capture_on_commit_callbacks: Any, codec: str, bom: bytes
) -> None:
    """Excel's "Unicode text" export is UTF-16 with a BOM (tab-separated)."""
    job = upload(django_capture_on_commit_callbacks, bom + PEOPLE.encode(codec), "liste.txt")
    assert job.status == SubscriberImport.Status.DONE, job.failure
    assert bytes(job.data) == b""
    assert job.errors == []  # a misread header would show up as "unknown column" notes
    assert set(Subscriber.objects.values_list("name", flat=True)) == {"Jürgen Öz", "Zoë Ünal"}


def test_a_windows_1252_file_without_bom_is_read_as_windows_1252(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    job = upload(django_capture_on_commit_callbacks, PEOPLE.replace("Zoë", "Zoë „Z“").encode("cp1252"), "l.csv")
    assert job.status == SubscriberImport.Status.DONE, job.failure
    assert set(Subscriber.objects.values_list("name", flat=True)) == {"Jürgen Öz", "Zoë „Z“ Ünal"}


def test_utf16_without_a_byte_order_mark_is_refused_at_upload(channel: Channel) -> None:
    message = refused_at_upload(PEOPLE.encode("utf-16-le"), "liste.csv")
    assert "NUL" in message and "CSV UTF-8" in message


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,  # a picture renamed to .csv
        CSV_HEADER.encode() + b"Anna,a@example.org,feinstaub,Liste,2024-01-01\x01\x02\x03\x04\n",
        CSV_HEADER.encode() + "Anna\x81,a@example.org,feinstaub,Liste,2024-01-01\n".encode("latin-1"),
    ],
    ids=["picture", "control-characters", "neither-utf8-nor-windows-1252"],
)
def test_binary_junk_is_refused_with_a_clear_message(channel: Channel, data: bytes) -> None:
    message = refused_at_upload(data, "liste.csv")
    assert "CSV UTF-8" in message


def test_junk_after_the_first_rows_fails_the_job_before_importing_anything(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    # the upload looks at the file's beginning only; the worker checks all of it first
    content = CSV_HEADER + csv_rows(3000) + "Mallory\x00,m@example.org,feinstaub,Liste,2024-01-01\n"
    job = upload(django_capture_on_commit_callbacks, content.encode(), "liste.csv")
    assert_failed(job, "line 3002", "CSV UTF-8")
    assert Subscriber.objects.count() == 0


# Text as people write it (no control characters). Not U+FEFF either: at the start of a UTF-8
# file it is indistinguishable from the byte order mark, and read as one.
TEXT = st.characters(exclude_categories=["Cc", "Cs"], exclude_characters="\ufeff") | st.sampled_from('\t\n\r;,"')


@examples(max_examples=300, deadline=None)
@given(text=st.text(alphabet=TEXT, max_size=200),
       codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", "utf-16-le", "utf-32-be"]))  # fmt: skip
def test_text_with_a_bom_or_in_utf8_decodes_to_itself(text: str, codec: str) -> None:
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-32-be": codecs.BOM_UTF32_BE}.get(codec, b"")
    assert import_service.decode_csv(bom + text.encode(codec)) == text


@examples(max_examples=400, deadline=None)
@given(data=st.binary(max_size=3000), filename=st.sampled_from(["x.csv", "x.xlsx", "x.txt", "x"]))
def test_any_bytes_either_read_or_fail_with_the_imports_own_error(data: bytes, filename: str) -> None:
    try:
        file_format = import_service.detect_format(filename, data)
        list(import_service.read_rows(file_format, data))
    except ApplicationError:
        pass


def _small_workbook() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(xl.HEADER)
    sheet.append(["Anna", "a@example.org", "feinstaub", "Liste", "2024-01-01"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


SMALL_XLSX = _small_workbook()
SHEET = b"".join(xl.sheet_xml(xl.good_rows(3)))


@examples(max_examples=300, deadline=None)
@given(
    in_xml=st.booleans(),
    changes=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(list(b'<>"&/=;#s09x \x00\xff'))),
        min_size=1, max_size=5,
    ),
    cut=st.none() | st.floats(0, 1),
)  # fmt: skip
def test_damaged_workbooks_fail_with_the_imports_own_error(
    in_xml: bool, changes: list[tuple[float, int]], cut: float | None
) -> None:
    """Damage in the zip (compressed bytes, directory) or in the sheet's XML, or a cut-off file."""
    data = bytearray(SHEET if in_xml else SMALL_XLSX)
    for where, value in changes:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    if in_xml:
        data = bytearray(xl.package([bytes(data)], compression=zipfile.ZIP_STORED))
    try:
        list(import_service.read_rows(SubscriberImport.Format.XLSX, bytes(data)))
    except ApplicationError:
        pass


# ----------------------------------------------------------------------------------- limits
def test_a_cell_longer_than_a_spreadsheet_cell_fails_the_csv_before_importing_anything(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    content = CSV_HEADER + csv_rows(3) + f"{'x' * 40_000},x@example.org,feinstaub,Liste,2024-01-01\n"
    job = upload(django_capture_on_commit_callbacks, content.encode(), "liste.csv")
    assert_failed(job, "row 5", "32,767")
    assert Subscriber.objects.count() == 0


def test_a_csv_with_more_rows_than_allowed_fails_before_importing_anything(
    channel: Channel, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.IMPORT_MAX_ROWS = 20
    job = upload(django_capture_on_commit_callbacks, (CSV_HEADER + csv_rows(25)).encode(), "liste.csv")
    assert_failed(job, "more than 20 rows")
    assert Subscriber.objects.count() == 0
    # empty lines count too: they cost reading time like any other
    content = CSV_HEADER + "\n" * 30 + csv_rows(2)
    assert_failed(upload(django_capture_on_commit_callbacks, content.encode(), "liste.csv"), "more than 20 rows")


def test_a_million_empty_lines_in_a_small_csv_are_refused(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    content = CSV_HEADER + csv_rows(1) + "\n" * 1_100_000 + csv_rows(1, start=1)
    job = upload(django_capture_on_commit_callbacks, content.encode(), "liste.csv")
    assert_failed(job, "more than 1,000,000 rows")
    assert Subscriber.objects.count() == 0


def test_the_admin_refuses_a_too_large_upload_before_reading_it(
    channel: Channel, client_a: Client, settings: Any
) -> None:
    settings.IMPORT_MAX_FILE_BYTES = 1000
    sign_in_as_admin(client_a)
    upload_file = io.BytesIO((CSV_HEADER + csv_rows(40)).encode())
    upload_file.name = "liste.csv"
    response = client_a.post("/admin/subscribers/subscriberimport/add/", {"file": upload_file})
    assert response.status_code == 200 and "larger than" in response.content.decode()
    assert not SubscriberImport.objects.exists()


# ----------------------------------------------------------------------------------- XLSX
def test_a_zip_bomb_is_refused_at_upload_without_unpacking_it(channel: Channel, settings: Any) -> None:
    settings.IMPORT_MAX_XLSX_BYTES = 8 << 20
    sheet = xl.sheet_xml(itertools.chain(xl.good_rows(1), [b"<row r='3'><c r='A3'><v>"],
                                         xl.repeated(b"0", 16 << 20), [b"</v></c></row>"]))  # fmt: skip
    message = refused_at_upload(xl.package(sheet), "bombe.xlsx")
    assert "8 MB" in message and "unpacked" in message


def test_an_extreme_compression_ratio_is_refused_at_upload(channel: Channel) -> None:
    sheet = xl.sheet_xml(itertools.chain(xl.good_rows(1), [b"<row r='3'><c r='A3'><v>"],
                                         xl.repeated(b"0", 20 << 20), [b"</v></c></row>"]))  # fmt: skip
    message = refused_at_upload(xl.package(sheet), "bombe.xlsx")
    assert "compressed" in message


def test_a_workbook_with_thousands_of_parts_is_refused_at_upload(channel: Channel) -> None:
    extra = {f"xl/media/image{i}.png": b"x" for i in range(1500)}
    message = refused_at_upload(xl.package(xl.sheet_xml(xl.good_rows(1)), extra=extra), "liste.xlsx")
    assert "parts" in message


def test_refusals_speak_german_to_german_staff(channel: Channel) -> None:
    extra = {f"xl/media/image{i}.png": b"x" for i in range(1500)}
    message = refused_at_upload(xl.package(xl.sheet_xml(xl.good_rows(1)), extra=extra), "liste.xlsx", "de")
    assert "Teile" in message


def test_an_old_or_encrypted_excel_file_gets_a_hint_what_to_do(channel: Channel) -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000)  # the container of both
    assert "save it as an Excel workbook (.xlsx)" in refused_at_upload(ole, "liste.xls")
    assert "remove the password" in refused_at_upload(ole, "liste.xlsx")


def test_a_huge_cell_is_refused_without_reading_it_into_memory(channel: Channel) -> None:
    huge = base64.b64encode(os.urandom(15 << 20))  # 20 MB that do not compress (no zip bomb)
    strings = [f'<sst xmlns="{xl.MAIN}" count="1" uniqueCount="1"><si><t>'.encode(), huge, b"</t></si></sst>"]
    rows = [xl.row_xml(1, xl.HEADER), b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>']
    data = xl.package(xl.sheet_xml(rows), shared_strings=strings, compression=zipfile.ZIP_STORED)
    del huge, strings
    tracemalloc.start()
    try:
        with translation.override("en"), pytest.raises(ApplicationError) as refused:
            list(import_service.read_rows(SubscriberImport.Format.XLSX, data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "32,767 characters" in refused.value.message
    assert peak < 8 << 20, f"{peak} bytes held while refusing a 20 MB cell"


def test_a_huge_cell_fails_the_job_in_the_worker_and_wipes_the_upload(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    rows = [xl.row_xml(1, xl.HEADER), xl.row_xml(2, ["Anna", "a@example.org", "feinstaub", "Liste", "x" * 100_000])]
    job = upload(django_capture_on_commit_callbacks, xl.package(xl.sheet_xml(rows)), "liste.xlsx")
    assert_failed(job, "32,767 characters")


def test_a_million_empty_rows_in_a_small_workbook_are_refused_before_reading(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    rows = itertools.chain(xl.good_rows(1), [xl.row_xml(1_048_576, ["Zora"])])
    data = xl.package(xl.sheet_xml(rows))
    assert len(data) < 2000
    job = upload(django_capture_on_commit_callbacks, data, "liste.xlsx")
    assert_failed(job, "more than 1,000,000 rows")
    assert Subscriber.objects.count() == 0  # not even the good row: refused before reading


def test_a_workbook_with_more_rows_or_cells_than_allowed_is_refused_before_reading(
    channel: Channel, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.IMPORT_MAX_ROWS = 10
    job = upload(django_capture_on_commit_callbacks, xl.package(xl.sheet_xml(xl.good_rows(12))), "liste.xlsx")
    assert_failed(job, "more than 10 rows")
    settings.IMPORT_MAX_ROWS = 1000
    settings.IMPORT_MAX_XLSX_CELLS = 30
    job = upload(django_capture_on_commit_callbacks, xl.package(xl.sheet_xml(xl.good_rows(8))), "liste.xlsx")
    assert_failed(job, "more than 30 cells")
    assert Subscriber.objects.count() == 0


def test_a_cell_far_to_the_right_is_refused_instead_of_widening_every_row(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    rows = itertools.chain(xl.good_rows(3), [xl.row_xml(5, ["?"], first_column=16_384)])
    job = upload(django_capture_on_commit_callbacks, xl.package(xl.sheet_xml(rows)), "liste.xlsx")
    assert_failed(job, "more than 1,000 columns")


def test_xml_entities_and_doctypes_are_refused(channel: Channel, django_capture_on_commit_callbacks: Any) -> None:
    laughs = b'<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    rows = [xl.row_xml(1, xl.HEADER), b'<row r="2"><c r="A2" t="inlineStr"><is><t>&b;</t></is></c></row>']
    sheet = list(xl.sheet_xml(rows))
    sheet.insert(1, laughs)
    job = upload(django_capture_on_commit_callbacks, xl.package(sheet), "liste.xlsx")
    assert_failed(job, "spreadsheet program")


def test_a_wrong_declared_dimension_does_not_hide_rows(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    data = xl.package(xl.sheet_xml(xl.good_rows(5), dimension="A1:E2"))
    job = upload(django_capture_on_commit_callbacks, data, "liste.xlsx")
    assert job.status == SubscriberImport.Status.DONE, job.failure
    assert Subscriber.objects.count() == 5


def test_the_upload_does_not_parse_a_workbook_a_damaged_one_fails_in_the_worker(
    channel: Channel, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    sign_in_as_admin(client_a)
    damaged = xl.package([f'<worksheet xmlns="{xl.MAIN}"><sheetData><row r="1"><c r="A1" t="inl'.encode()])
    upload_file = io.BytesIO(damaged)
    upload_file.name = "liste.xlsx"
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post("/admin/subscribers/subscriberimport/add/", {"file": upload_file})
    assert response.status_code == 302
    assert_failed(SubscriberImport.objects.get(), "could not be read")


def test_a_workbook_without_the_required_columns_fails_in_the_worker(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    data = xl.package(xl.sheet_xml([xl.row_xml(1, ["name", "email"]), xl.row_xml(2, ["A", "a@example.org"])]))
    job = upload(django_capture_on_commit_callbacks, data, "liste.xlsx")
    assert_failed(job, "consent_source, consent_date")


def test_parts_openpyxl_does_not_read_may_be_what_excel_makes_of_them(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    """Excel's legacy drawings (cell comments) need not be well-formed XML; printer settings are
    binary and may start with NUL bytes. Neither may make the checks refuse a workbook."""
    extra = {
        "xl/drawings/vmlDrawing1.vml": b'<xml xmlns:v="urn:schemas-microsoft-com:vml"><v:shape>Notiz<br></v:shape></xml>',
        "xl/printerSettings/printerSettings1.bin": bytes(64) + b"<\x00?\x00",
        "xl/media/image1.png": b"\x89PNG\r\n\x1a\n" + os.urandom(2000),
    }
    job = upload(django_capture_on_commit_callbacks, xl.package(xl.sheet_xml(xl.good_rows(2)), extra=extra), "l.xlsx")
    assert job.status == SubscriberImport.Status.DONE, job.failure
    assert job.subscribers_created == 2


def test_a_large_ordinary_workbook_passes_the_checks(channel: Channel, django_capture_on_commit_callbacks: Any) -> None:
    job = upload(django_capture_on_commit_callbacks, xl.package(xl.sheet_xml(xl.good_rows(3000))), "liste.xlsx")
    assert job.status == SubscriberImport.Status.DONE, job.failure
    assert (job.subscribers_created, job.total_rows) == (3000, 3000)
