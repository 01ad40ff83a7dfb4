"""Demo data of the inbox (a `seed_demo` hook): Stuttgart's team gets departments, canned replies,
office hours and a few conversations written on sandbox phones through the real pipeline
(questions about the Feinstaubalarm, a complaint for the Amt für Umweltschutz, a thank-you).
Idempotent: nothing is added once the tenant has conversations."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from inbox.models import CannedReply, Conversation, Department
from inbox.services import conversation_add_note, inbox_settings_ensure
from messengers.selectors import connection_sandbox
from messengers.services import sandbox_person_create, sandbox_receive, webhook_events_apply

DEPARTMENTS = [
    ("Amt für Umweltschutz", "umweltschutz@stuttgart.example"),
    ("Tiefbauamt", "tiefbauamt@stuttgart.example"),
]
CANNED = [
    (
        "Feinstaubalarm: wie lange?",
        "Hallo {{ name }}, der Feinstaubalarm gilt, bis der Deutsche Wetterdienst eine Entwarnung gibt. "
        "Wir melden uns hier im Kanal {{ channel }}, sobald er endet.",
    ),
    ("Danke", "Vielen Dank für Ihre Nachricht, {{ name }}! Wir geben sie an die zuständige Stelle weiter."),
]
CONVERSATIONS = [
    ("Erika Muster", ["Gilt der Feinstaubalarm morgen noch?", "Und darf ich dann mit dem Kaminofen heizen?"]),
    ("Jonas Weber", ["Gibt es während des Alarms ein günstigeres VVS-Ticket?"]),
    ("Aylin Kaya", ["In der Hauptstätter Straße qualmt seit Tagen eine Baustelle, das ist doch verboten?"]),
    ("Peter Schmid", ["Danke für die schnelle Info heute früh!"]),
]


def seed(*, tenant: Any, stdout: Any) -> None:
    if tenant.schema_name != "stuttgart" or Conversation.objects.exists():
        return
    sandbox = connection_sandbox()
    if sandbox is None:
        return
    for name, email in DEPARTMENTS:
        Department.objects.get_or_create(name=name, defaults={"email": email})
    for title, body in CANNED:
        CannedReply.objects.get_or_create(title=title, defaults={"body": body})
    settings_row = inbox_settings_ensure()
    if not settings_row.office_hours:
        settings_row.office_hours = "Mo-Do 08:00-16:00\nFr 08:00-12:00"
        settings_row.save(update_fields=["office_hours"])
    for name, texts in CONVERSATIONS:
        person = sandbox_person_create(connection=sandbox, name=name)
        for text in texts:
            sandbox_receive(connection=sandbox, address=person.address, text=text)
    webhook_events_apply()
    complaint = Conversation.objects.filter(contact__display_name="Aylin Kaya").first()
    agent = User.objects.filter(username="buergerbuero", is_active=True).first()
    if complaint is not None and agent is not None:
        conversation_add_note(
            conversation=complaint, author=agent, text="Bitte an das Amt für Umweltschutz weiterleiten."
        )
    stdout.write(f"{tenant.schema_name}: {Conversation.objects.count()} demo conversation(s) in the inbox")
