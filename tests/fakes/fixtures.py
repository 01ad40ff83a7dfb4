"""pytest fixtures that run the fakes on loopback (imported by the conftests that need them).

Each fake runs once per test session in its own thread; the function-scoped fixtures reset it
(settings, faults, state, stats) before every test and point its webhooks at a fresh path of
one shared `RecordingServer`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.common import FakeServer, RecordingServer
from tests.fakes.smtp import FakeSMTP
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp

WA_APP_SECRET = "wa-app-secret-123"
WA_TOKEN = "EAAG-test-access-token"
WA_VERIFY_TOKEN = "verify-me"
WA_PHONE_NUMBER_ID = "106540352242922"
WA_WABA_ID = "102290129340398"
TG_TOKEN = "7172552019:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TG_SECRET = "tg_webhook-secret_42"
TW_ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TW_TOKEN = "0123456789abcdef0123456789abcdef"
TW_NUMBER = "+4930123456"
SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-secret-pw"


def fresh(fake: FakeServer, sink: RecordingServer) -> None:
    """Reset the fake, let webhooks still in flight from the last test land, then empty the sink."""
    fake.reset()
    fake.wait_idle(10)
    sink.clear()


@pytest.fixture(scope="session")
def webhook_sink() -> Iterator[RecordingServer]:
    sink = RecordingServer().start()
    yield sink
    sink.stop()


@pytest.fixture
def sink(webhook_sink: RecordingServer) -> RecordingServer:
    webhook_sink.clear()
    webhook_sink.status = 200
    return webhook_sink


@pytest.fixture(scope="session")
def whatsapp_server() -> Iterator[FakeWhatsApp]:
    fake = FakeWhatsApp(
        app_secret=WA_APP_SECRET,
        access_token=WA_TOKEN,
        phone_number_id=WA_PHONE_NUMBER_ID,
        waba_id=WA_WABA_ID,
        speed=0,
        seed=7,
        webhook_retry_delay=0.05,
    ).start()
    yield fake
    fake.stop()


@pytest.fixture
def wa_fake(whatsapp_server: FakeWhatsApp, sink: RecordingServer) -> FakeWhatsApp:
    fresh(whatsapp_server, sink)
    whatsapp_server.configure(webhook_url=sink.url + "/webhooks/whatsapp")
    return whatsapp_server


@pytest.fixture(scope="session")
def telegram_server() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(bot_token=TG_TOKEN, speed=0, seed=7, webhook_retry_delay=0.05).start()
    yield fake
    fake.stop()


@pytest.fixture
def tg_fake(telegram_server: FakeTelegram, sink: RecordingServer) -> FakeTelegram:
    fresh(telegram_server, sink)
    return telegram_server


@pytest.fixture(scope="session")
def twilio_server() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(
        account_sid=TW_ACCOUNT,
        auth_token=TW_TOKEN,
        numbers=(TW_NUMBER,),
        speed=0,
        seed=7,
        webhook_retry_delay=0.05,
    ).start()
    yield fake
    fake.stop()


@pytest.fixture
def tw_fake(twilio_server: FakeTwilio, sink: RecordingServer) -> FakeTwilio:
    fresh(twilio_server, sink)
    twilio_server.configure(webhook_url=sink.url + "/webhooks/twilio")
    return twilio_server


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[FakeSMTP]:
    fake = FakeSMTP(username=SMTP_USER, password=SMTP_PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture
def smtp_fake(smtp_server: FakeSMTP) -> FakeSMTP:
    smtp_server.reset()
    return smtp_server
