"""gunicorn worker class of the web processes: uvicorn with uvloop and httptools, serving
config.asgi. Access lines are written by core.asgi.AccessLog (without query strings: Meta's
handshake carries the verify token there), not by uvicorn; X-Forwarded-* headers are left to Django
(SECURE_PROXY_SSL_HEADER), as they were under gunicorn's own workers."""

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class WebWorker(UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "proxy_headers": False,
        "access_log": False,
        "server_header": False,
    }
