"""Files the fakes hand out for inbound messages (WhatsApp media ids, Telegram file_ids, Twilio
MediaUrls): their bytes and type, whether the provider already deleted them, and the response
that serves them (with Content-Length, or chunked without it, as some CDNs do)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

CHUNK = 64 * 1024


@dataclass
class StoredMedia:
    key: str
    content: bytes
    mime_type: str
    filename: str = ""
    chunked: bool = False  # serve without Content-Length (the download must stop at its own cap)
    expired: bool = False  # the provider deleted it: answered like an unknown id


class MediaStore:
    def __init__(self) -> None:
        self.items: dict[str, StoredMedia] = {}

    def add(
        self, key: str, content: bytes, mime_type: str, *, filename: str = "", chunked: bool = False
    ) -> StoredMedia:
        item = StoredMedia(key=key, content=content, mime_type=mime_type, filename=filename, chunked=chunked)
        self.items[key] = item
        return item

    def live(self, key: str) -> StoredMedia | None:
        item = self.items.get(key)
        return item if item is not None and not item.expired else None

    def expire(self, key: str) -> None:
        self.items[key].expired = True

    def clear(self) -> None:
        self.items.clear()


async def serve_media(request: web.Request, item: StoredMedia) -> web.StreamResponse:
    if not item.chunked:
        return web.Response(body=item.content, headers={"Content-Type": item.mime_type})
    response = web.StreamResponse(headers={"Content-Type": item.mime_type})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for start in range(0, len(item.content), CHUNK):
            await response.write(item.content[start : start + CHUNK])
        await response.write_eof()
    except ConnectionError:  # the client stopped reading (a download cut off at its cap)
        pass
    return response
