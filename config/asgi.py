"""The web entry point in production and under `make run`: gunicorn runs uvicorn workers
(config.workers.WebWorker) serving this ASGI app.

Provider webhook POSTs go to the fast ingest path (messengers.ingest: signature, parse, group
commit); every other request goes to Django, which runs as a WSGI app in a thread pool
(a2wsgi), exactly as under a threaded WSGI server: its views, middleware and persistent
database connections per thread are unchanged. WEB_THREADS sets the pool per process.
"""

import os

from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django_app = get_wsgi_application()

from core.asgi import AccessLog, ScriptName  # noqa: E402  (needs Django set up)
from messengers.ingest import WebhookIngest  # noqa: E402

application = AccessLog(
    ScriptName(
        WebhookIngest(WSGIMiddleware(django_app, workers=int(os.environ.get("WEB_THREADS", "8")))),  # type: ignore[arg-type]
    )
)
