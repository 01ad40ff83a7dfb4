"""gunicorn settings for production: `gunicorn -c config/gunicorn_conf.py` (docs/operations.md).

Command-line options override these; the environment variables below tune them."""

import os

wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")  # only the TLS proxy should reach it
workers = int(os.environ.get("WEB_WORKERS", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"

# Access log on stdout, without query strings: Meta's webhook handshake carries the WhatsApp
# verify token in the query (?hub.verify_token=…), and other secrets may travel the same way.
# %(U)s is the path alone; the rest is gunicorn's default format plus the duration.
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'

# gunicorn would take SCRIPT_NAME and PATH_INFO from request headers of a trusted forwarder
# (forwarded_allow_ips, 127.0.0.1 by default) — that is, from any client whose proxy passes
# them on. Our proxy never sets them; a deployment under a URL prefix sets SCRIPT_NAME in
# gunicorn's environment instead.
forwarder_headers = ""
