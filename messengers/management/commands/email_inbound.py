"""Take one e-mail from standard input for an e-mail connection: what an MTA's pipe transport runs
on the platform's own host (docs/operations.md "Inbound e-mail").

    python manage.py email_inbound -- <route_key> < message.eml

(`--`: a route key made before 2026-12 may begin with "-", which would read as an option.)

The message goes straight to the same parser and event store as POST /webhooks/email/<route>/
(messengers.services.mail), without HTTP or a signature. Exit codes follow sysexits.h, which
Postfix understands: 0 taken (also a replay, or automatic mail that is dropped), 65 malformed
or too large (bounced), 67 unknown route (bounced), 78 inbound mail off for the connection
(bounced), 75 database unavailable (Postfix keeps the message and tries again later).
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError

from messengers.services import mail

EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75
EX_CONFIG = 78
EXIT_CODES = {"data": EX_DATAERR, "route": EX_NOUSER, "config": EX_CONFIG}


class Command(BaseCommand):
    help = "Read one e-mail (RFC 822) from standard input and hand it to an e-mail connection's inbound path."
    stealth_options = ("stdin",)  # tests pass a binary stream instead of the process's stdin

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("route_key", help="the connection's webhook route (the last part of its webhook URL)")

    def handle(self, *args: Any, **options: Any) -> None:
        stream = options.get("stdin") or sys.stdin.buffer
        raw = stream.read(settings.EMAIL_INBOUND_MAX_BYTES + 1)
        try:
            received = mail.mail_receive(route_key=options["route_key"], raw=raw)
        except mail.MailRefusedError as exc:
            raise CommandError(exc.reason, returncode=EXIT_CODES[exc.kind]) from None
        except (OperationalError, InterfaceError):
            raise CommandError("database unavailable, try again later", returncode=EX_TEMPFAIL) from None
        what = "stored" if received.stored else "nothing new (a replay, or automatic mail)"
        self.stdout.write(f"{received.schema_name}: {what}")
