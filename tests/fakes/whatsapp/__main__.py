"""`python -m tests.fakes.whatsapp` (see tests.fakes.whatsapp.cli)."""

from tests.fakes.whatsapp.cli import main

main()
