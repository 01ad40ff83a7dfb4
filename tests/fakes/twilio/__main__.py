"""`python -m tests.fakes.twilio` (see tests.fakes.twilio.cli)."""

from tests.fakes.twilio.cli import main

main()
