"""Normalising what people type as an address (pure functions)."""

from __future__ import annotations

import re

import phonenumbers

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# German mobile numbers written nationally (0151…, 0160…, 0176…): by far the most common case in
# subscriber lists, and converting them needs no metadata lookup.
GERMAN_MOBILE = re.compile(r"^01[5-7]\d{8,9}$")
_SEPARATORS = re.compile(r"[\s()./-]")
# Where national numbers of a tenant belong, from its time zone (no country field needed).
REGIONS = {"Europe/Berlin": "DE", "Europe/Busingen": "DE", "Europe/Zurich": "CH", "Europe/Vienna": "AT",
           "Europe/Vaduz": "LI", "Europe/Luxembourg": "LU"}  # fmt: skip


def region_for_timezone(zone: str) -> str:
    return REGIONS.get(zone, "DE")


def phone_to_e164(value: str, region: str = "DE") -> str | None:
    """+49 170 1234567, 0170/1234567, 0049 170 … → +491701234567; None if it is not a valid number.
    Numbers already in E.164 are taken as they are (the fast path of large imports)."""
    compact = _SEPARATORS.sub("", value.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if E164.match(compact):
        return compact
    if region == "DE" and GERMAN_MOBILE.match(compact):
        return "+49" + compact[1:]
    candidates = [value]
    if compact.isdigit() and not compact.startswith("0"):
        # Spreadsheets store numbers as numbers and drop the "+" (4917012345678) or the leading
        # zero (17012345678): try the international reading first, then the national one.
        candidates = ["+" + compact, "0" + compact]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def looks_like_phone(value: str) -> bool:
    return bool(re.fullmatch(r"[\d\s+()./-]+", value.strip())) and len(re.sub(r"\D", "", value)) >= 5
