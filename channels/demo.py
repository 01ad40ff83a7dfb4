"""Demo channels for `manage.py seed_demo` (settings.DEMO_SEED_HOOKS): Stuttgart's
Feinstaubalarm and Verkehr, Hochbahn's lines U1–U4, the SPD's Koalitionsverhandlungen — all
carried by the tenant's sandbox connections (and the demo's look-alikes, messengers.demo) so the phone simulator can use them. Idempotent:
existing channels are left as the demo user changed them, only the sandbox link is ensured."""

from __future__ import annotations

from typing import Any

from channels.models import Channel, Priority
from channels.services import channel_create, channel_update
from messengers.selectors import sandbox_connections

FEINSTAUB = {
    "name": "Feinstaubalarm",
    "slug": "feinstaubalarm",
    "keywords": ["FEINSTAUB", "FEINSTAUBALARM"],
    "icon": "🌫️",
    "color": "#57606a",
    "description": "Wir sagen Ihnen, wann in Stuttgart Feinstaubalarm gilt – und wann er endet.",
    "is_alarm": True,
    "requires_approval": True,
    "default_priority": Priority.ALERT,
    "position": 1,
    "welcome_text_de": (
        "Willkommen beim Feinstaubalarm der Landeshauptstadt Stuttgart! Sie erfahren hier, wann Feinstaubalarm "
        "gilt und wann er endet. An Alarmtagen: Auto stehen lassen, Bus und Bahn nutzen, keine Komfort-Kaminöfen."
    ),
    "welcome_text_en": (
        "Welcome to Stuttgart's particulate matter alarm! We tell you when the alarm starts and when it ends. "
        "On alarm days: leave the car at home, take bus and train, do not use comfort fireplaces."
    ),
    "alarm_text_start": (
        "Feinstaubalarm in Stuttgart: Ab morgen gilt Feinstaubalarm. Bitte lassen Sie das Auto stehen und fahren Sie "
        "mit Bus und Bahn. Komfort-Kaminöfen dürfen nicht betrieben werden."
    ),
    "alarm_text_update": "Der Feinstaubalarm in Stuttgart dauert an. Bitte nutzen Sie weiterhin Bus und Bahn.",
    "alarm_text_end": "Entwarnung: Der Feinstaubalarm in Stuttgart ist beendet. Vielen Dank, dass Sie mitgeholfen haben!",
}
VERKEHR = {
    "name": "Verkehr",
    "slug": "verkehr",
    "keywords": ["VERKEHR"],
    "icon": "🚦",
    "color": "#bf8700",
    "description": "Baustellen, Sperrungen und Großveranstaltungen in Stuttgart.",
    "requires_approval": True,
    "position": 2,
    "welcome_text_de": "Willkommen! Sie erhalten Meldungen zu Baustellen, Sperrungen und Veranstaltungen in Stuttgart.",
    "welcome_text_en": "Welcome! You will receive news about road works, closures and events in Stuttgart.",
}


def _line(number: int) -> dict[str, Any]:
    return {
        "name": f"U{number}",
        "slug": f"u{number}",
        "keywords": [f"U{number}"],
        "icon": "🚇",
        "color": ("#d4001b", "#e3051b", "#0091d3", "#00818a")[number - 1],
        "description": f"Störungen, Umleitungen und Bauarbeiten auf der Linie U{number}.",
        "requires_approval": False,  # the control centre must warn within minutes
        "default_priority": Priority.ALERT,
        "position": number,
        "welcome_text_de": f"Willkommen! Sie erfahren von Störungen und Bauarbeiten auf der U{number}.",
        "welcome_text_en": f"Welcome! You will hear about disruptions and works on the U{number}.",
    }


KOALITION = {
    "name": "Koalitionsverhandlungen",
    "slug": "koalitionsverhandlungen",
    "keywords": ["KOALITION", "KOALITIONSVERHANDLUNGEN"],
    "icon": "🤝",
    "color": "#e3000f",
    "description": "Neuigkeiten aus den Koalitionsverhandlungen, direkt vom Parteivorstand.",
    "requires_approval": True,
    "position": 1,
    "welcome_text_de": "Willkommen! Sie erhalten Neuigkeiten aus den Koalitionsverhandlungen.",
    "welcome_text_en": "Welcome! You will receive news from the coalition negotiations.",
}

DEMO_CHANNELS: dict[str, list[dict[str, Any]]] = {
    "stuttgart": [FEINSTAUB, VERKEHR],
    "hochbahn": [_line(n) for n in range(1, 5)],
    "spd": [KOALITION],
}


def seed(*, tenant: Any, stdout: Any) -> None:
    specs = DEMO_CHANNELS.get(tenant.schema_name, [])
    # the tenant's sandbox and the demo's look-alikes (messengers.demo): all simulated phones
    sandboxes = list(sandbox_connections())
    created = 0
    for spec in specs:
        fields = dict(spec)
        channel = Channel.objects.filter(slug=fields["slug"]).first()
        if channel is None:
            channel_create(connections=sandboxes, **fields)
            created += 1
            continue
        linked = set(channel.connections.values_list("pk", flat=True))
        if any(s.pk not in linked for s in sandboxes):
            channel_update(
                channel=channel, connections=[*channel.connections.all(), *(s for s in sandboxes if s.pk not in linked)]
            )
    if specs:
        stdout.write(f"{tenant.schema_name}: {created} demo channel(s) created, {len(specs) - created} kept")
