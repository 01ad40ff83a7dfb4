"""Helpers of the import tests (test_import_hardening.py, test_import_jobs.py): upload a file
through the real service and worker, and check how a job ended."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from accounts import roles
from channels.models import Channel
from core.errors import ApplicationError
from messengers.models import Connection
from subscribers.models import SubscriberImport
from subscribers.services import subscriber_import_create
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp
from tests.subscribers.factories import sandbox

CSV_HEADER = "name,email,channels,consent_source,consent_date\n"


def import_channel() -> Channel:
    """The channel the files import into, carried by an e-mail connection and the sandbox."""
    email = Connection.objects.create(provider="email", name="Newsletter", external_id="news@stadt-a.example")
    return make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[email, sandbox()])


def upload(capture: Any, data: bytes, filename: str, **options: Any) -> SubscriberImport:
    """Upload as an English-speaking member of staff would, and let the worker run it."""
    with translation.override("en"), capture(execute=True):
        job = subscriber_import_create(filename=filename, data=data, **options)
    job.refresh_from_db()
    return job


def refused_at_upload(data: bytes, filename: str, language: str = "en") -> str:
    with translation.override(language), pytest.raises(ApplicationError) as refused:
        subscriber_import_create(filename=filename, data=data)
    assert not SubscriberImport.objects.exists()
    return refused.value.message


def assert_failed(job: SubscriberImport, *fragments: str) -> None:
    assert job.status == SubscriberImport.Status.FAILED, (job.status, job.failure)
    for fragment in fragments:
        assert fragment in job.failure
    assert bytes(job.data) == b""  # the personal data is gone
    assert job.finished_at is not None


def csv_rows(count: int, *, start: int = 0, sep: str = ",") -> str:
    return "".join(
        sep.join([f"Person {i}", f"p{i}@example.org", "feinstaub", "Liste", "2024-01-01"]) + "\n"
        for i in range(start, start + count)
    )


def sign_in_as_admin(client: Client) -> None:
    user = make_user(roles.ADMIN)
    enrol_totp(user)
    client.force_login(user)
