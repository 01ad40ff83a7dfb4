"""What we send to citizens (keyword replies, e-mails), in German and English, and each tenant's
own wording of them.

Why a catalogue in code and not gettext: these texts are data a tenant may change (welcome and
help texts, per channel), not translations of the interface. gettext has one answer per msgid
and language for the whole deployment, compiled at deploy time; a tenant's wording lives in its
own schema (TextOverride, edited in the admin) and must win over the built-in text at once,
per channel. The built-in texts stay here, in both languages from day one, readable next to
the lookup; replies are written by workers, which have no request language anyway.

`message(key, language, for_channel=None, **params)` picks the person's language (German is the
default; Leichte Sprache uses the German texts), then the first of: the tenant's wording for
that channel, the tenant's wording for every channel, the built-in text. Legal and structural
texts (consent wording, which is versioned in ConsentText; list punctuation; language names)
are not overridable. A wording that does not fit its placeholders is refused when saved
(subscribers.services.text_override_save); should one slip through, the built-in text is sent.
"""

from __future__ import annotations

import logging
import string
from typing import Final

from django.db.models import F, Q
from django_tenants.utils import get_public_schema_name

from core.tenancy import connection as db
from subscribers.models import TextOverride

logger = logging.getLogger(__name__)

DEFAULT_LANGUAGE: Final = "de"

