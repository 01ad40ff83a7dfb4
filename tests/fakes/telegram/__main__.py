"""`python -m tests.fakes.telegram` (see tests.fakes.telegram.cli)."""

from tests.fakes.telegram.cli import main

main()
