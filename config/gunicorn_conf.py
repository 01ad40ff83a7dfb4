"""gunicorn settings for production and `make run`: `gunicorn -c config/gunicorn_conf.py`
(docs/operations.md). gunicorn manages the processes; each runs uvicorn (config.workers) serving
config.asgi: the fast webhook path, and Django in a thread pool for everything else.

Command-line options override these; the environment variables below tune them."""

import os

wsgi_app = "config.asgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")  # only the TLS proxy should reach it
workers = int(os.environ.get("WEB_WORKERS", "2"))  # one per core
worker_class = "config.workers.WebWorker"
# Django's threads per process (a2wsgi's pool in config.asgi; gunicorn's own `threads` setting
# does not apply to uvicorn workers)
os.environ.setdefault("WEB_THREADS", "8")
keepalive = 30  # providers and the TLS proxy keep connections open

# Access log on stdout, written by core.asgi.AccessLog: the path without the query string (Meta's
# webhook handshake carries the WhatsApp verify token in the query, and other secrets may travel
# the same way).
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None  # WEB_ACCESS_LOG="" turns it off
