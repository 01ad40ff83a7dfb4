"""What an import says about a file as a whole (the job's failure, or the upload form's error),
and `refuse`, which makes such a message an ApplicationError in the uploader's language. Row
errors are validation's (subscribers.services.imports.validation)."""

from __future__ import annotations

from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext_lazy

from core.errors import ApplicationError

# Messages about the file as a whole (the job's failure, or the upload form's error), in the
# language of the person who uploaded it (the worker runs in that language).
IMPORT_FILE_TOO_BIG = gettext_lazy(
    "The file is larger than %(limit)s MB. Split it into smaller files and upload them one after another."
)
IMPORT_FILE_EMPTY = gettext_lazy("The file is empty (it has no rows). Check that you chose the right file.")
IMPORT_FORMAT_UNKNOWN = gettext_lazy("Please upload a CSV file (.csv) or an Excel workbook (.xlsx).")
IMPORT_OLD_EXCEL = gettext_lazy(
    "This is an old Excel file (.xls). Open it in Excel or LibreOffice, save it as an Excel workbook (.xlsx) or "
    "as “CSV UTF-8”, and upload that."
)
IMPORT_ENCRYPTED_EXCEL = gettext_lazy(
    "The workbook is protected by a password. Open it in Excel, remove the password (File → Info → Protect "
    "Workbook), save it and upload it again."
)
IMPORT_CHANNEL_UNKNOWN = gettext_lazy(
    "One of the chosen channels does not exist any more. Reload the page and choose again."
)
IMPORT_PARTY_NEEDS_EXPLICIT = gettext_lazy(
    "Your organisation processes political opinions: confirm that every person in the file gave explicit "
    "consent (GDPR Art. 9(2)(a)) before importing."
)
IMPORT_MISSING_COLUMNS = gettext_lazy(
    "The header row lacks the required column(s): %(columns)s. Required: %(required)s."
)
IMPORT_NO_ADDRESS_COLUMN = gettext_lazy("The header row has no address column; add at least one of: %(columns)s.")
IMPORT_UNREADABLE = gettext_lazy(
    "The file could not be read as %(format)s (%(detail)s). Open it in a spreadsheet program, save it again and "
    "upload it once more."
)
IMPORT_NUL_BYTES = gettext_lazy(
    "The file contains NUL bytes (the first in line %(line)s), so it is not a plain text file: perhaps UTF-16 "
    "without a byte order mark, or no CSV file at all. Save it as “CSV UTF-8” and upload it again."
)
IMPORT_CONTROL_CHARACTERS = gettext_lazy(
    "The file contains control characters (the first in line %(line)s), so it is not a plain text file. Save it "
    "as “CSV UTF-8” and upload it again."
)
IMPORT_NOT_TEXT = gettext_lazy(
    "The file is neither UTF-8 nor Windows-1252 text (line %(line)s). Save it as “CSV UTF-8” and upload it again."
)
IMPORT_BAD_BOM = gettext_lazy(
    "The file starts like %(encoding)s text but is not valid %(encoding)s (line %(line)s). Save it as “CSV UTF-8” "
    "and upload it again."
)
IMPORT_TOO_MANY_ROWS = gettext_lazy(
    "The file has more than %(limit)s rows (empty rows count too). Split it into smaller files, or delete the empty "
    "rows at its end."
)
IMPORT_CELL_TOO_LONG = gettext_lazy(
    "A cell in row %(row)s is longer than %(limit)s characters, the most a spreadsheet cell can hold. Shorten it or "
    "delete that column, and upload the file again."
)
IMPORT_XLSX_CELL_TOO_LONG = gettext_lazy(
    "A cell is longer than %(limit)s characters, the most a spreadsheet cell can hold (in %(part)s). Shorten it or "
    "delete that column, and upload the file again."
)
IMPORT_TOO_MANY_COLUMNS = gettext_lazy(
    "The file has more than %(limit)s columns. Delete the columns you do not need (also any far to the right) and "
    "upload it again."
)
IMPORT_TOO_MANY_CELLS = gettext_lazy(
    "The workbook has more than %(limit)s cells. Split it into smaller files, or save it as “CSV UTF-8”, and upload "
    "that."
)
IMPORT_XLSX_TOO_BIG = gettext_lazy(
    "The workbook would take more than %(limit)s MB unpacked. Save it as “CSV UTF-8”, or split it into smaller files."
)
IMPORT_XLSX_PART_TOO_BIG = gettext_lazy(
    "Part %(part)s of the workbook would take more than %(limit)s MB unpacked. Copy the list into a new workbook "
    "(without formatting or pictures), or save it as “CSV UTF-8”, and upload that."
)
IMPORT_XLSX_RATIO = gettext_lazy(
    "Part %(part)s of the workbook is compressed more than %(ratio)s-fold, as only a zip bomb is. Open the file in a "
    "spreadsheet program, save it again and upload it once more."
)
IMPORT_XLSX_TOO_MANY_PARTS = gettext_lazy(
    "The workbook consists of more than %(limit)s parts (sheets, pictures …). Copy the list into a new workbook and "
    "upload that."
)
IMPORT_XLSX_TOO_MANY_ELEMENTS = gettext_lazy(
    "Part %(part)s of the workbook holds more than %(limit)s entries besides its cells (links, formatting …). Copy "
    "only the list into a new workbook, or save it as “CSV UTF-8”, and upload that."
)
IMPORT_XLSX_FOREIGN = gettext_lazy(
    "The workbook contains XML that no spreadsheet program writes (%(what)s in %(part)s). Open it in a spreadsheet "
    "program, save it again and upload it once more."
)
IMPORT_XLSX_NO_SHEET = gettext_lazy(
    "The workbook has no worksheet. Put the list on the first worksheet and upload it again."
)
IMPORT_STALLED = gettext_lazy(
    "The import stopped: no worker has worked on it for more than %(minutes)s minutes (probably a restart). The "
    "rows imported so far are kept; upload the file again to import the rest (that is safe)."
)
IMPORT_UNEXPECTED = gettext_lazy(
    "The import failed unexpectedly (%(error)s). The rows imported so far are kept; upload the file again to import "
    "the rest (that is safe). If it fails again, please tell your administrator."
)


def _number(value: int) -> str:
    return number_format(value, force_grouping=True)


def refuse(message: Any, **params: Any) -> ApplicationError:
    """The error for a file-level problem, in the active language. Limits (`limit`) are written
    with the language's digit grouping (1,000,000 / 1.000.000); row and line numbers are not."""
    if "limit" in params and isinstance(params["limit"], int):
        params["limit"] = _number(params["limit"])
    return ApplicationError(str(message) % params if params else str(message))