TEXTS: Final[dict[str, dict[str, str]]] = {
    "de": {
        "welcome_default": "Willkommen! Sie erhalten jetzt Nachrichten zu „{channel}“ von {tenant}.",
        "welcome_footer": "Abmelden: STOP {keyword} · Alles abbestellen: STOP · Hilfe: HILFE",
        "explicit_consent_note": (
            "Sie haben ausdrücklich eingewilligt, dass {tenant} Ihre Kontaktdaten und Ihr Interesse an "
            "„{channel}“ (daraus kann sich eine politische Meinung ergeben) für diese Nachrichten verarbeitet. "
            "Widerruf jederzeit mit STOP."
        ),
        "already_subscribed": "Sie sind bereits für „{channel}“ angemeldet.",
        "unknown_channel": "Das Thema „{word}“ gibt es hier nicht. Verfügbar: {channels}.",
        "no_channels": "Über diesen Messenger können Sie derzeit keine Themen abonnieren.",
        "channel_list_item": "{name} ({keyword})",
        "stopped_all": (
            "Sie sind von allen Themen abgemeldet und erhalten keine Nachrichten mehr. "
            "Wieder anmelden: START. Alle Daten löschen: ALLE DATEN LÖSCHEN"
        ),
        "stopped_one": "Sie sind von „{channel}“ abgemeldet. Ihre anderen Themen bleiben bestehen (STATUS).",
        "not_subscribed_one": "Sie waren für „{channel}“ nicht angemeldet.",
        "not_subscribed_any": "Sie sind für kein Thema angemeldet und erhalten keine Nachrichten.",
        "help": (
            "So geht's:\n"
            "START <Thema> – anmelden\n"
            "STOP <Thema> – abmelden (STOP allein: alles)\n"
            "STATUS – Ihre Themen (STATUS <Thema>: ein Thema)\n"
            "SPRACHE DE / SPRACHE EN – Sprache\n"
            "{district_line}"
            "EINSTELLUNGEN – Link zu Ihren Einstellungen\n"
            "ALLE DATEN LÖSCHEN – alle Daten löschen\n"
            "Themen: {channels}"
        ),
        "help_district_line": "BEZIRK <Name> – Ihr Stadtbezirk\n",
        "status": "Ihre Themen: {channels}\nSprache: {language_name}\nBezirk: {district}",
        "status_none": "Sie sind derzeit für kein Thema angemeldet. Anmelden: START <Thema>. Themen: {channels}",
        "status_no_district": "keiner",
        "status_channel_on": "Sie sind für „{channel}“ angemeldet. Abmelden: STOP {keyword}",
        "status_channel_off": "Sie sind für „{channel}“ nicht angemeldet. Anmelden: START {keyword}",
        "status_alarm": "Aktueller Stand: {state}",
        "status_alarm_since": "Aktueller Stand: {state} (seit {since})",
        "language_set": "Ihre Sprache ist jetzt Deutsch.",
        "language_unknown": "Diese Sprache kenne ich nicht. Möglich: SPRACHE DE oder SPRACHE EN.",
        "district_set": "Ihr Bezirk ist jetzt {district}.",
        "district_cleared": "Ihr Bezirk ist gelöscht; Sie erhalten Nachrichten für alle Bezirke.",
        "district_unknown": "Den Bezirk „{word}“ kenne ich nicht. Möglich: {districts}.",
        "district_list": "Schreiben Sie BEZIRK und den Namen, zum Beispiel BEZIRK {example}. Möglich: {districts}.",
        "districts_none": "Hier gibt es keine Bezirke zur Auswahl.",
        "settings_link": "Ihre Einstellungen (Themen, Bezirk, Sprache, Abmeldung): {url}\nBitte geben Sie den Link nicht weiter.",
        "erased": (
            "Ihre Daten wurden gelöscht. Sie erhalten keine Nachrichten mehr. "
            "Wenn Sie wieder Nachrichten möchten, schreiben Sie START."
        ),
        "email_confirm_subject": "Bitte bestätigen Sie Ihre Anmeldung bei {tenant}",
        "email_confirm_body": (
            "Guten Tag,\n\n"
            "Sie (oder jemand mit Ihrer Adresse) möchten E-Mails von {tenant} zu folgenden Themen erhalten:\n"
            "{channels}\n\n"
            "Bitte bestätigen Sie das über diesen Link (gültig bis {expires}):\n{url}\n\n"
            "Wenn Sie das nicht waren, ignorieren Sie diese E-Mail einfach; ohne Bestätigung erhalten Sie "
            "nichts und Ihre Adresse wird nach Ablauf gelöscht.\n\n"
            "Datenschutz: {privacy}\n"
        ),
        "email_known_subject": "Ihre Anmeldung bei {tenant}",
        "email_known_body": (
            "Guten Tag,\n\n"
            "für Ihre Adresse wurde eine Anmeldung bei {tenant} angefragt. Sie sind für diese Themen bereits "
            "angemeldet; es ist nichts weiter zu tun.\n\n"
            "Ihre Einstellungen und die Abmeldung finden Sie hier:\n{url}\n"
        ),
        "consent_default": (
            "Ich möchte Nachrichten von {tenant} zu den gewählten Themen auf dem gewählten Weg (Messenger, SMS "
            "oder E-Mail) erhalten. {tenant} verwendet meine Kontaktdaten, meine Themen und meine Angaben zu "
            "Sprache und Bezirk nur dafür. Ich kann mich jederzeit abmelden (STOP oder Link in jeder Nachricht) "
            "und alle Daten löschen lassen (ALLE DATEN LÖSCHEN)."
        ),
        "consent_party": (
            "Ich willige ausdrücklich ein (Art. 9 Abs. 2 lit. a DSGVO), dass {tenant} meine Kontaktdaten und die "
            "Information, welche Themen ich abonniere – woraus sich meine politische Meinung ergeben kann –, "
            "verarbeitet, um mir Nachrichten zu diesen Themen auf dem gewählten Weg zu senden. Die Daten werden "
            "für nichts anderes verwendet. Ich kann die Einwilligung jederzeit widerrufen (STOP oder Link in jeder "
            "Nachricht) und alle Daten löschen lassen (ALLE DATEN LÖSCHEN)."
        ),
        "language_name_de": "Deutsch",
        "language_name_en": "Englisch",
        "language_name_de-ls": "Leichte Sprache",
        "list_separator": ", ",
        "list_none": "keine",
    },
    "en": {
        "welcome_default": "Welcome! You will now receive messages about “{channel}” from {tenant}.",
        "welcome_footer": "Leave this topic: STOP {keyword} · Stop everything: STOP · Help: HELP",
        "explicit_consent_note": (
            "You have explicitly agreed that {tenant} processes your contact details and your interest in "
            "“{channel}” (which may reveal a political opinion) to send you these messages. "
            "Withdraw at any time with STOP."
        ),
        "already_subscribed": "You are already subscribed to “{channel}”.",
        "unknown_channel": "There is no topic “{word}” here. Available: {channels}.",
        "no_channels": "There are no topics you can subscribe to on this messenger at the moment.",
        "channel_list_item": "{name} ({keyword})",
        "stopped_all": (
            "You have unsubscribed from all topics and will not receive any more messages. "
            "Subscribe again: START. Delete all data: DELETE MY DATA"
        ),
        "stopped_one": "You have unsubscribed from “{channel}”. Your other topics stay as they are (STATUS).",
        "not_subscribed_one": "You were not subscribed to “{channel}”.",
        "not_subscribed_any": "You are not subscribed to any topic and will not receive messages.",
        "help": (
            "How it works:\n"
            "START <topic> – subscribe\n"
            "STOP <topic> – unsubscribe (STOP alone: everything)\n"
            "STATUS – your topics (STATUS <topic>: one topic)\n"
            "LANGUAGE EN / LANGUAGE DE – language\n"
            "{district_line}"
            "SETTINGS – link to your settings\n"
            "DELETE MY DATA – delete all your data\n"
            "Topics: {channels}"
        ),
        "help_district_line": "DISTRICT <name> – your district\n",
        "status": "Your topics: {channels}\nLanguage: {language_name}\nDistrict: {district}",
        "status_none": "You are not subscribed to any topic. Subscribe: START <topic>. Topics: {channels}",
        "status_no_district": "none",
        "status_channel_on": "You are subscribed to “{channel}”. Unsubscribe: STOP {keyword}",
        "status_channel_off": "You are not subscribed to “{channel}”. Subscribe: START {keyword}",
        "status_alarm": "Current state: {state}",
        "status_alarm_since": "Current state: {state} (since {since})",
        "language_set": "Your language is now English.",
        "language_unknown": "I don't know that language. Possible: LANGUAGE EN or LANGUAGE DE.",
        "district_set": "Your district is now {district}.",
        "district_cleared": "Your district has been removed; you will receive messages for every district.",
        "district_unknown": "I don't know the district “{word}”. Possible: {districts}.",
        "district_list": "Write DISTRICT and the name, for example DISTRICT {example}. Possible: {districts}.",
        "districts_none": "There are no districts to choose from here.",
        "settings_link": "Your settings (topics, district, language, unsubscribe): {url}\nPlease do not share this link.",
        "erased": (
            "Your data has been deleted. You will not receive any more messages. "
            "If you want messages again, write START."
        ),
        "email_confirm_subject": "Please confirm your subscription to {tenant}",
        "email_confirm_body": (
            "Hello,\n\n"
            "you (or someone using your address) asked to receive e-mails from {tenant} about:\n"
            "{channels}\n\n"
            "Please confirm with this link (valid until {expires}):\n{url}\n\n"
            "If this was not you, simply ignore this e-mail; without confirmation you will receive nothing and "
            "your address is deleted when the link expires.\n\n"
            "Privacy notice: {privacy}\n"
        ),
        "email_known_subject": "Your subscription to {tenant}",
        "email_known_body": (
            "Hello,\n\n"
            "someone asked to subscribe your address to {tenant}. You are already subscribed to these topics; "
            "there is nothing else to do.\n\n"
            "Your settings and the unsubscribe option are here:\n{url}\n"
        ),
        "consent_default": (
            "I want to receive messages from {tenant} about the chosen topics on the chosen way (messenger, SMS "
            "or e-mail). {tenant} uses my contact details, my topics and my language and district only for this. "
            "I can unsubscribe at any time (STOP or the link in every message) and have all data deleted "
            "(DELETE MY DATA)."
        ),
        "consent_party": (
            "I explicitly consent (Art. 9(2)(a) GDPR) to {tenant} processing my contact details and the topics I "
            "subscribe to – which may reveal my political opinion – in order to send me messages about these "
            "topics on the chosen way. The data is used for nothing else. I can withdraw this consent at any time "
            "(STOP or the link in every message) and have all data deleted (DELETE MY DATA)."
        ),
        "language_name_de": "German",
        "language_name_en": "English",
        "language_name_de-ls": "Easy German",
        "list_separator": ", ",
        "list_none": "none",
    },
}


