"""A trivial aiohttp endpoint that answers 200 to every POST: P4's loopback reference."""

import sys

from aiohttp import web


async def hook(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/hook", hook)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
