"""`connection_add` makes a connection people can use: carried by channels (all public ones
unless told otherwise, and it says which), the generated Telegram webhook secret shown once;
and the documented web server command binds explicitly and has a control socket of its own."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from channels.models import Channel
from messengers import selectors
from messengers.models import Connection
from subscribers.models import Subscription
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.fakes.fixtures import TG_TOKEN
from tests.subscribers.factories import last_reply, phone, say

pytestmark = pytest.mark.usefixtures("tenant")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def add(tenant: Tenant, *args: str) -> tuple[Connection, str]:
    out = io.StringIO()
    call_command("connection_add", tenant.schema_name, *args, stdout=out)
    return Connection.objects.order_by("-pk").first(), out.getvalue()  # type: ignore[return-value]


def carried_by(conn: Connection) -> set[str]:
    return set(Channel.objects.filter(connections=conn).values_list("slug", flat=True))


@pytest.fixture
def topics() -> dict[str, Channel]:
    return {
        "dust": make_channel("Feinstaubalarm", ["FEINSTAUB"], slug="feinstaub"),
        "traffic": make_channel("Verkehr", ["VERKEHR"], slug="verkehr"),
        "staff": make_channel("Intern", ["INTERN"], slug="intern", is_public=False),
        "old": make_channel("Alt", ["ALT"], slug="alt", is_active=False),
    }


def test_by_default_every_public_channel_carries_the_new_connection(
    tenant: Tenant, topics: dict[str, Channel], django_capture_on_commit_callbacks: Any
) -> None:
    conn, out = add(tenant, "sandbox", "--name", "Zweite Sandbox")
    assert carried_by(conn) == {"feinstaub", "verkehr"}
    assert re.search(r"channels: +feinstaub, verkehr \(every public channel", out), out
    # what the person on that messenger gets: the topic, not "Verfügbar: keine"
    erika = phone(conn)
    say(django_capture_on_commit_callbacks, erika, "START FEINSTAUB")
    assert "Verfügbar" not in last_reply(erika)
    assert Subscription.objects.filter(channel=topics["dust"], status="active").exists()
    # the channels' other connections stay
    assert topics["dust"].connections.filter(provider="sandbox").count() == 2


def test_channels_can_be_chosen_or_left_out(tenant: Tenant, topics: dict[str, Channel]) -> None:
    chosen, out = add(tenant, "sandbox", "--name", "Nur Verkehr", "--channels", "verkehr, intern")
    assert carried_by(chosen) == {"verkehr", "intern"}
    assert re.search(r"channels: +intern, verkehr\n", out) or re.search(r"channels: +verkehr, intern\n", out), out
    alone, out = add(tenant, "sandbox", "--name", "Ohne", "--no-channels")
    assert carried_by(alone) == set()
    assert "no channel carries it" in out


def test_an_unknown_channel_is_refused_before_anything_is_created(tenant: Tenant, topics: dict[str, Channel]) -> None:
    before = Connection.objects.count()
    with pytest.raises(CommandError, match=r"no channel 'verkerh'.*feinstaub, intern, verkehr"):
        add(tenant, "sandbox", "--name", "Tippfehler", "--channels", "verkehr,verkerh")
    assert Connection.objects.count() == before
    with pytest.raises(CommandError, match="either"):
        add(tenant, "sandbox", "--name", "Beides", "--channels", "verkehr", "--no-channels")


def test_without_public_channels_it_says_nobody_can_subscribe_yet(tenant: Tenant) -> None:
    conn, out = add(tenant, "sandbox", "--name", "Leer")
    assert carried_by(conn) == set()
    assert "no channel carries it" in out and "cannot subscribe" in out


def test_a_generated_telegram_webhook_secret_is_printed_once(tenant: Tenant) -> None:
    conn, out = add(tenant, "telegram", "--name", "Bot", "--credential", f"bot_token={TG_TOKEN}", "--no-channels")
    secret = selectors.connection_credentials(conn)["webhook_secret"]
    assert out.count(secret) == 1 and "generated" in out
    assert TG_TOKEN not in out
    given = "my-own_secret-1234567890"
    conn, out = add(
        tenant,
        "telegram",
        "--name",
        "Bot 2",
        "--credential",
        "bot_token=7172552020:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "--credential",
        f"webhook_secret={given}",
        "--no-channels",
    )
    assert given not in out  # the operator knows it already; it stays out of terminal logs


# --------------------------------------------------------------------------------------------
# The documented web server command
# --------------------------------------------------------------------------------------------
def documented_gunicorn() -> list[str]:
    for line in DOCS.read_text().splitlines():
        match = re.search(r"`(gunicorn [^`]+)`", line)
        if match:
            return shlex.split(match.group(1))
    raise AssertionError("docs/operations.md shows no gunicorn command")


def test_the_documented_gunicorn_command_binds_and_has_its_own_control_socket() -> None:
    """Without --bind gunicorn listens where PORT says (0.0.0.0 when it is set); since 25.1 it
    also opens a control socket at one path per user, so two installations on a machine would
    steer each other's workers: the command must name its own socket, or switch it off."""
    from gunicorn.config import Config

    parsed = Config().parser().parse_args(documented_gunicorn()[1:])
    assert parsed.bind, "the command must say where to listen"
    assert all(not address.startswith("0.0.0.0") for address in parsed.bind), "behind the TLS proxy only"  # noqa: S104
    assert parsed.control_socket_disable or parsed.control_socket, "a control socket per installation (or none)"
    assert parsed.args == []  # the app comes from config/gunicorn_conf.py (config.asgi)
