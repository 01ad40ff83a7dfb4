"""Fake Twilio Programmable Messaging API, per providers.md section 3.

API (HTTP Basic auth, user = Account SID, password = Auth Token):
    POST /2010-04-01/Accounts/{AccountSid}/Messages.json       form-encoded send → 201 Message resource
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json  fetch a message
    GET  /2010-04-01/Accounts/{AccountSid}.json                 account fetch
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}/Media/{MediaSid}
                                                                an inbound file (a MediaUrl): 307 to
                                                                /cdn/… (no auth there), 404 20404 gone

Errors use Twilio's JSON envelope `{code, message, more_info, status}` (20003, 20429, 21211,
21602-21604, 21610, 21617 …). An opt-out registry per (sender or Messaging Service, recipient) is
fed by simulated inbound STOP/START messages. Status callbacks (sent → delivered, `read` for
`whatsapp:` recipients, failed/undelivered with ErrorCode for injected async failures) are POSTed
form-encoded to the message's StatusCallback with `X-Twilio-Signature` (HMAC-SHA1 over the full
URL + sorted parameters, providers.md 3.5). Inbound messages go to `inbound_url`.

    python -m tests.fakes.twilio --port 8083 --account-sid AC… --auth-token T --webhook-url URL --rate 10

Modules: `protocol` (codes, envelope, signing, settings), `server` (the fake itself), `cli` (the
command line).
"""

from tests.fakes.twilio.cli import main
from tests.fakes.twilio.protocol import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_NUMBER,
    DEFAULT_SERVICE_SID,
    TwilioSettings,
    twilio_error,
    twilio_signature,
)
from tests.fakes.twilio.server import FakeTwilio

__all__ = [
    "API_VERSION",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_NUMBER",
    "DEFAULT_SERVICE_SID",
    "FakeTwilio",
    "TwilioSettings",
    "main",
    "twilio_error",
    "twilio_signature",
]
