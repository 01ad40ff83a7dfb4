"""Run the dispatcher (see broadcasts.dispatcher): due broadcasts start within a second."""

from typing import Any

from django.core.management.base import BaseCommand

from broadcasts.dispatcher import Dispatcher


class Command(BaseCommand):
    help = "Poll due work twice a second and queue it (run one per machine next to qcluster)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("dispatcher running (Ctrl-C stops)")
        Dispatcher().run()
