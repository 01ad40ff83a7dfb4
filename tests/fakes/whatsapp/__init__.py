"""Fake WhatsApp Business Cloud API (Meta Graph API), per providers.md section 1.

API (bearer token in `Authorization`):
    POST /{version}/{phone_number_id}/messages         send (text, image, video, audio, document,
                                                       sticker, location, contacts, reaction,
                                                       interactive, template) or mark-as-read
    GET  /{version}/{phone_number_id}                  phone-number lookup
    GET  /{version}/{waba_id}/message_templates        template list with cursor paging
    GET  /{version}/{media_id}                         media URL, mime_type, sha256, file_size
    GET  /whatsapp_business/attachments/?mid=…         the file (bearer token; Meta's CDN plays here)

Behaviour: Graph error envelopes with the documented codes, a seeded template catalogue
(132001/132000/132015/132016), the 24-hour customer-service window per recipient (free-form to a
closed window: 200, then an async `failed` status 131047), throughput limit per phone number
(130429 as HTTP 429 or 400), optional pair rate (131056), fault injection, and status webhooks
(sent → delivered → read, batched per phone number, signed with `X-Hub-Signature-256` over the
exact ASCII-escaped bytes sent). Control API: see `FakeServer` plus /_fake/window, /_fake/templates,
/_fake/template_status, /_fake/numbers, /_fake/synthesize, /_fake/handshake.

    python -m tests.fakes.whatsapp --port 8081 --app-secret S --access-token T --webhook-url URL --rate 80

Modules: `protocol` (codes, envelopes, signing, settings), `state` (numbers, templates, windows,
webhooks, inbound, in-process API), `handlers` (the Graph API endpoints), `cli` (the command line).
"""

from tests.fakes.whatsapp.cli import main
from tests.fakes.whatsapp.handlers import FakeWhatsApp
from tests.fakes.whatsapp.protocol import (
    API_VERSION_PATTERN,
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_APP_SECRET,
    DEFAULT_DISPLAY_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_TEMPLATES,
    DEFAULT_WABA_ID,
    GRAPH_ERRORS,
    PhoneNumber,
    WhatsAppSettings,
    digits,
    graph_error,
    sign,
)
from tests.fakes.whatsapp.state import WhatsAppState

__all__ = [
    "API_VERSION_PATTERN",
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_APP_SECRET",
    "DEFAULT_DISPLAY_NUMBER",
    "DEFAULT_PHONE_NUMBER_ID",
    "DEFAULT_TEMPLATES",
    "DEFAULT_WABA_ID",
    "GRAPH_ERRORS",
    "FakeWhatsApp",
    "PhoneNumber",
    "WhatsAppSettings",
    "WhatsAppState",
    "digits",
    "graph_error",
    "main",
    "sign",
]
