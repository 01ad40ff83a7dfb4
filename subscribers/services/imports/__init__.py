"""Import of subscribers from CSV/XLSX, and export of a channel's subscribers.

An import is stored (SubscriberImport, file included) and run by a worker in chunks of
CHUNK_ROWS rows, each chunk in its own transaction, so progress is visible while it runs and a
crash loses at most one chunk (running it again is safe). Per chunk it costs a constant number
of queries: look up known contacts and references, then bulk-create people, contacts,
subscriptions and their ledger entries.

Uploads come from outside and may be hostile (zip bombs, huge cells, a million empty rows, odd
encodings): the web request only checks what is cheap and stores the file; the worker checks
the whole file against the limits before it imports a row, and every failure ends the job as
failed with a message, its file deleted.

Every row needs a consent source and date (the proof the organisation holds), at least one
address, and at least one channel (from its own column or the import's default channels). A
row with any problem is rejected as a whole and listed in the error report with its row
number; nothing is imported halfway. Re-importing the same file changes nothing: people are
recognised by their addresses (or the external reference), subscriptions are never
duplicated, and a subscription the person ended is never switched on again by an import.

The modules, in the order a file passes through them:
* reading: the format, CSV encodings and limits, the header, rows of any format (xlsx: the
  workbook checks before openpyxl reads it); messages: what is said about a file as a whole;
* validation: a row becomes a Record or row errors;
* writing: one chunk written with COPY;
* job: create, run (chunks, heartbeat, hand-over), resume, fail stalled imports;
* export: a channel's subscribers as CSV/XLSX, and an import's error report.
"""

from subscribers.services.imports.export import (
    Export,
    formula_safe,
    subscriber_import_errors_csv,
    subscribers_export,
)
from subscribers.services.imports.job import (
    subscriber_import_create,
    subscriber_import_resume,
    subscriber_import_run,
    subscriber_imports_fail_stalled,
)
from subscribers.services.imports.messages import IMPORT_FILE_TOO_BIG
from subscribers.services.imports.reading import decode_csv, detect_format, read_rows

__all__ = [
    "IMPORT_FILE_TOO_BIG",
    "Export",
    "decode_csv",
    "detect_format",
    "formula_safe",
    "read_rows",
    "subscriber_import_create",
    "subscriber_import_errors_csv",
    "subscriber_import_resume",
    "subscriber_import_run",
    "subscriber_imports_fail_stalled",
    "subscribers_export",
]
