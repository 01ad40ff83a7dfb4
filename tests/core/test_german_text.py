"""The English finder the German page walk uses (tests/core/german_text.py): it flags what issue
10 found on German pages and leaves German text, data and codes in quotes alone."""

from __future__ import annotations

import pytest

from tests.core.german_text import english_lines, visible_text, why_english


@pytest.mark.parametrize(
    "line",
    [
        "CONNECTION",  # a label built from a field name, upper-cased by CSS or not
        "Provider message id",
        "Recipients total",
        "Error kind:",
        "Schema name",
        "broadcast.created",
        "not_sent",
        "Freigabe erbeten / Approval requested",
        "… / without a template only people who wrote in the last 24 h",
        "Du hast noch kein Konto bei uns? Dann erstelle bitte zunächst eins.",
        "Passwort vergessen? Gib deine E-Mail-Adresse ein.",
        "Select all",  # a msgid of Django's catalogue, shown untranslated
    ],
)
def test_english_and_informal_lines_are_found(line: str) -> None:
    assert why_english(line), line


@pytest.mark.parametrize(
    "line",
    [
        "Aussendung erstellt",
        "Verbindung:",
        "Status",
        "WhatsApp",
        "Messenger",
        "Sie erhalten jetzt Nachrichten zu „{channel}“ von {tenant}.",
        "Zusätzlich zu den Kanälen aus der Spalte „channels“ der Datei.",
        "sbx-dd914be26a93dd108e28",
        "status:sbx-4052444054d0:sent",
        '{"status": "sent", "error_kind": ""}',
        "admin@stadt-a.example",
        "Senden Sie ALLE DATEN LÖSCHEN (oder DELETE MY DATA) in Ihrem Messenger.",
        "So geht's: START <Thema> – anmelden STOP <Thema> – abmelden (STOP all…",
    ],
)
def test_german_text_data_and_literals_pass(line: str) -> None:
    assert why_english(line) is None, line


def test_visible_text_reads_text_options_and_attributes_but_not_scripts() -> None:
    html = """<html><head><title>Übersicht</title><style>.x{}</style></head><body>
      <script nonce="n">var label = "Search";</script>
      <img src="a.svg" alt="Search"><input placeholder="Name suchen" type="text">
      <select><option>Whatsapp</option></select><p title="Hinweis">Hallo <b>Welt</b></p>
      <pre>broadcast.created</pre><input type="submit" value="Save"></body></html>"""
    lines = visible_text(html)
    assert lines == ["Übersicht", "Search", "Name suchen", "Whatsapp", "Hinweis", "Hallo", "Welt", "Save"]
    assert [line.split("'")[1] for line in english_lines(lines)] == ["Search", "Whatsapp", "Save"]
