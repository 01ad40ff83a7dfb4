"""`python -m core.devrun run|stop|test|exec|bench` (see the package docstring)."""

import sys

from core.devrun.commands import main

sys.exit(main(sys.argv[1:]))