def reply_language(language: str) -> str:
    """The text language for a subscriber language (Leichte Sprache uses the German texts)."""
    return "en" if language == "en" else DEFAULT_LANGUAGE


# Texts a tenant may not reword: the consent wording (legal; versioned in ConsentText), the
# explicit-consent note (Art. 9 GDPR), list punctuation and language names.
NOT_OVERRIDABLE: Final = frozenset(
    {"consent_default", "consent_party", "explicit_consent_note", "channel_list_item", "list_separator", "list_none",
     "language_name_de", "language_name_en", "language_name_de-ls"}
)  # fmt: skip
OVERRIDABLE_KEYS: Final = tuple(key for key in TEXTS[DEFAULT_LANGUAGE] if key not in NOT_OVERRIDABLE)


def placeholders(key: str) -> set[str]:
    """The {names} the built-in text of `key` uses (the same in both languages)."""
    return {name for language in TEXTS for _, name, _, _ in string.Formatter().parse(TEXTS[language][key]) if name}


def _override(key: str, language: str, channel_id: int | None) -> str | None:
    """The tenant's wording: for this channel if there is one, else for every channel."""
    if key in NOT_OVERRIDABLE or db.schema_name == get_public_schema_name():
        return None
    rows = TextOverride.objects.filter(key=key, language=language)
    whose = Q(channel__isnull=True) if channel_id is None else Q(channel_id=channel_id) | Q(channel__isnull=True)
    return rows.filter(whose).order_by(F("channel_id").asc(nulls_last=True)).values_list("text", flat=True).first()


def message(key: str, language: str, *, for_channel: int | None = None, **params: object) -> str:
    language = reply_language(language)
    own = _override(key, language, for_channel)
    if own is not None:
        try:
            return own.format(**params)
        except (KeyError, IndexError, ValueError):
            logger.warning("text override %s (%s) does not fit its placeholders; sent the built-in text", key, language)
    return TEXTS[language][key].format(**params)


def join(items: list[str], language: str) -> str:
    if not items:
        return message("list_none", language)
    return message("list_separator", language).join(items)
