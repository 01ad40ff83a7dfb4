"""WhatsApp Business Cloud API (Meta Graph API) adapter, per providers.md section 1.

Modules: adapter (sending, verification, account and templates), notifications (webhook bodies),
graph (API root, error codes, JSON readers). Import from here.

Sends: text (`preview_url` false), image/video by link with caption, interactive reply buttons
(at most 3, when the buttons carry payloads; a media becomes the interactive header), templates
(body parameters, header media, URL-button parameters). WhatsApp has no free-form URL buttons
outside templates, so link buttons are rendered as "Title: URL" lines under the text.
`biz_opaque_callback_data` carries our reference and comes back in every status webhook.

Errors are classified by Graph `error.code` (table `ERROR_KINDS`), webhooks are verified with
`X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret) and routed to a tenant with
`whatsapp_routing_ids(body)` (every `metadata.phone_number_id`).
"""

from messengers.adapters.whatsapp.adapter import (
    MAX_REPLY_BUTTONS,
    MAX_TEMPLATE_PAGES,
    WhatsAppAdapter,
    normalize_number,
)
from messengers.adapters.whatsapp.graph import API_VERSION, DEFAULT_API_BASE, ERROR_KINDS, classify, graph_root
from messengers.adapters.whatsapp.notifications import parse_notification, whatsapp_routing_ids

__all__ = [
    "API_VERSION",
    "DEFAULT_API_BASE",
    "ERROR_KINDS",
    "MAX_REPLY_BUTTONS",
    "MAX_TEMPLATE_PAGES",
    "WhatsAppAdapter",
    "classify",
    "graph_root",
    "normalize_number",
    "parse_notification",
    "whatsapp_routing_ids",
]
