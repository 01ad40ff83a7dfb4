"""`makemessages -l de` over the whole project leaves no fuzzy and no empty entries: every string
the code marks for translation has its German text in locale/de (issue 10, item 6).

It runs on a copy of the project in a temporary directory (makemessages rewrites and reorders
django.po, which must not happen to the tracked file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

SOURCES = ["accounts", "analytics", "broadcasts", "channels", "config", "core", "locale", "messengers"]
SOURCES += ["inbox", "subscribers", "templates", "tenants", "manage.py"]


def _entries(po: Path, *flags: str) -> list[str]:
    output = subprocess.run(
        ["msgattrib", *flags, "--no-obsolete", str(po)], capture_output=True, text=True, check=True
    ).stdout
    blocks = [block for block in output.split("\n\n") if "\nmsgid " in f"\n{block}"]
    return [block for block in blocks if 'msgid ""\nmsgstr ""\n"' not in block]  # not the header


@pytest.mark.skipif(not shutil.which("xgettext") or not shutil.which("msgattrib"), reason="needs GNU gettext")
def test_makemessages_leaves_no_fuzzy_or_empty_entries(tmp_path: Path) -> None:
    base = Path(settings.BASE_DIR)
    for name in SOURCES:
        source = base / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy2(source, tmp_path / name)
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "de", "--verbosity", "0"],
        cwd=tmp_path,
        env=environment,
        check=True,
        timeout=300,
    )
    po = tmp_path / "locale" / "de" / "LC_MESSAGES" / "django.po"
    fuzzy, empty = _entries(po, "--only-fuzzy"), _entries(po, "--untranslated")
    assert not fuzzy, "fuzzy after makemessages (give them a proper German text):\n\n" + "\n\n".join(fuzzy)
    assert not empty, "no German after makemessages (add to django.po):\n\n" + "\n\n".join(empty)
